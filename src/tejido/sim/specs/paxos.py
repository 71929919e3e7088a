"""Paxos in the simulator: Multi-Paxos with the key-value state machine, and the synod.

``paxos`` runs `MultiPaxosNode` with the same workload and state machine as the ``raft``
spec (read, write, cas over a few keys; `tejido.raft.kv.KeyValueStateMachine`), under every
fault kind, and checks its histories for linearizability. ``paxos-synod`` runs single-
decree Paxos per key as a write-once register (``cas key (None, v)`` and ``read``).

Invariants, after every event:

- **chosen never changes**: a (slot or key, ballot) accepted *durably* by a majority of
  acceptors is chosen; every chosen value of one slot is the same value. Durable means
  covered by a completed sync, so a crash that loses unsynced writes cannot hide an
  acceptance the invariant counted — and an acceptance it never saw durable never counted.
- **agreement**: every value any node learned for a slot is the one every other node
  learned for it (state machine safety for the log).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.protocol import Process
from tejido.paxos.multi import MultiPaxosNode
from tejido.paxos.synod import SynodNode
from tejido.raft.kv import KeyValueStateMachine
from tejido.sim.clients import KeyValueWorkload
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["SPECS", "ChosenNeverChanges", "WriteOnceWorkload"]


class _Chosen:
    """Counts durable acceptances per (instance, ballot); remembers each instance's choice."""

    def __init__(self, name: str, majority: int) -> None:
        self.name = name
        self.majority = majority
        self.votes: dict[tuple[Hashable, Hashable], dict[NodeId, object]] = {}
        self.chosen: dict[Hashable, tuple[Hashable, object]] = {}
        self.learned: dict[Hashable, tuple[NodeId, object]] = {}

    def accepted(self, node: NodeId, instance: Hashable, ballot: Hashable, value: object) -> None:
        votes = self.votes.setdefault((instance, ballot), {})
        earlier = votes.setdefault(node, value)
        if earlier != value:
            raise InvariantViolation(
                self.name,
                f"{instance}: node {node} accepted two values in ballot {ballot}: "
                f"{earlier!r} and {value!r}",
            )
        if len(votes) >= self.majority:
            first = self.chosen.setdefault(instance, (ballot, value))
            if first[1] != value:
                raise InvariantViolation(
                    self.name,
                    f"{instance}: {first[1]!r} was chosen in ballot {first[0]}, then {value!r} "
                    f"in ballot {ballot}",
                )

    def learn(self, node: NodeId, instance: Hashable, value: object) -> None:
        first = self.learned.setdefault(instance, (node, value))
        if first[1] != value:
            raise InvariantViolation(
                "paxos-agreement",
                f"{instance}: node {first[0]} learned {first[1]!r}, node {node} {value!r}",
            )


class ChosenNeverChanges(Invariant):
    """See the module docstring; works for `MultiPaxosNode` and `SynodNode`."""

    name = "paxos-chosen"

    def __init__(self) -> None:
        self.state: _Chosen | None = None
        self.read: dict[NodeId, tuple[Process, int, int]] = {}

    def check(self, sim: Simulator) -> None:
        state = self.state
        if state is None:
            state = self.state = _Chosen(self.name, len(sim.node_ids) // 2 + 1)
        read = self.read
        for node, sim_node in sim.nodes.items():
            process = sim_node.process
            if process is None:
                continue
            if isinstance(process, MultiPaxosNode):
                accepts: Sequence[tuple[Hashable, Hashable, object]] = process.durable_accepts
                learned: Sequence[tuple[Hashable, object]] = process.chosen_log
            elif isinstance(process, SynodNode):
                accepts = process.durable_accepts
                learned = process.learned_log
            else:
                continue
            seen = read.get(node)
            if seen is not None and seen[0] is process:
                if seen[1] == len(accepts) and seen[2] == len(learned):
                    continue  # nothing new since the last event
                a_from, l_from = seen[1], seen[2]
            else:
                a_from = l_from = 0
            for instance, ballot, value in accepts[a_from:]:
                state.accepted(node, instance, ballot, value)
            for instance, value in learned[l_from:]:
                state.learn(node, instance, value)
            read[node] = (process, len(accepts), len(learned))


@dataclass(slots=True)
class WriteOnceWorkload:
    """``cas key (None, v)`` with unique v, and reads: the synod's write-once registers."""

    keys: Sequence[str] = ("x", "y", "z")
    _counter: int = 0

    def next_operation(self, rng: random.Random) -> Operation:
        key = self.keys[rng.randrange(len(self.keys))]
        if rng.random() < 0.5:
            return Operation("read", key, None)
        self._counter += 1
        return Operation("cas", key, (None, self._counter))


SPECS: list[ProtocolSpec] = [
    ProtocolSpec(
        name="paxos",
        summary="Multi-Paxos replicated log with a key-value state machine (read, write, cas)",
        factory=lambda env: MultiPaxosNode(env, KeyValueStateMachine),
        workload=lambda: KeyValueWorkload(keys=("x", "y", "z"), functions=("read", "write", "cas")),
        invariants=lambda: [ChosenNeverChanges()],
        linearizable=True,
    ),
    ProtocolSpec(
        name="paxos-synod",
        summary="single-decree Paxos per key: write-once registers (cas from None, read)",
        factory=lambda env: SynodNode(env),
        workload=lambda: WriteOnceWorkload(),
        invariants=lambda: [ChosenNeverChanges()],
        linearizable=True,
    ),
]
