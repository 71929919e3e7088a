"""Real processes: `tejido mpirun` (tcp backend) and OpenMPI's mpirun (mpi backend) run the
operation checks, every example (against a serial computation here), and a rank killed
mid-operation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples" / "mpi"
TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
LAUNCH_TIMEOUT_S = 120


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TEJIDO_MPI_BACKEND", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        env.pop(name, None)
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    return env


def run(
    backend: str,
    n: int,
    script: Path,
    *args: str,
    grace: float = 5.0,
    check: bool = True,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    if backend == "tcp":
        cmd = [*TEJIDO, "mpirun", "-n", str(n), "--grace", str(grace), *options, str(script)]
        cmd += args
    else:
        mpirun = shutil.which("mpirun")
        assert mpirun is not None, "OpenMPI's mpirun is missing: run `make system-deps` as root"
        cmd = [mpirun, "--oversubscribe", "-n", str(n), sys.executable, str(script), *args]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=LAUNCH_TIMEOUT_S,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.parametrize(("backend", "n"), [("tcp", 3), ("mpi", 4)])
def test_every_operation_on_real_processes(backend: str, n: int) -> None:
    out = run(backend, n, HERE / "mpi_checks.py", backend, str(n)).stdout
    assert "all checks passed" in out
    assert len(re.findall(r"^ok ", out, re.MULTILINE)) == 28


# ---------------------------------------------------------------- examples, serially
def serial_pi(intervals: int) -> float:
    h = 1.0 / intervals
    x = h * (np.arange(intervals, dtype=np.float64) + 0.5)
    return float(np.sum(4.0 / (1.0 + x * x)) * h)


def serial_jacobi(n: int, steps: int) -> tuple[float, float]:
    u = np.zeros(n + 2)
    u[0] = 1.0
    residual = 0.0
    for _ in range(steps):
        new = 0.5 * (u[:-2] + u[2:])
        residual = float(np.max(np.abs(new - u[1:-1])))
        u[1:-1] = new
    return float(np.sum(u[1:-1])), residual


def serial_matvec(n: int) -> np.ndarray:
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    return (((i + 2 * j) % 7) - 3).astype(np.float64) @ (np.arange(n) % 5).astype(np.float64)


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in output:\n{text}"
    return float(found.group(1))


def _sections(out: str) -> dict[str, str]:
    parts = re.split(r"^== (\w+)$", out, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize(("backend", "n"), [("tcp", 4), ("tcp", 3), ("mpi", 4), ("mpi", 3)])
def test_every_example_against_a_serial_computation(backend: str, n: int) -> None:
    out = _sections(run(backend, n, HERE / "mpi_examples.py").stdout)
    assert set(out) == {"pi", "parallel_sum", "ring", "matvec", "jacobi"}
    assert _number(r"pi = ([0-9.]+)", out["pi"]) == pytest.approx(serial_pi(200_000), rel=1e-12)
    assert int(_number(r"sum = (\d+)", out["parallel_sum"])) == sum(i * i for i in range(12345))
    assert int(_number(r"(?m)^token = (\d+)", out["ring"])) == 4 * sum(range(n))
    assert int(_number(r"buffer token = (\d+)", out["ring"])) == 4 * sum(range(n))
    want = serial_matvec(14)
    got = re.search(r"y = \[(.*)\]", out["matvec"])
    assert got, out["matvec"]
    assert [int(v) for v in got.group(1).split(",")] == [int(v) for v in want]
    assert _number(r"checksum = (-?[0-9.]+)", out["matvec"]) == pytest.approx(want.sum())
    checksum, residual = serial_jacobi(50, 300)
    assert _number(r"checksum = ([0-9.]+)", out["jacobi"]) == pytest.approx(checksum, rel=1e-12)
    assert _number(r"residual = ([0-9.e+-]+)", out["jacobi"]) == pytest.approx(residual, rel=1e-9)


# ---------------------------------------------------------------- failure
def test_a_killed_rank_fails_the_others_operations_by_name() -> None:
    done = run("tcp", 3, HERE / "mpi_kill.py", grace=60.0, check=False)
    out, err = done.stdout, done.stderr
    # Without failure detection ranks 0 and 1 would hang until the 60 s grace ran out
    # and mpirun killed them, and they would print nothing.
    assert "rank 0: RankFailed 2: rank 2 failed" in out, (out, err)
    assert "rank 1: RankFailed 2: rank 2 failed" in out, (out, err)
    assert "rank 0: send RankFailed 2" in out
    assert "rank 1: send RankFailed 2" in out
    assert "rank 2 was killed by SIGKILL" in err
    assert "killed by mpirun" not in err  # the others exited on their own
    assert done.returncode == 128 + 9


def test_a_stopped_rank_is_detected_by_missing_heartbeats() -> None:
    # SIGSTOP keeps rank 2's connections open: only the heartbeats reveal it.
    # 3 s: long enough that a busy shared machine does not make the live ranks miss beats.
    done = run("tcp", 3, HERE / "mpi_hang.py", grace=2.0, check=False, options=("--timeout", "3"))
    out, err = done.stdout, done.stderr
    assert "rank 0: RankFailed 2: rank 2 failed" in out, (out, err)
    assert "rank 1: RankFailed 2: rank 2 failed" in out, (out, err)
    # Whichever noticed first says why (the other may hear it in that rank's BYE).
    assert "rank 2 failed: no heartbeat for 3 s" in out, (out, err)
    assert "rank 2 was killed by SIGTERM (killed by mpirun)" in err or (
        "rank 2 was killed by SIGKILL (killed by mpirun)" in err
    ), err
    assert done.returncode == 3


def test_launcher_reports_bad_input() -> None:
    done = subprocess.run(
        [*TEJIDO, "mpirun", "-n", "0", "x.py"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=LAUNCH_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2
    assert "-n must be at least 1" in done.stderr
