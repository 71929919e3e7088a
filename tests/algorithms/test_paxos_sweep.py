"""`tejido sim paxos --seeds 1..100 --faults all` (and the synod), inside `make test`.

Chunks let pytest-xdist spread the sweep over both cores; each chunk is the real command
line, so a failure prints its FAIL report with the line that reproduces it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
SWEEPS = [("paxos", 1, 50), ("paxos", 51, 100), ("paxos-synod", 1, 100)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "low", "high"), SWEEPS, ids=[f"{n}:{a}..{b}" for n, a, b in SWEEPS]
)
def test_paxos_seed_sweep(name: str, low: int, high: int) -> None:
    done = subprocess.run(
        [*TEJIDO, "sim", name, "--seeds", f"{low}..{high}", "--faults", "all"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"seeds={high - low + 1} violations=0" in done.stdout.splitlines()[-1]
