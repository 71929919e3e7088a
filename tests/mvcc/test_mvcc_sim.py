"""`tejido sim store --seeds 1..60 --faults all`: Raft running the store's state machine
under every fault kind, judged by Raft's safety invariants and the linearizability
checker. Two chunks, so pytest-xdist spreads them over both cores; each is the real
command line, and a failure shows its FAIL report with the reproduce line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tejido.mvcc.machine import StoreStateMachine
from tejido.sim.options import FAULT_KINDS
from tejido.sim.registry import get_protocol
from tejido.sim.runner import run_seed

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
CHUNKS = [(1, 30), (31, 60)]


@pytest.mark.slow
@pytest.mark.parametrize(("low", "high"), CHUNKS, ids=[f"{a}..{b}" for a, b in CHUNKS])
def test_store_seed_sweep(low: int, high: int) -> None:
    done = subprocess.run(
        [*TEJIDO, "sim", "store", "--seeds", f"{low}..{high}", "--faults", "all"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"seeds={high - low + 1} violations=0" in done.stdout.splitlines()[-1]


def test_the_store_spec_runs_the_store_machine_and_snapshots() -> None:
    restored: list[int] = []
    original = StoreStateMachine.restore

    def counting(self: StoreStateMachine, data: bytes) -> None:
        if data:
            restored.append(len(data))
        original(self, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StoreStateMachine, "restore", counting)
        result = run_seed(get_protocol("store"), 2, faults=FAULT_KINDS)
    assert result.ok, result.violation
    assert restored, "no node restored a snapshot: the spec does not exercise restore()"
    assert sum(1 for e in result.history if e["type"] == "ok") > 50
