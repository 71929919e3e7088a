"""A linearizable replicated register over majority quorums (multi-writer ABD).

Attiya, Bar-Noy and Dolev, "Sharing Memory Robustly in Message-Passing Systems" (JACM
1995), in the multi-writer form of Lynch and Shvartsman (1997). Every node is a replica
and can coordinate client operations. Each key is an independent register.

Rules:

1. A replica holds, per key, the value with the highest timestamp it has stored. A
   timestamp is ``(counter, writer, nonce)``; tuples compare lexicographically, so they are
   totally ordered, and the nonce (drawn per write) keeps two writes from ever sharing one,
   even when a writer crashes, loses its unsynced state and reuses a counter.
2. Write(v): ask every replica for its timestamp (phase 1) and wait for a majority; pick
   ``(max counter + 1, me, nonce)``; store ``(ts, v)`` at a majority (phase 2); answer ok.
3. Read: ask every replica for its ``(ts, value)`` and wait for a majority; take the
   highest; *write it back* to a majority (phase 2), so no later read can return an older
   value (the "new-old inversion" the write-back prevents); answer with the value.
4. A replica acknowledges a store only once it is durable (it syncs the stored value, and
   acks from `on_durable`); a store with an older timestamp is acknowledged once whatever
   the replica holds is durable. So an acknowledged store survives any crash.
5. Messages can be lost: the coordinator resends the current phase's request to the
   replicas that have not answered, every ``retry_interval_s``. Replies for an operation
   the coordinator no longer runs (or ran before it crashed) are ignored.

Two deliberately broken variants exist to prove the checkers catch what they should:
``write_back=False`` (rule 3 skipped) and ``local_reads=True`` (reads answer from the
coordinator's own replica).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = [
    "Query",
    "QueryReply",
    "RegisterConfig",
    "RegisterReplica",
    "Store",
    "StoreAck",
    "Timestamp",
]

Value = int | str | None
Timestamp = tuple[int, int, int]
"""(counter, writer node, nonce); (0, 0, 0) is the initial timestamp of an absent key."""

ZERO: Timestamp = (0, 0, 0)
_STATE_PREFIX = "register/"


class Query(Message, frozen=True):
    op: int
    key: str

    def describe(self) -> str:
        return f"Query op={self.op % 10000} key={self.key}"


class QueryReply(Message, frozen=True):
    op: int
    key: str
    ts: Timestamp
    value: Value

    def describe(self) -> str:
        return (
            f"QueryReply op={self.op % 10000} key={self.key} ts={_ts(self.ts)} value={self.value!r}"
        )


class Store(Message, frozen=True):
    op: int
    key: str
    ts: Timestamp
    value: Value

    def describe(self) -> str:
        return f"Store op={self.op % 10000} key={self.key} ts={_ts(self.ts)} value={self.value!r}"


class StoreAck(Message, frozen=True):
    op: int

    def describe(self) -> str:
        return f"StoreAck op={self.op % 10000}"


class Stored(Event, frozen=True):
    """A replica adopted a newer value (reported for traces and diagrams)."""

    key: str
    ts: Timestamp
    value: Value


def _ts(ts: Timestamp) -> str:
    return f"{ts[0]}.{ts[1]}"


class _Entry(msgspec.Struct, frozen=True, array_like=True):
    ts: Timestamp
    value: Value


_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(_Entry).decode


@dataclass(frozen=True, slots=True)
class RegisterConfig:
    retry_interval_s: float = 0.05
    write_back: bool = True
    local_reads: bool = False


@dataclass(slots=True)
class _Pending:
    """An operation this node coordinates."""

    request: RequestId
    f: str  # "read" or "write"
    key: str
    value: Value  # the value to write (for a read: chosen in phase 1)
    phase: int = 1
    ts: Timestamp = ZERO
    replies: dict[NodeId, tuple[Timestamp, Value]] = field(default_factory=dict)
    acks: dict[NodeId, None] = field(default_factory=dict)


class RegisterReplica(Process):
    """One node: a replica of every key, and a coordinator for the commands it receives."""

    __slots__ = ("_acks_waiting", "_durable_token", "_last_token", "config", "data", "pending")

    def __init__(self, env: Env, config: RegisterConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or RegisterConfig()
        self.data: dict[str, tuple[Timestamp, Value]] = {}
        self.pending: dict[int, _Pending] = {}
        self._last_token = 0
        self._durable_token = 0
        self._acks_waiting: list[tuple[int, NodeId, int]] = []  # (token, dst, op)

    @property
    def quorum(self) -> int:
        return len(self.env.nodes) // 2 + 1

    def on_start(self, recovered: Recovered) -> None:
        for name, raw in sorted(recovered.state.items()):
            if name.startswith(_STATE_PREFIX):
                entry = _decode_entry(raw)
                self.data[name[len(_STATE_PREFIX) :]] = (entry.ts, entry.value)

    # ------------------------------------------------------------------ coordinator
    def on_command(self, request: RequestId, operation: Operation) -> None:
        key = operation.key or ""
        if operation.f == "read":
            if self.config.local_reads:
                self.reply(request, Outcome("ok", self.data.get(key, (ZERO, None))[1]))
                return
            value: Value = None
        elif operation.f == "write":
            if isinstance(operation.value, tuple):
                self.reply(request, Outcome("fail", error="write takes a scalar value"))
                return
            value = operation.value
        else:
            self.reply(
                request,
                Outcome("fail", error=f"register supports read and write, not {operation.f}"),
            )
            return
        op = self.env.rng.randrange(1, 1 << 62)
        self.pending[op] = _Pending(request, operation.f, key, value)
        self._broadcast_phase(op)

    def _broadcast_phase(self, op: int) -> None:
        pending = self.pending[op]
        answered = pending.replies if pending.phase == 1 else pending.acks
        message: Message
        if pending.phase == 1:
            message = Query(op, pending.key)
        else:
            message = Store(op, pending.key, pending.ts, pending.value)
        for node in self.env.nodes:
            if node not in answered:
                self._send_or_handle(node, message)
        if op in self.pending:
            self.set_timer(f"retry:{op}", self.config.retry_interval_s)

    def _send_or_handle(self, dst: NodeId, message: Message) -> None:
        if dst == self.node_id:
            self.on_message(dst, message)
        else:
            self.send(dst, message)

    def on_timer(self, name: TimerName) -> None:
        op = int(name.removeprefix("retry:"))
        if op in self.pending:
            self._broadcast_phase(op)

    def _on_query_reply(self, src: NodeId, reply: QueryReply) -> None:
        pending = self.pending.get(reply.op)
        if pending is None or pending.phase != 1:
            return
        pending.replies[src] = (reply.ts, reply.value)
        if len(pending.replies) < self.quorum:
            return
        ts, value = max(pending.replies.values(), key=lambda tv: tv[0])
        if pending.f == "write":
            pending.ts = (ts[0] + 1, self.node_id, self.env.rng.randrange(1, 1 << 62))
        else:
            pending.ts, pending.value = ts, value
            if not self.config.write_back:
                self._finish(reply.op)
                return
        pending.phase = 2
        self._broadcast_phase(reply.op)

    def _on_store_ack(self, src: NodeId, ack: StoreAck) -> None:
        pending = self.pending.get(ack.op)
        if pending is None or pending.phase != 2:
            return
        pending.acks[src] = None
        if len(pending.acks) >= self.quorum:
            self._finish(ack.op)

    def _finish(self, op: int) -> None:
        pending = self.pending.pop(op)
        self.cancel_timer(f"retry:{op}")
        self.reply(pending.request, Outcome("ok", pending.value))

    # ------------------------------------------------------------------ replica
    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case Query(op, key):
                ts, value = self.data.get(key, (ZERO, None))
                self._send_or_handle(src, QueryReply(op, key, ts, value))
            case Store(op, key, ts, value):
                self._on_store(src, op, key, ts, value)
            case QueryReply():
                self._on_query_reply(src, message)
            case StoreAck():
                self._on_store_ack(src, message)
            case _:
                return  # not ours: ignore rather than crash on a stray message

    def _on_store(self, src: NodeId, op: int, key: str, ts: Timestamp, value: Value) -> None:
        current, _ = self.data.get(key, (ZERO, None))
        if ts > current:
            self.data[key] = (ts, value)
            self.put(_STATE_PREFIX + key, _encode(_Entry(ts, value)))
            self._last_token = self.sync()
            self.report(Stored(key, ts, value))
        if self._last_token > self._durable_token:
            self._acks_waiting.append((self._last_token, src, op))
        else:
            self._send_or_handle(src, StoreAck(op))

    def on_durable(self, token: int) -> None:
        self._durable_token = token
        ready = [w for w in self._acks_waiting if w[0] <= token]
        if ready:
            self._acks_waiting = [w for w in self._acks_waiting if w[0] > token]
            for _, dst, op in ready:
                self._send_or_handle(dst, StoreAck(op))
