"""Two-phase commit (2PC) with durable logs at the coordinator and the participants.

Gray, "Notes on Data Base Operating Systems" (1978), and Lampson & Sturgis, "Crash Recovery
in a Distributed Data Storage System" (1976); the recovery rules follow Bernstein,
Hadzilacos and Goodman, "Concurrency Control and Recovery in Database Systems" (1987), §7.

Assumptions: asynchronous network that may lose, duplicate and reorder messages and be
partitioned; processes crash and recover with their synced storage (crash-recovery model);
no Byzantine behaviour. No FIFO requirement.

Guarantees: atomicity (AC1-AC2 in Bernstein et al.): every process that decides a
transaction decides the same outcome, and commit is decided only if every participant voted
yes. Termination only once the coordinator is reachable: 2PC *blocks* — a participant that
voted yes may neither commit nor abort on its own, and keeps the transaction's lock until it
hears the decision (the case `tests/algorithms/test_commit_scenarios.py` demonstrates).

Message complexity: 4n for n participants in a failure-free run (n Prepare, n Vote, n
Decision, n Ack); a coordinator is never a participant of its own transaction here.

Rules:

1. The node that receives a client's ``commit`` command coordinates that transaction; every
   other node is a participant. The command's key is the item the transaction writes (and
   locks at each participant); its value names the transaction and is the value written.
2. Coordinator: log ``begin`` (synced) before any Prepare leaves, so a recovering
   coordinator knows which transactions it left undecided.
3. Participant, on Prepare: vote no if the item is locked by another prepared transaction
   (or, with probability ``no_vote_probability``, on its own); otherwise lock the item. The
   vote — yes or no — is logged and synced before the Vote leaves (from `on_durable`), so a
   duplicate Prepare after a crash gets the same answer.
4. Coordinator: commit iff every participant voted yes; abort on a no vote or when votes are
   missing after ``vote_timeout_s``. The decision is logged and synced before any Decision
   message or client reply leaves.
5. Participant, on Decision: log it (synced), apply it (write the value on commit), release
   the lock, then Ack. It answers a repeated Decision with another Ack.
6. Coordinator: resend the Decision every ``retry_interval_s`` to participants that have not
   acknowledged; once all have, log ``end`` (the record may then be garbage collected).
7. A prepared participant without a decision asks the coordinator every
   ``status_interval_s`` (DecisionRequest). The coordinator answers with its logged decision,
   and with abort for a transaction it has no record of (presumed abort: nothing is logged
   before ``begin``, so no record means it never decided commit).
8. Recovery. Coordinator: a transaction logged ``begin`` without a decision is aborted
   (logged, then announced); a decided one without ``end`` resumes rule 6. Participant:
   prepared transactions re-take their locks and resume rule 7.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = [
    "Ack",
    "CommitConfig",
    "Decision",
    "DecisionRequest",
    "Prepare",
    "TwoPhaseCommitNode",
    "Vote",
]

TxnId = int
Outcome2PC = Literal["commit", "abort"]

_COORD = "2pc/coord/"
_PART = "2pc/part/"


class Prepare(Message, frozen=True):
    txn: TxnId
    key: str

    def describe(self) -> str:
        return f"Prepare t{self.txn} key={self.key}"


class Vote(Message, frozen=True):
    txn: TxnId
    yes: bool

    def describe(self) -> str:
        return f"Vote t{self.txn} {'yes' if self.yes else 'no'}"


class Decision(Message, frozen=True):
    txn: TxnId
    outcome: Outcome2PC

    def describe(self) -> str:
        return f"Decision t{self.txn} {self.outcome}"


class Ack(Message, frozen=True):
    txn: TxnId

    def describe(self) -> str:
        return f"Ack t{self.txn}"


class DecisionRequest(Message, frozen=True):
    txn: TxnId

    def describe(self) -> str:
        return f"DecisionRequest t{self.txn}"


class Decided(Event, frozen=True):
    txn: TxnId
    outcome: Outcome2PC
    role: str


class Blocked(Event, frozen=True):
    """A participant voted yes and waits for the decision (holding its lock)."""

    txn: TxnId
    key: str


class _CoordRecord(msgspec.Struct, frozen=True, array_like=True):
    key: str
    participants: tuple[int, ...]
    state: str  # begin | commit | abort | end (after commit or abort)
    outcome: str = ""


class _PartRecord(msgspec.Struct, frozen=True, array_like=True):
    key: str
    coordinator: int
    state: str  # prepared | voted-no | commit | abort


_encode = msgspec.msgpack.Encoder().encode
_decode_coord = msgspec.msgpack.Decoder(_CoordRecord).decode
_decode_part = msgspec.msgpack.Decoder(_PartRecord).decode


@dataclass(frozen=True, slots=True)
class CommitConfig:
    vote_timeout_s: float = 0.3
    retry_interval_s: float = 0.1
    status_interval_s: float = 0.25
    no_vote_probability: float = 0.1


@dataclass(slots=True)
class _Coordinating:
    key: str
    participants: tuple[NodeId, ...]
    request: RequestId | None
    state: str = "begin"  # begin | voting | deciding | commit | abort
    votes: dict[NodeId, bool] = field(default_factory=dict)
    acks: dict[NodeId, None] = field(default_factory=dict)


class TwoPhaseCommitNode(Process):
    """Coordinator of the transactions it is asked to commit, participant in the others'."""

    def __init__(self, env: Env, config: CommitConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or CommitConfig()
        self.coordinating: dict[TxnId, _Coordinating] = {}
        self.coord_outcomes: dict[TxnId, Outcome2PC] = {}
        """Every decision this node made as coordinator (logged before it was announced)."""
        self.participating: dict[TxnId, _PartRecord] = {}
        self.locks: dict[str, TxnId] = {}
        """Item -> the prepared transaction holding its lock (rule 3)."""
        self.data: dict[str, int] = {}
        """Committed writes, item -> value (the participant's database)."""
        self.durable_log: list[tuple[TxnId, str, Outcome2PC]] = []
        """(transaction, role, outcome) for every decision once it is durable, in order;
        a participant's durable no vote counts as its abort. Checkers read this."""
        self._after: list[tuple[int, Callable[[], None]]] = []

    # ------------------------------------------------------------------ durability helper
    def _sync_then(self, action: Callable[[], None]) -> None:
        self._after.append((self.sync(), action))

    def on_durable(self, token: int) -> None:
        ready = [a for t, a in self._after if t <= token]
        self._after = [(t, a) for t, a in self._after if t > token]
        for action in ready:
            action()

    # ------------------------------------------------------------------ recovery (rule 8)
    def on_start(self, recovered: Recovered) -> None:
        for name, raw in sorted(recovered.state.items()):
            if name.startswith(_COORD):
                self._recover_coordinator(int(name[len(_COORD) :]), _decode_coord(raw))
            elif name.startswith(_PART):
                self._recover_participant(int(name[len(_PART) :]), _decode_part(raw))

    def _recover_coordinator(self, txn: TxnId, record: _CoordRecord) -> None:
        participants = tuple(NodeId(p) for p in record.participants)
        if record.state == "end":
            self.coord_outcomes[txn] = "commit" if record.outcome == "commit" else "abort"
            self.durable_log.append((txn, "coordinator", self.coord_outcomes[txn]))
            return
        c = _Coordinating(record.key, participants, None)
        self.coordinating[txn] = c
        if record.state == "begin":
            self._decide(txn, "abort")
        else:
            outcome: Outcome2PC = "commit" if record.state == "commit" else "abort"
            self.coord_outcomes[txn] = outcome
            self.durable_log.append((txn, "coordinator", outcome))
            c.state = outcome
            self._announce(txn)

    def _recover_participant(self, txn: TxnId, record: _PartRecord) -> None:
        self.participating[txn] = record
        if record.state == "prepared":
            self.locks[record.key] = txn
            self.set_timer(f"status:{txn}", self.config.status_interval_s)
        else:
            if record.state == "commit":
                self.data[record.key] = txn
            self.durable_log.append((txn, "participant", _part_outcome(record.state)))

    # ------------------------------------------------------------------ coordinator
    def on_command(self, request: RequestId, operation: Operation) -> None:
        if operation.f != "commit" or operation.key is None or not isinstance(operation.value, int):
            self.reply(
                request,
                Outcome("fail", error="two-phase commit takes commit(key, transaction id: int)"),
            )
            return
        txn = operation.value
        if txn in self.coordinating or txn in self.coord_outcomes:
            self.reply(request, Outcome("fail", error=f"transaction {txn} already exists"))
            return
        participants = self.env.peers
        c = _Coordinating(operation.key, participants, request)
        self.coordinating[txn] = c
        self._log_coord(txn, c, "begin")
        self._sync_then(lambda: self._send_prepares(txn))

    def _send_prepares(self, txn: TxnId) -> None:
        c = self.coordinating.get(txn)
        if c is None or c.state != "begin":
            return
        c.state = "voting"
        for p in c.participants:
            self.send(p, Prepare(txn, c.key))
        self.set_timer(f"votes:{txn}", self.config.vote_timeout_s)

    def _on_vote(self, src: NodeId, vote: Vote) -> None:
        c = self.coordinating.get(vote.txn)
        if c is None or c.state != "voting" or src in c.votes or src not in c.participants:
            return
        c.votes[src] = vote.yes
        if not vote.yes:
            self._decide(vote.txn, "abort")
        elif len(c.votes) == len(c.participants):
            self._decide(vote.txn, "commit")

    def _decide(self, txn: TxnId, outcome: Outcome2PC) -> None:
        c = self.coordinating[txn]
        c.state = "deciding"
        self.cancel_timer(f"votes:{txn}")
        self.coord_outcomes[txn] = outcome
        self._log_coord(txn, c, outcome, outcome)
        self.report(Decided(txn, outcome, "coordinator"))

        def announce() -> None:
            self.durable_log.append((txn, "coordinator", outcome))
            c.state = outcome
            if c.request is not None:
                self.reply(c.request, Outcome("ok" if outcome == "commit" else "fail", txn))
                c.request = None
            self._announce(txn)

        self._sync_then(announce)

    def _announce(self, txn: TxnId) -> None:
        c = self.coordinating[txn]
        outcome = self.coord_outcomes[txn]
        for p in c.participants:
            if p not in c.acks:
                self.send(p, Decision(txn, outcome))
        self.set_timer(f"decision:{txn}", self.config.retry_interval_s)

    def _on_ack(self, src: NodeId, ack: Ack) -> None:
        c = self.coordinating.get(ack.txn)
        if c is None or c.state not in ("commit", "abort") or src not in c.participants:
            return
        c.acks[src] = None
        if len(c.acks) == len(c.participants):
            self.cancel_timer(f"decision:{ack.txn}")
            self._log_coord(ack.txn, c, "end", self.coord_outcomes[ack.txn])
            del self.coordinating[ack.txn]

    def _on_decision_request(self, src: NodeId, request: DecisionRequest) -> None:
        outcome = self.coord_outcomes.get(request.txn)
        c = self.coordinating.get(request.txn)
        if c is not None and c.state in ("begin", "voting", "deciding"):
            return  # still deciding (or the decision is not durable yet): it will announce
        self.send(src, Decision(request.txn, outcome or "abort"))  # rule 7: presumed abort

    def _log_coord(self, txn: TxnId, c: _Coordinating, state: str, outcome: str = "") -> None:
        record = _CoordRecord(c.key, tuple(int(p) for p in c.participants), state, outcome)
        self.put(f"{_COORD}{txn}", _encode(record))

    # ------------------------------------------------------------------ participant
    def _on_prepare(self, src: NodeId, prepare: Prepare) -> None:
        txn = prepare.txn
        known = self.participating.get(txn)
        if known is not None:
            if known.state in ("prepared", "voted-no"):
                # A duplicate (or a resend after our crash): repeat the durable vote.
                yes = known.state == "prepared"
                self._sync_then(lambda: self.send(src, Vote(txn, yes)))
            return
        holder = self.locks.get(prepare.key)
        refuse = self.env.rng.random() < self.config.no_vote_probability
        if holder is None and not refuse:
            record = _PartRecord(prepare.key, int(src), "prepared")
            self.locks[prepare.key] = txn
            self.report(Blocked(txn, prepare.key))
            self.set_timer(f"status:{txn}", self.config.status_interval_s)
        else:
            record = _PartRecord(prepare.key, int(src), "voted-no")
        self._log_part(txn, record)
        yes = record.state == "prepared"

        def vote() -> None:
            if not yes:
                self.durable_log.append((txn, "participant", "abort"))
            self.send(src, Vote(txn, yes))

        self._sync_then(vote)

    def _on_decision(self, src: NodeId, decision: Decision) -> None:
        txn = decision.txn
        known = self.participating.get(txn)
        if known is not None and known.state in ("commit", "abort"):
            self._sync_then(lambda: self.send(src, Ack(txn)))  # a repeated Decision
            return
        if known is None:
            # The Prepare was lost or is still on its way: remember the outcome, so that a
            # late Prepare neither locks the item nor gets a vote.
            known = _PartRecord("", int(src), "voted-no")
        if known.state == "prepared" and known.key and self.locks.get(known.key) == txn:
            del self.locks[known.key]
        if decision.outcome == "commit" and known.key:
            self.data[known.key] = txn
        record = _PartRecord(known.key, known.coordinator, decision.outcome)
        self._log_part(txn, record)
        self.cancel_timer(f"status:{txn}")
        self.report(Decided(txn, decision.outcome, "participant"))
        outcome = decision.outcome

        def acknowledge() -> None:
            self.durable_log.append((txn, "participant", outcome))
            self.send(src, Ack(txn))

        self._sync_then(acknowledge)

    def _log_part(self, txn: TxnId, record: _PartRecord) -> None:
        self.participating[txn] = record
        self.put(f"{_PART}{txn}", _encode(record))

    # ------------------------------------------------------------------ dispatch
    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case Prepare():
                self._on_prepare(src, message)
            case Vote():
                self._on_vote(src, message)
            case Decision():
                self._on_decision(src, message)
            case Ack():
                self._on_ack(src, message)
            case DecisionRequest():
                self._on_decision_request(src, message)
            case _:
                return  # not a 2PC message: ignore it rather than crash

    def on_timer(self, name: TimerName) -> None:
        kind, _, number = name.partition(":")
        txn = int(number)
        if kind == "votes":
            c = self.coordinating.get(txn)
            if c is not None and c.state == "voting":
                self._decide(txn, "abort")  # rule 4: missing votes
        elif kind == "decision":
            if txn in self.coordinating:
                self._announce(txn)
        elif kind == "status":
            record = self.participating.get(txn)
            if record is not None and record.state == "prepared":
                self.send(NodeId(record.coordinator), DecisionRequest(txn))
                self.set_timer(name, self.config.status_interval_s)


def _part_outcome(state: str) -> Outcome2PC:
    return "commit" if state == "commit" else "abort"
