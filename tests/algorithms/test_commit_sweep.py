"""`tejido sim two-phase-commit --seeds 1..60 --faults all` inside `make test`: atomicity
after every event, liveness after the heal, in every seed."""

from __future__ import annotations

import subprocess
import sys

import pytest

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
CHUNKS = [(1, 30), (31, 60)]


@pytest.mark.slow
@pytest.mark.parametrize(("low", "high"), CHUNKS, ids=[f"{a}..{b}" for a, b in CHUNKS])
def test_two_phase_commit_seed_sweep(low: int, high: int) -> None:
    done = subprocess.run(
        [*TEJIDO, "sim", "two-phase-commit", "--seeds", f"{low}..{high}", "--faults", "all"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"seeds={high - low + 1} violations=0" in done.stdout.splitlines()[-1]
