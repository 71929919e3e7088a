"""`tejido sim chandy-lamport --seeds 1..50 --faults all` inside `make test`."""

from __future__ import annotations

import subprocess
import sys

import pytest

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]


@pytest.mark.slow
def test_chandy_lamport_seed_sweep() -> None:
    done = subprocess.run(
        [*TEJIDO, "sim", "chandy-lamport", "--seeds", "1..50", "--faults", "all"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "seeds=50 violations=0" in done.stdout.splitlines()[-1]
