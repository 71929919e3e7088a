"""Seed sweeps of the lock manager inside `make test`: no phantom deadlock, no cycle left
unresolved, liveness after the heal — for detection and both prevention policies."""

from __future__ import annotations

import subprocess
import sys

import pytest

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
SWEEPS = [("chandy-misra-haas", 50), ("deadlock-wait-die", 20), ("deadlock-wound-wait", 20)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seeds"), SWEEPS, ids=[n for n, _ in SWEEPS])
def test_deadlock_seed_sweep(name: str, seeds: int) -> None:
    done = subprocess.run(
        [*TEJIDO, "sim", name, "--seeds", f"1..{seeds}", "--faults", "all"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"seeds={seeds} violations=0" in done.stdout.splitlines()[-1]
