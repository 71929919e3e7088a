"""Multi-Paxos: a replicated log of commands with a distinguished proposer (the leader).

Lamport, "Paxos Made Simple" (2001) §3, with the engineering of Chandra, Griesemer and
Redstone, "Paxos Made Live" (PODC 2007) and van Renesse and Altinbuken, "Paxos Made
Moderately Complex" (ACM Computing Surveys 2015).

Assumptions: asynchronous network that may lose, duplicate and reorder messages and be
partitioned; crash-recovery processes whose acceptor state (promise, acceptances) survives
in synced storage; no Byzantine behaviour; no FIFO requirement. Leader election uses
timeouts, so progress needs partial synchrony and a connected majority.

Guarantees: every slot has at most one chosen command, never changed once chosen; every
node applies the same commands in slot order (state machine safety), each command at most
once. Client commands are linearizable (reads go through the log too).

Message complexity: a leader change costs 2(n-1) (Prepare, Promise) plus phase 2 for the
slots it re-proposes; then each command costs 2(n-1) for phase 2 (Accept, Accepted) plus
(n-1) Chosen messages — phase 1 runs once per leadership, not once per slot.

Rules:

1. Ballots are ``(round, node)``. A node that hears no leader for an election timeout
   (randomized, `election_timeout_s` to twice that) becomes a candidate: it picks a round
   above every round it has seen, promises the ballot with its own acceptor *durably*,
   and only then sends ``Prepare(ballot, from_slot)`` where `from_slot` is its first slot
   not known chosen (a candidate that crashed could otherwise reuse the ballot).
2. An acceptor promises a Prepare with a ballot at least its promised one (put, sync, then
   Promise from `on_durable`), listing every acceptance it holds from `from_slot` on; it
   answers a lower ballot with Nack.
3. With promises from a majority, the candidate is leader: for every slot from `from_slot`
   up to the highest reported, it proposes the value accepted in the highest ballot, or a
   no-op where no acceptor reported one (a gap); new commands take the following slots.
   Phase 1 is not run again while it leads.
4. An acceptor accepts ``Accept(ballot, slots)`` unless it promised a higher ballot (put
   each slot, sync, then Accepted from `on_durable`); the leader's own acceptor is one of
   the majority, through the same path.
5. A slot accepted by a majority in the leader's ballot is chosen; the leader sends Chosen
   to every node. Heartbeats carry the leader's chosen prefix, and a node behind it asks
   for the missing values (CatchUp). The leader resends unchosen Accepts with heartbeats.
6. A leader or candidate that learns of a higher ballot (Nack, Prepare, Accept) steps down.
7. Commands: a client command becomes ``Command(origin, cid, bytes)``. The origin node
   proposes it if it leads, or forwards it to the leader it knows, and re-submits it every
   `retry_interval_s` until it is applied. Applying skips an id already applied, so
   re-proposals and duplicates are applied once; the origin answers its client when it
   applies the command (with the state machine's result).
8. Nothing is applied out of slot order. No log compaction: a restarted node relearns the
   log from the leader (a known limitation; the Raft package has snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

import msgspec

from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered
from tejido.paxos.messages import (
    NOOP,
    ZERO_BALLOT,
    Accept,
    Accepted,
    Ballot,
    BecameLeader,
    CatchUp,
    Chosen,
    Command,
    Forward,
    Heartbeat,
    Nack,
    Prepare,
    Promise,
    SlotValue,
    SteppedDown,
)

__all__ = ["MultiPaxosConfig", "MultiPaxosNode", "StateMachine"]


class StateMachine(TypingProtocol):
    """The replicated-log interface Raft's state machines implement (`tejido.raft.kv`):
    deterministic `apply` of committed command bytes, returning result bytes. For client
    `Operation`s the command is the msgpack-encoded operation and the result an encoded
    `Outcome` — the convention of `tejido.raft.kv.KeyValueStateMachine`, which runs here
    unchanged (the spec module passes it in: the protocol packages do not import each
    other)."""

    def apply(self, command: bytes) -> bytes: ...


_PROMISED = "paxos/promised"
_SLOT = "paxos/slot/"
_encode = msgspec.msgpack.Encoder().encode
_decode_ballot = msgspec.msgpack.Decoder(tuple[int, int]).decode
_decode_slot = msgspec.msgpack.Decoder(SlotValue).decode
_encode_operation = msgspec.msgpack.Encoder().encode
_decode_outcome = msgspec.msgpack.Decoder(Outcome).decode
_CATCH_UP_BATCH = 128


@dataclass(frozen=True, slots=True)
class MultiPaxosConfig:
    election_timeout_s: float = 0.3
    heartbeat_interval_s: float = 0.05
    retry_interval_s: float = 0.2


class MultiPaxosNode(Process):
    """One replica: acceptor, learner, and proposer when it leads. See the module rules."""

    def __init__(
        self,
        env: Env,
        state_machine: Callable[[], StateMachine],
        config: MultiPaxosConfig | None = None,
    ) -> None:
        super().__init__(env)
        self.config = config or MultiPaxosConfig()
        self.sm: StateMachine = state_machine()
        # Acceptor (durable).
        self.promised: Ballot = ZERO_BALLOT
        self.accepted: dict[int, tuple[Ballot, Command]] = {}
        self.durable_accepts: list[tuple[int, Ballot, Command]] = []
        """Acceptances once durable, in order (the chosen-slot invariant reads it)."""
        # Learner.
        self.chosen: dict[int, Command] = {}
        self.chosen_log: list[tuple[int, Command]] = []
        """Slots as this incarnation learned them, in order (invariants read it)."""
        self.next_apply = 0
        self.applied_ids: dict[tuple[int, int], None] = {}
        # Proposer / leader.
        self.role = "follower"  # follower | candidate | leader
        self.ballot: Ballot = ZERO_BALLOT
        self.leader: NodeId | None = None
        self.max_round = 0
        self.heard_leader = False
        self.promises: dict[NodeId, Promise] = {}
        self.from_slot = 0
        self.next_slot = 0
        self.proposals: dict[int, tuple[Command, dict[NodeId, None]]] = {}
        self.proposed_ids: dict[tuple[int, int], int] = {}
        # Origin of client commands.
        self.pending: dict[int, tuple[RequestId, Command]] = {}
        self.next_cid = 1
        self._after: list[tuple[int, Callable[[], None]]] = []

    @property
    def quorum(self) -> int:
        return len(self.env.nodes) // 2 + 1

    @property
    def chosen_upto(self) -> int:
        """The first slot this node does not know to be chosen."""
        slot = self.next_apply
        while slot in self.chosen:
            slot += 1
        return slot

    # ------------------------------------------------------------------ storage
    def on_start(self, recovered: Recovered) -> None:
        for name, raw in sorted(recovered.state.items()):
            if name == _PROMISED:
                self.promised = max(self.promised, _ballot(_decode_ballot(raw)))
            elif name.startswith(_SLOT):
                entry = _decode_slot(raw)
                self.accepted[entry.slot] = (_ballot(entry.ballot), entry.command)
                self.durable_accepts.append((entry.slot, _ballot(entry.ballot), entry.command))
                self.promised = max(self.promised, _ballot(entry.ballot))
        self.max_round = self.promised[0]
        # Command ids are fresh per incarnation: an old duplicate never looks like a new one.
        self.next_cid = self.env.rng.randrange(1, 1 << 30) << 20
        self._reset_election_timer()

    def _sync_then(self, action: Callable[[], None]) -> None:
        self._after.append((self.sync(), action))

    def on_durable(self, token: int) -> None:
        ready = [a for t, a in self._after if t <= token]
        if ready:
            self._after = [(t, a) for t, a in self._after if t > token]
            for action in ready:
                action()

    def _deliver(self, dst: NodeId, message: Message) -> None:
        if dst == self.node_id:
            self.on_message(dst, message)
        else:
            self.send(dst, message)

    # ------------------------------------------------------------------ acceptor (2, 4)
    def _on_prepare(self, src: NodeId, m: Prepare) -> None:
        self._see(m.ballot)
        if m.ballot < self.promised:
            self._deliver(src, Nack(m.ballot, self.promised))
            return
        if m.ballot > self.promised:
            self._promise(m.ballot)
        # The report is taken now: the acceptances it lists are durable by the time the
        # sync covering the promise completes.
        promise = Promise(m.ballot, m.from_slot, self._acceptances_from(m.from_slot))
        self._sync_then(lambda: self._deliver(src, promise))

    def _acceptances_from(self, from_slot: int) -> list[SlotValue]:
        return [
            SlotValue(slot, b, command)
            for slot, (b, command) in sorted(self.accepted.items())
            if slot >= from_slot
        ]

    def _promise(self, ballot: Ballot) -> None:
        self.promised = ballot
        self.put(_PROMISED, _encode(ballot))
        if self.role != "follower" and ballot > self.ballot:
            self._step_down(ballot)

    def _on_accept(self, src: NodeId, m: Accept) -> None:
        self._see(m.ballot)
        if m.ballot < self.promised:
            self._deliver(src, Nack(m.ballot, self.promised))
            return
        if m.ballot > self.promised:
            self._promise(m.ballot)
        if src != self.node_id:
            self._heard_from(NodeId(m.ballot[1]))
        ballot = m.ballot
        fresh: list[tuple[int, Command]] = []
        for slot, command in m.slots:
            if self.accepted.get(slot) != (ballot, command):
                self.accepted[slot] = (ballot, command)
                self.put(f"{_SLOT}{slot}", _encode(SlotValue(slot, ballot, command)))
                fresh.append((slot, command))
        slots = [slot for slot, _ in m.slots]

        def accepted() -> None:
            for slot, command in fresh:
                self.durable_accepts.append((slot, ballot, command))
            self._deliver(src, Accepted(ballot, slots))

        self._sync_then(accepted)

    def _see(self, ballot: Ballot) -> None:
        if ballot[0] > self.max_round:
            self.max_round = ballot[0]

    # ------------------------------------------------------------------ election (1, 3, 6)
    def _reset_election_timer(self) -> None:
        timeout = self.config.election_timeout_s
        self.set_timer("election", self.env.rng.uniform(timeout, 2 * timeout))

    def _heard_from(self, leader: NodeId) -> None:
        self.leader = leader
        self.heard_leader = True

    def _on_election_timer(self) -> None:
        if self.role == "leader":
            return
        if self.heard_leader:
            self.heard_leader = False
        else:
            self._campaign()
        self._reset_election_timer()

    def _campaign(self) -> None:
        self.role = "candidate"
        self.leader = None
        self.max_round = max(self.max_round, self.promised[0]) + 1
        ballot = (self.max_round, self.node_id)
        self.ballot = ballot
        self.promises = {}
        self._promise(ballot)
        self.from_slot = from_slot = self.chosen_upto
        own = Promise(ballot, from_slot, self._acceptances_from(from_slot))

        def start() -> None:
            if self.role != "candidate" or self.ballot != ballot:
                return
            self.broadcast(Prepare(ballot, from_slot))
            self._on_promise(self.node_id, own)

        self._sync_then(start)

    def _on_promise(self, src: NodeId, m: Promise) -> None:
        if self.role != "candidate" or m.ballot != self.ballot or m.from_slot != self.from_slot:
            return
        self.promises[src] = m
        if len(self.promises) >= self.quorum:
            self._become_leader()

    def _become_leader(self) -> None:
        best: dict[int, tuple[Ballot, Command]] = {}
        for promise in self.promises.values():
            for sv in promise.accepted:
                known = best.get(sv.slot)
                if known is None or _ballot(sv.ballot) > known[0]:
                    best[sv.slot] = (_ballot(sv.ballot), sv.command)
        top = max(best, default=self.from_slot - 1)
        self.role = "leader"
        self.leader = self.node_id
        self.promises = {}
        self.proposals = {}
        self.proposed_ids = {}
        batch: list[tuple[int, Command]] = []
        noops = 0
        for slot in range(self.from_slot, top + 1):
            if slot in self.chosen:
                command = self.chosen[slot]
            elif slot in best:
                command = best[slot][1]
            else:
                command, noops = NOOP, noops + 1
            batch.append((slot, command))
        self.next_slot = top + 1
        self.report(BecameLeader(self.ballot, self.from_slot, len(batch) - noops, noops))
        self._propose_batch(batch)
        self._heartbeat()
        for _, command in list(self.pending.values()):
            self._submit(command)

    def _step_down(self, higher: Ballot) -> None:
        self.report(SteppedDown(self.ballot, higher))
        self.role = "follower"
        self.leader = NodeId(higher[1])  # a hint: forward commands there meanwhile
        self.proposals = {}
        self.proposed_ids = {}
        self.cancel_timer("heartbeat")
        self._reset_election_timer()

    def _on_nack(self, m: Nack) -> None:
        self._see(m.promised)
        if self.role != "follower" and m.ballot == self.ballot and m.promised > self.ballot:
            self._step_down(m.promised)

    # ------------------------------------------------------------------ leader (3, 5)
    def _propose_batch(self, batch: list[tuple[int, Command]]) -> None:
        if not batch:
            return
        for slot, command in batch:
            self.proposals[slot] = (command, {})
            if command.cid:
                self.proposed_ids[(command.origin, command.cid)] = slot
        accept = Accept(self.ballot, batch)
        for node in self.env.nodes:
            self._deliver(node, accept)

    def _on_accepted(self, src: NodeId, m: Accepted) -> None:
        if self.role != "leader" or m.ballot != self.ballot:
            return
        learned: list[tuple[int, Command]] = []
        for slot in m.slots:
            proposal = self.proposals.get(slot)
            if proposal is None:
                continue
            command, acks = proposal
            acks[src] = None
            if len(acks) >= self.quorum:
                del self.proposals[slot]
                learned.append((slot, command))
        if learned:
            self.broadcast(Chosen(learned))
            self._learn(learned)

    def _heartbeat(self) -> None:
        if self.role != "leader":
            return
        self.broadcast(Heartbeat(self.ballot, self.chosen_upto))
        if self.proposals:  # rule 5: resend what is not chosen yet
            resend = [(slot, c) for slot, (c, _) in sorted(self.proposals.items())]
            self.broadcast(Accept(self.ballot, resend))
        self.set_timer("heartbeat", self.config.heartbeat_interval_s)

    def _on_heartbeat(self, src: NodeId, m: Heartbeat) -> None:
        self._see(m.ballot)
        if m.ballot < self.promised:
            self.send(src, Nack(m.ballot, self.promised))
            return
        if self.role != "follower" and m.ballot > self.ballot:
            self._step_down(m.ballot)
        if self.role == "follower":
            self._heard_from(src)
        if self.chosen_upto < m.chosen_upto:
            self.send(src, CatchUp(self.chosen_upto))

    def _on_catch_up(self, src: NodeId, m: CatchUp) -> None:
        end = min(self.chosen_upto, m.from_slot + _CATCH_UP_BATCH)
        slots = [(s, self.chosen[s]) for s in range(m.from_slot, end) if s in self.chosen]
        if slots:
            self.send(src, Chosen(slots))

    # ------------------------------------------------------------------ learner (5, 7, 8)
    def _learn(self, slots: list[tuple[int, Command]]) -> None:
        for slot, command in slots:
            if slot not in self.chosen:
                self.chosen[slot] = command
                self.chosen_log.append((slot, command))
        self._apply()

    def _apply(self) -> None:
        chosen = self.chosen
        while self.next_apply in chosen:
            command = chosen[self.next_apply]
            self.next_apply += 1
            if command.cid == 0:
                continue
            ident = (command.origin, command.cid)
            if ident in self.applied_ids:
                continue  # re-proposed or duplicated: applied once (rule 7)
            self.applied_ids[ident] = None
            result = self.sm.apply(command.data)
            if command.origin == self.node_id:
                waiting = self.pending.pop(command.cid, None)
                if waiting is not None:
                    self.reply(waiting[0], _decode_outcome(result))

    # ------------------------------------------------------------------ commands (7)
    def on_command(self, request: RequestId, operation: Operation) -> None:
        self.propose_command(request, _encode_operation(operation))

    def propose_command(self, request: RequestId, data: bytes) -> None:
        """Replicate `data` (an encoded command); the state machine's result answers
        `request` once this node applies it."""
        command = Command(self.node_id, self.next_cid, data)
        self.next_cid += 1
        self.pending[command.cid] = (request, command)
        self._submit(command)
        self.set_timer("retry", self.config.retry_interval_s)

    def _submit(self, command: Command) -> None:
        if self.role == "leader":
            if (command.origin, command.cid) not in self.proposed_ids:
                slot = self.next_slot
                self.next_slot += 1
                self._propose_batch([(slot, command)])
        elif self.leader is not None and self.leader != self.node_id:
            self.send(self.leader, Forward(command))

    def _on_retry(self) -> None:
        if not self.pending:
            return
        for _, command in list(self.pending.values()):
            self._submit(command)
        self.set_timer("retry", self.config.retry_interval_s)

    # ------------------------------------------------------------------ dispatch
    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case Accept():
                self._on_accept(src, message)
            case Accepted():
                self._on_accepted(src, message)
            case Chosen(slots):
                self._learn(slots)
            case Heartbeat():
                self._on_heartbeat(src, message)
            case Forward(command):
                if self.role == "leader":
                    self._submit(command)
            case Prepare():
                self._on_prepare(src, message)
            case Promise():
                self._on_promise(src, message)
            case Nack():
                self._on_nack(message)
            case CatchUp():
                self._on_catch_up(src, message)
            case _:
                return

    def on_timer(self, name: TimerName) -> None:
        if name == "election":
            self._on_election_timer()
        elif name == "heartbeat":
            self._heartbeat()
        elif name == "retry":
            self._on_retry()


def _ballot(value: tuple[int, int] | list[int]) -> Ballot:
    """Ballots decode from msgpack as tuples; make sure comparisons see tuples."""
    return (int(value[0]), int(value[1]))
