"""The distributed lock manager in the simulator: detection (Chandy-Misra-Haas), wait-die
and wound-wait, on one contended transaction workload.

Faults: the algorithms assume reliable FIFO channels and no failures; the processes restore
FIFO order and drop duplicates themselves, so reordering, duplication, pauses, clock drift
and slow disks are allowed, and loss, partitions and crashes are left out.

Invariants, after every event, against the global wait-for graph assembled from every lock
manager's table (`tejido.check.deadlock`):

- ``deadlock-phantom``: every cycle a node reports exists, edge for edge, right then;
- ``deadlock-undetected``: no cycle lasts longer than `CYCLE_BOUND_S` (any policy).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tejido.algorithms.deadlock import DeadlockConfig, LockNode, Policy, TxnId
from tejido.check.deadlock import CyclePersistence, cycles, missing_edges
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.protocol import Process
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["CYCLE_BOUND_S", "SPECS", "NoPhantomDeadlocks", "TransactionWorkload"]

FIFO_SAFE_FAULTS = ("duplicate", "reorder", "pause", "clock", "disk")
CYCLE_BOUND_S = 3.0
"""Longest a wait-for cycle may last: probes go out every 50 ms, but a node may be paused
for up to 0.5 s at a time (several times in a row)."""


@dataclass(slots=True)
class TransactionWorkload:
    """``txn "L2 L0 L3"``: 2 or 3 distinct locks out of `locks`, in a random order (random
    orders are what make cycles)."""

    locks: int = 4
    _unused: int = 0

    def next_operation(self, rng: random.Random) -> Operation:
        size = 2 + rng.randrange(2)
        names = [f"L{i}" for i in range(self.locks)]
        rng.shuffle(names)
        return Operation("txn", None, " ".join(names[:size]))


def global_wait_for(sim: Simulator) -> dict[TxnId, TxnId]:
    edges: dict[TxnId, TxnId] = {}
    for sim_node in sim.nodes.values():
        process = sim_node.process
        if isinstance(process, LockNode):
            edges.update(process.wait_for_edges())
    return edges


class NoPhantomDeadlocks(Invariant):
    name = "deadlock-phantom"

    def __init__(self) -> None:
        self.read: dict[NodeId, tuple[Process, int]] = {}
        self.persistence = CyclePersistence(CYCLE_BOUND_S)
        self.detected = 0

    def check(self, sim: Simulator) -> None:
        edges = global_wait_for(sim)
        for node, sim_node in sim.nodes.items():
            process = sim_node.process
            if not isinstance(process, LockNode):
                continue
            seen = self.read.get(node)
            upto = seen[1] if seen is not None and seen[0] is process else 0
            if upto == len(process.detections):
                continue
            for cycle in process.detections[upto:]:
                missing = missing_edges(cycle, edges)
                if missing:
                    raise InvariantViolation(
                        self.name,
                        f"node {node} reported the cycle {cycle}, but the wait-for graph "
                        f"lacks {missing}",
                    )
                self.detected += 1
            self.read[node] = (process, len(process.detections))
        self.persistence.observe(sim.now, cycles(edges) if len(edges) > 1 else ())


def _spec(name: str, summary: str, policy: Policy, broken: bool = False) -> ProtocolSpec:
    config = DeadlockConfig(policy=policy)
    return ProtocolSpec(
        name=name,
        summary=summary,
        factory=lambda env: LockNode(env, config),
        workload=lambda: TransactionWorkload(),
        invariants=lambda: [NoPhantomDeadlocks()],
        faults=FIFO_SAFE_FAULTS,
        min_nodes=2,
        broken=broken,
    )


SPECS: list[ProtocolSpec] = [
    _spec(
        "chandy-misra-haas",
        "distributed lock manager with Chandy-Misra-Haas deadlock detection",
        "detect",
    ),
    _spec("deadlock-wait-die", "distributed lock manager with wait-die prevention", "wait-die"),
    _spec(
        "deadlock-wound-wait", "distributed lock manager with wound-wait prevention", "wound-wait"
    ),
    _spec(
        "deadlock-ignored",
        "BROKEN on purpose: deadlocks are neither detected nor prevented",
        "none",
        broken=True,
    ),
]
