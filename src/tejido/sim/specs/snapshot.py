"""Chandy-Lamport snapshots of a bank in the simulator: conservation in every snapshot.

Faults: the algorithm assumes reliable FIFO channels and no failures. The processes
restore FIFO order and drop duplicates themselves (per-link numbering), so reordering and
duplication are allowed, as are pauses, clock drift and slow disks; loss, partitions and
crashes are left out (`ProtocolSpec.faults`).

Workload: clients ask random nodes to ``read snapshot``; the initiator answers with the total
it recorded. The invariant checks every assembled snapshot with `tejido.check.snapshot`
after every event: complete (every process, every directed channel) and conserving the
bank's money.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tejido.algorithms.chandy_lamport import BankConfig, BankNode
from tejido.check.snapshot import RecordedProcess, check_snapshot
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.protocol import Process
from tejido.sim.counts import CountCase, CountRun
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["COUNTS", "SPECS", "Conservation", "SnapshotWorkload", "measure_markers"]

FIFO_SAFE_FAULTS = ("duplicate", "reorder", "pause", "clock", "disk")


@dataclass(slots=True)
class SnapshotWorkload:
    def next_operation(self, rng: random.Random) -> Operation:
        return Operation("read", "snapshot", None)


class Conservation(Invariant):
    name = "snapshot-conservation"

    def __init__(self) -> None:
        self.read: dict[NodeId, tuple[Process, int]] = {}
        self.checked = 0

    def check(self, sim: Simulator) -> None:
        for node, sim_node in sim.nodes.items():
            process = sim_node.process
            if not isinstance(process, BankNode):
                continue
            seen = self.read.get(node)
            upto = seen[1] if seen is not None and seen[0] is process else 0
            if upto == len(process.completed):
                continue
            for sid, reports in process.completed[upto:]:
                recorded = {
                    int(p): RecordedProcess(r.balance, r.channels) for p, r in reports.items()
                }
                problems = check_snapshot(recorded, sim.node_ids, process.total)
                if problems:
                    raise InvariantViolation(
                        self.name, f"snapshot {sid[0]}.{sid[1]}: " + "; ".join(problems)
                    )
                self.checked += 1
            self.read[node] = (process, len(process.completed))


def measure_markers(n: int) -> int:
    """Markers sent for one snapshot on `n` fully connected nodes, transfers running."""
    run = CountRun(lambda env: BankNode(env), n).start()
    run.run_for(0.05)
    run.mark()
    run.submit(1, Operation("read", "snapshot"))
    run.run_for(1.0)
    return run.sent(["Marker"])


SPECS: list[ProtocolSpec] = [
    ProtocolSpec(
        name="chandy-lamport",
        summary="Chandy-Lamport snapshots of a bank (recorded totals conserve the money)",
        factory=lambda env: BankNode(env),
        workload=lambda: SnapshotWorkload(),
        invariants=lambda: [Conservation()],
        faults=FIFO_SAFE_FAULTS,
        min_nodes=2,
    ),
    ProtocolSpec(
        name="chandy-lamport-no-channels",
        summary="BROKEN on purpose: snapshots do not record in-flight transfers",
        factory=lambda env: BankNode(env, BankConfig(record_channels=False)),
        workload=lambda: SnapshotWorkload(),
        invariants=lambda: [Conservation()],
        faults=FIFO_SAFE_FAULTS,
        min_nodes=2,
        broken=True,
    ),
]

COUNTS: list[CountCase] = [
    CountCase(
        algorithm="chandy-lamport",
        scenario="one snapshot while transfers run",
        counted="Marker",
        formula="n(n-1)",
        expected=lambda n: n * (n - 1),
        measure=measure_markers,
    )
]
