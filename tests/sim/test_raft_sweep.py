"""`tejido sim raft --seeds 1..200 --faults all`, as the Raft issue asks, inside `make test`.

The sweep is split into chunks so pytest-xdist can spread it over both cores; each chunk
is the real command line, and a failure shows its FAIL report with the reproduce line.
Longer sweeps (`--seeds 1..5000`) run under `make soak`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tejido.sim.options import FAULT_KINDS
from tejido.sim.registry import get_protocol
from tejido.sim.runner import run_seed

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
CHUNKS = [(1, 50), (51, 100), (101, 150), (151, 200)]


@pytest.mark.slow
@pytest.mark.parametrize(("low", "high"), CHUNKS, ids=[f"{a}..{b}" for a, b in CHUNKS])
def test_raft_seed_sweep(low: int, high: int) -> None:
    done = subprocess.run(
        [*TEJIDO, "sim", "raft", "--seeds", f"{low}..{high}", "--faults", "all"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"seeds={high - low + 1} violations=0" in done.stdout.splitlines()[-1]


# Seeds that once failed, pinned so they never regress (add every new one here).
PINNED: list[int] = [
    40,  # a duplicated forwarded proposal was appended twice: a "fail" cas took effect
    43,  # restarted nodes refused votes for an election timeout: no leader after the heal
]


@pytest.mark.parametrize("seed", PINNED)
def test_raft_pinned_seed(seed: int) -> None:
    result = run_seed(get_protocol("raft"), seed, faults=FAULT_KINDS)
    assert result.ok, f"seed {seed}: {result.violation}"


def test_raft_makes_progress_without_faults() -> None:
    result = run_seed(get_protocol("raft"), 1, faults=(), duration_s=5.0)
    assert result.ok, result.violation
    ok = [e for e in result.history if e["type"] == "ok"]
    assert len(ok) > 100
