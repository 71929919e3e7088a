"""The store's state machine under Raft in the simulator: ``tejido sim store``.

Raft (the same configuration as the ``raft`` spec) runs `tejido.mvcc.StoreStateMachine`
instead of the plain key-value machine. The workload is the register workload (read,
write, cas on three keys), which the store maps onto its MVCC key space (see
`tejido.mvcc.machine` rule 1), so the linearizability checker judges the store's
answers; Raft's safety invariants (including state machine safety: equal applied
prefixes on every replica) run after every event. Every fault kind is allowed.

Store commands that carry ``data`` (txns, leases, sessions) are exercised by the
unit and model tests of tests/mvcc; here the point is the machine inside real Raft code
paths: batched apply, snapshots installed on lagging followers, restarts from disk.
"""

from __future__ import annotations

from tejido.mvcc.machine import StoreStateMachine
from tejido.raft.config import RaftConfig
from tejido.raft.invariants import SafetyHistory
from tejido.raft.node import RaftNode
from tejido.sim.clients import KeyValueWorkload
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["SPECS", "STORE_CONFIG", "StoreRaftSafety"]

STORE_CONFIG = RaftConfig(
    snapshot_threshold_entries=40, snapshot_keep_entries=8, defer_follower_apply=True
)


class StoreRaftSafety(Invariant):
    """Raft's safety properties after every event (as the ``raft`` spec's `RaftSafety`;
    defined here so this module never imports the registry that discovers it)."""

    name = "raft-safety"

    def __init__(self, config: RaftConfig) -> None:
        self.config = config
        self.history = SafetyHistory()

    def check(self, sim: Simulator) -> None:
        self.history.check_processes(sim.processes(), sim.durable, self.config)


SPECS: list[ProtocolSpec] = [
    ProtocolSpec(
        name="store",
        summary="Raft running the store's MVCC state machine (register workload: read, write, cas)",
        factory=lambda env: RaftNode(env, STORE_CONFIG, state_machine=StoreStateMachine),
        workload=lambda: KeyValueWorkload(keys=("x", "y", "z"), functions=("read", "write", "cas")),
        invariants=lambda: [StoreRaftSafety(STORE_CONFIG)],
        linearizable=True,
    )
]
