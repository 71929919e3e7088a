"""Single-decree Paxos (the synod): agree on one value per key, once, forever.

Lamport, "The Part-Time Parliament" (TOCS 1998) and "Paxos Made Simple" (2001). Each key
is an independent instance; every node is a proposer, an acceptor and a learner.

Assumptions: asynchronous network that may lose, duplicate and reorder messages and be
partitioned; crash-recovery processes whose acceptor state survives in synced storage; no
Byzantine behaviour. No FIFO requirement. A majority of acceptors must be up and connected
for progress (safety needs nothing).

Guarantee (safety): at most one value is chosen per key, and once chosen it never changes.
Liveness only with a stable, eventually unique proposer: duelling proposers can livelock,
which the randomized retry backoff makes unlikely.

Message complexity: 4(n-1) messages for an uncontended proposal on n nodes (Prepare,
Promise, Accept, Accepted to and from every other acceptor; the proposer's own acceptor
answers locally).

Rules ("Paxos Made Simple" §2.2; ballots are ``(round, node)`` so no two proposers share
one):

1. Phase 1a: a proposer picks a ballot above every round it has seen and asks all acceptors
   to Prepare it. Its own acceptor promises first, durably, before any Prepare leaves: a
   proposer that crashed and forgot its ballot could otherwise reuse it with another value.
2. Phase 1b: an acceptor promises a ballot at least as high as any it promised (put, sync,
   then Promise from `on_durable`), reporting the highest-ballot value it accepted; it
   answers a lower ballot with Nack.
3. Phase 2a: with promises from a majority, the proposer asks acceptors to Accept, with its
   ballot, the value of the highest-ballot acceptance reported — or its own value if none
   was reported.
4. Phase 2b: an acceptor accepts unless it promised a higher ballot (put, sync, then
   Accepted from `on_durable`).
5. A value accepted by a majority in one ballot is chosen; the proposer learns it from the
   Accepted replies and tells every node (Chosen), which answer later commands from it.
6. The client interface is a write-once register per key: ``cas key (None, v)`` proposes v
   and succeeds iff v is the chosen value; ``read key`` runs phase 1 and, if some value was
   accepted, phase 2 with it (a value seen in phase 1 may not be chosen yet, so the read
   makes sure it is before returning it); with no accepted value reported, no value can
   have been chosen before the read's promises, and the read returns None.
7. A Nack or a silent phase (lost messages) restarts the proposal after a random backoff,
   with a higher ballot. One proposal per key runs at a time on a node; others queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = [
    "Accept",
    "Accepted",
    "Ballot",
    "Chosen",
    "Nack",
    "Prepare",
    "Promise",
    "SynodConfig",
    "SynodNode",
]

Ballot = tuple[int, int]
"""(round, proposer node): totally ordered, never shared by two proposers."""
Value = int | str
ZERO: Ballot = (0, 0)
_PROMISED = "synod/promised/"
_ACCEPTED = "synod/accepted/"


class Prepare(Message, frozen=True):
    key: str
    ballot: Ballot

    def describe(self) -> str:
        return f"Prepare {self.key} b={_b(self.ballot)}"


class Promise(Message, frozen=True):
    key: str
    ballot: Ballot
    accepted_ballot: Ballot
    accepted_value: Value | None

    def describe(self) -> str:
        return (
            f"Promise {self.key} b={_b(self.ballot)} "
            f"accepted={_b(self.accepted_ballot)}:{self.accepted_value!r}"
        )


class Accept(Message, frozen=True):
    key: str
    ballot: Ballot
    value: Value

    def describe(self) -> str:
        return f"Accept {self.key} b={_b(self.ballot)} v={self.value!r}"


class Accepted(Message, frozen=True):
    key: str
    ballot: Ballot

    def describe(self) -> str:
        return f"Accepted {self.key} b={_b(self.ballot)}"


class Nack(Message, frozen=True):
    key: str
    ballot: Ballot
    promised: Ballot

    def describe(self) -> str:
        return f"Nack {self.key} b={_b(self.ballot)} promised={_b(self.promised)}"


class Chosen(Message, frozen=True):
    key: str
    value: Value

    def describe(self) -> str:
        return f"Chosen {self.key} v={self.value!r}"


class Learned(Event, frozen=True):
    key: str
    value: Value


def _b(ballot: Ballot) -> str:
    return f"{ballot[0]}.{ballot[1]}"


class _AcceptorState(msgspec.Struct, frozen=True, array_like=True):
    ballot: Ballot
    value: Value | None = None


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_AcceptorState).decode


@dataclass(frozen=True, slots=True)
class SynodConfig:
    phase_timeout_s: float = 0.15
    """A phase without a majority of answers after this long is retried (rule 7)."""
    backoff_s: float = 0.05
    """Upper bound of the random wait before a retry."""


@dataclass(slots=True)
class _Proposal:
    request: RequestId
    key: str
    f: str  # cas | read
    value: Value | None  # the client's value (cas)
    ballot: Ballot = ZERO
    phase: int = 0  # 0 = waiting to start, 1, 2
    promises: dict[NodeId, Promise] = field(default_factory=dict)
    accepts: dict[NodeId, None] = field(default_factory=dict)
    proposing: Value | None = None


class SynodNode(Process):
    """Proposer, acceptor and learner of one single-decree instance per key."""

    def __init__(self, env: Env, config: SynodConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or SynodConfig()
        self.promised: dict[str, Ballot] = {}
        self.accepted: dict[str, tuple[Ballot, Value]] = {}
        self.durable_accepts: list[tuple[str, Ballot, Value]] = []
        """Every acceptance once durable, in order (the chosen-value invariant reads it)."""
        self.chosen: dict[str, Value] = {}
        self.learned_log: list[tuple[str, Value]] = []
        """Values as this incarnation learned them (the agreement invariant reads it)."""
        self.max_round: dict[str, int] = {}
        self.active: dict[str, _Proposal] = {}
        self.queued: dict[str, list[_Proposal]] = {}
        self._after: list[tuple[int, Callable[[], None]]] = []

    @property
    def quorum(self) -> int:
        return len(self.env.nodes) // 2 + 1

    # ------------------------------------------------------------------ storage
    def on_start(self, recovered: Recovered) -> None:
        for name, raw in sorted(recovered.state.items()):
            state = _decode(raw)
            if name.startswith(_PROMISED):
                key = name[len(_PROMISED) :]
                self.promised[key] = max(self.promised.get(key, ZERO), state.ballot)
            elif name.startswith(_ACCEPTED) and state.value is not None:
                key = name[len(_ACCEPTED) :]
                self.accepted[key] = (state.ballot, state.value)
                self.durable_accepts.append((key, state.ballot, state.value))
                self.promised[key] = max(self.promised.get(key, ZERO), state.ballot)
        for key, ballot in self.promised.items():
            self.max_round[key] = ballot[0]

    def _sync_then(self, action: Callable[[], None]) -> None:
        self._after.append((self.sync(), action))

    def on_durable(self, token: int) -> None:
        ready = [a for t, a in self._after if t <= token]
        self._after = [(t, a) for t, a in self._after if t > token]
        for action in ready:
            action()

    def _deliver(self, dst: NodeId, message: Message) -> None:
        if dst == self.node_id:
            self.on_message(dst, message)
        else:
            self.send(dst, message)

    # ------------------------------------------------------------------ acceptor (rules 2, 4)
    def _on_prepare(self, src: NodeId, m: Prepare) -> None:
        promised = self.promised.get(m.key, ZERO)
        self._see(m.key, m.ballot)
        if m.ballot < promised:
            self._deliver(src, Nack(m.key, m.ballot, promised))
            return
        if m.ballot > promised:
            self.promised[m.key] = m.ballot
            self.put(_PROMISED + m.key, _encode(_AcceptorState(m.ballot)))
        key, ballot = m.key, m.ballot

        def promise() -> None:
            accepted_ballot, accepted_value = self.accepted.get(key, (ZERO, None))
            self._deliver(src, Promise(key, ballot, accepted_ballot, accepted_value))

        self._sync_then(promise)

    def _on_accept(self, src: NodeId, m: Accept) -> None:
        promised = self.promised.get(m.key, ZERO)
        self._see(m.key, m.ballot)
        if m.ballot < promised:
            self._deliver(src, Nack(m.key, m.ballot, promised))
            return
        key, ballot, value = m.key, m.ballot, m.value
        if self.accepted.get(key) != (ballot, value):
            self.promised[key] = ballot
            self.accepted[key] = (ballot, value)
            self.put(_ACCEPTED + key, _encode(_AcceptorState(ballot, value)))

        def accepted() -> None:
            self.durable_accepts.append((key, ballot, value))
            self._deliver(src, Accepted(key, ballot))

        self._sync_then(accepted)

    def _see(self, key: str, ballot: Ballot) -> None:
        if ballot[0] > self.max_round.get(key, 0):
            self.max_round[key] = ballot[0]

    # ------------------------------------------------------------------ learner (rule 5)
    def _learn(self, key: str, value: Value) -> None:
        if key not in self.chosen:
            self.chosen[key] = value
            self.learned_log.append((key, value))
            self.report(Learned(key, value))

    # ------------------------------------------------------------------ proposer
    def on_command(self, request: RequestId, operation: Operation) -> None:
        key = operation.key or ""
        if operation.f == "read":
            proposal = _Proposal(request, key, "read", None)
        elif (
            operation.f == "cas"
            and isinstance(operation.value, tuple)
            and operation.value[0] is None
            and operation.value[1] is not None
        ):
            proposal = _Proposal(request, key, "cas", operation.value[1])
        else:
            self.reply(
                request,
                Outcome("fail", error="a synod register takes read, or cas (None, value)"),
            )
            return
        if key in self.chosen:
            self._answer(proposal, self.chosen[key])
            return
        if key in self.active:
            self.queued.setdefault(key, []).append(proposal)
            return
        self.active[key] = proposal
        self._phase1(proposal)

    def _answer(self, p: _Proposal, chosen: Value | None) -> None:
        if p.f == "read":
            self.reply(p.request, Outcome("ok", chosen))
        elif chosen == p.value:
            self.reply(p.request, Outcome("ok", (None, p.value)))
        else:
            self.reply(p.request, Outcome("fail", (None, p.value)))

    def _finish(self, key: str, chosen: Value | None) -> None:
        p = self.active.pop(key)
        self.cancel_timer(f"phase:{key}")
        self._answer(p, chosen)
        waiting = self.queued.get(key, [])
        while waiting:
            nxt = waiting.pop(0)
            if key in self.chosen:
                self._answer(nxt, self.chosen[key])
                continue
            self.active[key] = nxt
            self._phase1(nxt)
            break

    def _phase1(self, p: _Proposal) -> None:
        """Rule 1: a fresh ballot, promised durably by our own acceptor first."""
        round_ = max(self.max_round.get(p.key, 0), self.promised.get(p.key, ZERO)[0]) + 1
        self.max_round[p.key] = round_
        p.ballot = (round_, self.node_id)
        p.phase = 1
        p.promises.clear()
        p.accepts.clear()
        self.promised[p.key] = p.ballot
        self.put(_PROMISED + p.key, _encode(_AcceptorState(p.ballot)))
        ballot = p.ballot

        def start() -> None:
            if self.active.get(p.key) is not p or p.ballot != ballot:
                return
            own = self.accepted.get(p.key, (ZERO, None))
            p.promises[self.node_id] = Promise(p.key, ballot, own[0], own[1])
            self.broadcast(Prepare(p.key, ballot))
            self.set_timer(f"phase:{p.key}", self.config.phase_timeout_s)
            self._maybe_phase2(p)

        self._sync_then(start)

    def _on_promise(self, src: NodeId, m: Promise) -> None:
        p = self.active.get(m.key)
        if p is None or p.phase != 1 or p.ballot != m.ballot:
            return
        p.promises[src] = m
        self._maybe_phase2(p)

    def _maybe_phase2(self, p: _Proposal) -> None:
        if len(p.promises) < self.quorum:
            return
        best = max(p.promises.values(), key=lambda m: m.accepted_ballot)
        if best.accepted_value is None:
            if p.f == "read":
                self._finish(p.key, None)  # rule 6: nothing can have been chosen yet
                return
            p.proposing = p.value
        else:
            p.proposing = best.accepted_value
        p.phase = 2
        if p.proposing is None:
            return
        accept = Accept(p.key, p.ballot, p.proposing)
        for node in self.env.nodes:
            self._deliver(node, accept)
        self.set_timer(f"phase:{p.key}", self.config.phase_timeout_s)

    def _on_accepted(self, src: NodeId, m: Accepted) -> None:
        p = self.active.get(m.key)
        if p is None or p.phase != 2 or p.ballot != m.ballot or p.proposing is None:
            return
        p.accepts[src] = None
        if len(p.accepts) >= self.quorum:
            value = p.proposing
            self._learn(p.key, value)
            self.broadcast(Chosen(p.key, value))
            self._finish(p.key, value)

    def _on_nack(self, m: Nack) -> None:
        self._see(m.key, m.promised)
        p = self.active.get(m.key)
        if p is not None and p.ballot == m.ballot and p.phase in (1, 2):
            self._retry_later(p)

    def _retry_later(self, p: _Proposal) -> None:
        p.phase = 0
        self.set_timer(f"phase:{p.key}", self.env.rng.uniform(0.0, self.config.backoff_s))

    # ------------------------------------------------------------------ dispatch
    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case Prepare():
                self._on_prepare(src, message)
            case Promise():
                self._on_promise(src, message)
            case Accept():
                self._on_accept(src, message)
            case Accepted():
                self._on_accepted(src, message)
            case Nack():
                self._on_nack(message)
            case Chosen(key, value):
                self._learn(key, value)
                p = self.active.get(key)
                if p is not None:
                    self._finish(key, value)
            case _:
                return

    def on_timer(self, name: TimerName) -> None:
        key = name.removeprefix("phase:")
        p = self.active.get(key)
        if p is None:
            return
        if key in self.chosen:
            self._finish(key, self.chosen[key])
        elif p.phase == 0:
            self._phase1(p)
        else:
            self._retry_later(p)
