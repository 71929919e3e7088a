"""A distributed lock manager with Chandy-Misra-Haas deadlock detection (AND model), or
wait-die / wound-wait deadlock prevention.

Chandy, Misra and Haas, "Distributed Deadlock Detection" (TOCS 1983), the edge-chasing
algorithm for the AND (resource) model; the priority rule that lets exactly one probe per
cycle succeed follows Sinha and Natarajan, "A Priority Based Distributed Deadlock Detection
Algorithm" (IEEE TSE 1985). Wait-die and wound-wait: Rosenkrantz, Stearns and Lewis,
"System Level Concurrency Control for Distributed Database Systems" (TODS 1978).

Assumptions: reliable FIFO channels and no process failures (the algorithm's own
assumptions). The simulator's network reorders and may duplicate, so messages are numbered
per directed link and delivered in order, once (`tejido.algorithms.fifo_a1`); loss,
partitions and crashes are left out of the ``chandy-misra-haas`` spec. Any synchrony.

Model: exclusive locks, each managed by one node (``L<i>`` by node ``i mod n + 1``). A
transaction runs at the node that received the client's ``txn`` command; it acquires its
locks one at a time in the order given, works for `work_s`, then releases them all (strict
two-phase locking) and commits; an abort releases them too. A waiting transaction waits
for the lock's holder: the wait-for graph has an edge waiter -> holder, so every
transaction has at most one outgoing edge and cycles never share a transaction.

Guarantees (detection): every cycle of the wait-for graph is detected while it exists, and
only cycles that exist are reported — at the moment of the report every edge of the cycle
is in the lock managers' tables (the invariant of the simulator spec checks exactly this).
The youngest transaction of the cycle (largest timestamp) is aborted, once per cycle.
Prevention: wait-die and wound-wait never let a cycle last (an edge always points from
older to younger, or the reverse, except for the moment a wound is in flight).

Message complexity: a probe travels one hop per edge of the cycle, so a cycle of k
transactions is detected with k probe messages (plus the periodic re-probing while a
transaction stays blocked); a lock costs a request and a grant (and a release).

Rules:

1. A manager grants a free lock at once. Otherwise, by policy:
   - detection: queue the requester and tell its home which transaction it waits for;
   - wait-die: an older requester waits, a younger one dies (Denied -> abort);
   - wound-wait: an older requester wounds the holder (Wound -> the holder aborts) and
     waits; a younger one waits.
   A released lock goes to the oldest waiter; the other waiters are told their new holder
   (detection), die if younger than it (wait-die) or wound it if older (wound-wait).
2. Probe (detection). A blocked transaction T sends ``Probe(initiator=T, path=[T])`` to the
   home of the holder it waits for, when it blocks and every `probe_interval_s` while it
   stays blocked. A home receiving a probe for its transaction U: discards it unless U is
   blocked; if U is the initiator, blocked in the same wait episode, the path is a cycle;
   otherwise it forwards ``path + [U]`` to the home of U's holder — only if the initiator
   is younger than U (priority rule: only the youngest's probe goes round, so one
   detection per cycle) and U is not already on the path.
3. A detected cycle's initiator is its youngest transaction: it aborts itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

from tejido.algorithms.fifo_a1 import FifoLinks, Sequenced
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = [
    "Blocked",
    "DeadlockConfig",
    "DeadlockDetected",
    "Denied",
    "Granted",
    "LockNode",
    "LockRequest",
    "Policy",
    "Probe",
    "Release",
    "TxnId",
    "Wound",
    "manager_of",
]

TxnId = tuple[int, int, int]
"""(start time in microseconds on the home's clock, home node, counter): a larger id is a
younger transaction."""
Policy = Literal["detect", "wait-die", "wound-wait", "none"]
"""``none`` is deliberately broken (waiters just wait): it exists to show the simulator's
persistence check catching deadlocks nobody resolves."""


def manager_of(lock: str, nodes: tuple[NodeId, ...]) -> NodeId:
    """The node managing lock ``L<i>``."""
    return nodes[int(lock.removeprefix("L")) % len(nodes)]


def _t(txn: TxnId) -> str:
    return f"T{txn[1]}.{txn[2]}"


class LockRequest(Sequenced, frozen=True):
    txn: TxnId
    lock: str

    def describe(self) -> str:
        return f"LockRequest {_t(self.txn)} {self.lock}"


class Release(Sequenced, frozen=True):
    """The transaction gives the lock back, or leaves its queue."""

    txn: TxnId
    lock: str

    def describe(self) -> str:
        return f"Release {_t(self.txn)} {self.lock}"


class Granted(Sequenced, frozen=True):
    txn: TxnId
    lock: str

    def describe(self) -> str:
        return f"Granted {_t(self.txn)} {self.lock}"


class Blocked(Sequenced, frozen=True):
    """The transaction waits for `lock`, held by `holder` (a wait-for edge)."""

    txn: TxnId
    lock: str
    holder: TxnId

    def describe(self) -> str:
        return f"Blocked {_t(self.txn)} {self.lock} by {_t(self.holder)}"


class Denied(Sequenced, frozen=True):
    """Wait-die: the younger requester dies."""

    txn: TxnId
    lock: str

    def describe(self) -> str:
        return f"Denied {_t(self.txn)} {self.lock}"


class Wound(Sequenced, frozen=True):
    """Wound-wait: an older transaction wants the lock `txn` holds."""

    txn: TxnId

    def describe(self) -> str:
        return f"Wound {_t(self.txn)}"


class Probe(Sequenced, frozen=True):
    initiator: TxnId
    episode: int
    target: TxnId
    path: list[TxnId]

    def describe(self) -> str:
        return f"Probe init={_t(self.initiator)} to={_t(self.target)} len={len(self.path)}"


class DeadlockDetected(Event, frozen=True):
    cycle: list[TxnId]
    victim: TxnId

    def describe(self) -> str:
        return f"DeadlockDetected {'->'.join(_t(t) for t in self.cycle)} victim={_t(self.victim)}"


class TxnFinished(Event, frozen=True):
    txn: TxnId
    outcome: str


@dataclass(frozen=True, slots=True)
class DeadlockConfig:
    policy: Policy = "detect"
    work_s: float = 0.005
    probe_interval_s: float = 0.05
    max_active: int = 3
    """Transactions a node runs at once; more are refused (``fail``, "busy"). Clients that
    give up leave their transactions running, and without a bound they pile up."""


@dataclass(slots=True)
class _Txn:
    txn: TxnId
    request: RequestId
    locks: list[str]
    held: list[str] = field(default_factory=list)
    waiting: str | None = None
    holder: TxnId | None = None
    episode: int = 0
    working: bool = False


@dataclass(slots=True)
class _Lock:
    holder: tuple[TxnId, NodeId] | None = None
    queue: list[tuple[TxnId, NodeId]] = field(default_factory=list)


class LockNode(Process):
    """Lock manager for its share of the locks, and home of the transactions it runs."""

    def __init__(self, env: Env, config: DeadlockConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or DeadlockConfig()
        self.links = FifoLinks()
        self.locks: dict[str, _Lock] = {}
        self.txns: dict[TxnId, _Txn] = {}
        self.detections: list[list[TxnId]] = []
        """Every cycle this node reported, in order (the no-phantom invariant reads it)."""
        self.aborted = 0
        self.committed = 0
        self._counter = 0
        self._local: list[Sequenced] = []

    def _drain(self) -> None:
        local = self._local
        while local:
            self._handle(self.node_id, local.pop(0))

    def on_start(self, recovered: Recovered) -> None:
        pass

    def _to(self, dst: NodeId, message: Sequenced) -> None:
        """Send in FIFO order; a message to this node is handled after the current input
        (never re-entrantly: a lock table must not change under the handler using it)."""
        if dst == self.node_id:
            self._local.append(message)
        else:
            self.send(dst, msgspec.structs.replace(message, seq=self.links.stamp(dst)))

    # ------------------------------------------------------------------ transactions (home)
    def on_command(self, request: RequestId, operation: Operation) -> None:
        locks = operation.value.split() if isinstance(operation.value, str) else []
        if operation.f != "txn" or not locks or len(set(locks)) != len(locks):
            self.reply(request, Outcome("fail", error="txn takes distinct lock names 'L0 L3'"))
            return
        if not all(_is_lock_name(lock) for lock in locks):
            self.reply(request, Outcome("fail", error=f"bad lock name in {operation.value!r}"))
            return
        if len(self.txns) >= self.config.max_active:
            self.reply(request, Outcome("fail", error="busy: too many transactions here"))
            return
        self._counter += 1
        txn = (round(self.now() * 1e6), int(self.node_id), self._counter)
        self.txns[txn] = _Txn(txn, request, locks)
        self._acquire_next(self.txns[txn])
        self._drain()

    def _acquire_next(self, t: _Txn) -> None:
        if len(t.held) == len(t.locks):
            t.working = True
            self.set_timer(_timer("work", t.txn), self.config.work_s)
            return
        lock = t.locks[len(t.held)]
        t.waiting = lock
        self._to(manager_of(lock, self.env.nodes), LockRequest(0, t.txn, lock))

    def _on_granted(self, m: Granted) -> None:
        t = self.txns.get(m.txn)
        if t is None or t.waiting != m.lock:
            self._to(manager_of(m.lock, self.env.nodes), Release(0, m.txn, m.lock))
            return
        t.held.append(m.lock)
        t.waiting = None
        t.holder = None
        t.episode += 1
        self.cancel_timer(_timer("probe", t.txn))
        self._acquire_next(t)

    def _on_blocked(self, m: Blocked) -> None:
        t = self.txns.get(m.txn)
        if t is None or t.waiting != m.lock or t.holder == m.holder:
            return
        t.holder = m.holder
        t.episode += 1
        if self.config.policy == "detect":
            self._probe(t)

    def _probe(self, t: _Txn) -> None:
        """Rule 2: start a probe along our wait-for edge."""
        if t.holder is None:
            return
        home = NodeId(t.holder[1])
        self._to(home, Probe(0, t.txn, t.episode, t.holder, [t.txn]))
        self.set_timer(_timer("probe", t.txn), self.config.probe_interval_s)

    def _on_probe(self, m: Probe) -> None:
        t = self.txns.get(m.target)
        if t is None or t.holder is None or t.waiting is None:
            return  # not blocked: the chain ends here
        if m.target == m.initiator:
            if m.episode == t.episode:
                self._deadlock(t, m.path)
            return
        if m.initiator < m.target or m.target in m.path:
            return  # priority rule, or a cycle the initiator is not on
        self._to(
            NodeId(t.holder[1]),
            Probe(0, m.initiator, m.episode, t.holder, [*m.path, m.target]),
        )

    def _deadlock(self, t: _Txn, cycle: list[TxnId]) -> None:
        """Rule 3: we are the youngest of the cycle (only our probe got round)."""
        self.detections.append(list(cycle))
        self.report(DeadlockDetected(list(cycle), t.txn))
        # The abort is its own step (a zero-delay timer), so observers see the cycle as it
        # was when it was reported, and the resolution after.
        self.cancel_timer(_timer("probe", t.txn))
        t.episode += 1
        self.set_timer(_timer("victim", t.txn), 0.0)

    def _abort(self, t: _Txn) -> None:
        self.aborted += 1
        self._end(t, Outcome("fail", None, error="aborted"))

    def _end(self, t: _Txn, outcome: Outcome) -> None:
        del self.txns[t.txn]
        self.cancel_timer(_timer("probe", t.txn))
        self.cancel_timer(_timer("work", t.txn))
        self.cancel_timer(_timer("victim", t.txn))
        for lock in [*t.held, *([t.waiting] if t.waiting else [])]:
            self._to(manager_of(lock, self.env.nodes), Release(0, t.txn, lock))
        self.report(TxnFinished(t.txn, outcome.type))
        self.reply(t.request, outcome)

    def _on_wounded(self, txn: TxnId) -> None:
        t = self.txns.get(txn)
        if t is not None:
            self._abort(t)

    # ------------------------------------------------------------------ lock manager
    def _on_request(self, src: NodeId, m: LockRequest) -> None:
        lock = self.locks.setdefault(m.lock, _Lock())
        entry = (m.txn, src)
        if lock.holder is None:
            lock.holder = entry
            self._to(src, Granted(0, m.txn, m.lock))
            return
        holder = lock.holder[0]
        policy = self.config.policy
        if policy == "wait-die" and m.txn > holder:
            self._to(src, Denied(0, m.txn, m.lock))
            return
        if policy == "wound-wait" and m.txn < holder:
            self._to(lock.holder[1], Wound(0, holder))
        lock.queue.append(entry)
        self._to(src, Blocked(0, m.txn, m.lock, holder))

    def _on_release(self, src: NodeId, m: Release) -> None:
        lock = self.locks.get(m.lock)
        if lock is None:
            return
        if lock.holder is not None and lock.holder[0] == m.txn:
            lock.holder = None
            if lock.queue:
                lock.queue.sort()
                lock.holder = lock.queue.pop(0)  # the oldest waiter
                self._to(lock.holder[1], Granted(0, lock.holder[0], m.lock))
                self._new_holder(m.lock, lock)
        else:
            lock.queue = [e for e in lock.queue if e[0] != m.txn]

    def _new_holder(self, name: str, lock: _Lock) -> None:
        """Rule 1, last sentence: the remaining waiters against the new holder."""
        if lock.holder is None:
            return
        holder, holder_home = lock.holder
        policy = self.config.policy
        keep: list[tuple[TxnId, NodeId]] = []
        for txn, home in lock.queue:
            if policy == "wait-die" and txn > holder:
                self._to(home, Denied(0, txn, name))
                continue
            if policy == "wound-wait" and txn < holder:
                self._to(holder_home, Wound(0, holder))
            keep.append((txn, home))
            self._to(home, Blocked(0, txn, name, holder))
        lock.queue = keep

    def wait_for_edges(self) -> dict[TxnId, TxnId]:
        """This manager's part of the global wait-for graph: waiter -> holder."""
        edges: dict[TxnId, TxnId] = {}
        for lock in self.locks.values():
            if lock.holder is not None:
                for txn, _ in lock.queue:
                    edges[txn] = lock.holder[0]
        return edges

    # ------------------------------------------------------------------ dispatch
    def on_message(self, src: NodeId, message: Message) -> None:
        if isinstance(message, Sequenced):
            for ready in self.links.receive(src, message):
                self._handle(src, ready)
            self._drain()

    def _handle(self, src: NodeId, message: Message) -> None:
        match message:
            case LockRequest():
                self._on_request(src, message)
            case Release():
                self._on_release(src, message)
            case Granted():
                self._on_granted(message)
            case Blocked():
                self._on_blocked(message)
            case Probe():
                self._on_probe(message)
            case Denied(txn=txn):
                self._on_wounded(txn)
            case Wound(txn=txn):
                self._on_wounded(txn)
            case _:
                return

    def on_timer(self, name: TimerName) -> None:
        kind, *parts = name.split(":")
        t = self.txns.get((int(parts[0]), int(parts[1]), int(parts[2])))
        if t is None:
            return
        if kind == "work" and t.working:
            self.committed += 1
            self._end(t, Outcome("ok", None))
        elif kind == "probe" and t.waiting is not None:
            self._probe(t)
        elif kind == "victim":
            self._abort(t)
        self._drain()


def _timer(kind: str, txn: TxnId) -> str:
    return f"{kind}:{txn[0]}:{txn[1]}:{txn[2]}"


def _is_lock_name(name: str) -> bool:
    return name.startswith("L") and name[1:].isdigit()
