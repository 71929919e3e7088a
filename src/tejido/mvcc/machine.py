"""`StoreStateMachine`: the store's pure state machine, run by Raft (implements
`tejido.raft.kv.StateMachine` and ``apply_batch``).

Rules (the wrapping contract is in `tejido.mvcc.api`):

1. `apply` decodes an encoded `Operation`. ``f == "store"`` with ``data``: a `Command`
   (exactly-once through `Sessions` when it names a session, then executed on the
   `KeySpace`); ``data is None`` and f in read/write/cas/append: the simulator's register
   workload, mapped onto the key space (the UTF-8 key, ``None`` -> ``b"\\0"``; values are
   msgpack-encoded scalars), answered with the Outcome shapes of
   `tejido.raft.kv.KeyValueStateMachine` so the linearizability checker can judge it.
2. `apply` never raises on bad input (a raise on one replica would be a divergence):
   an undecodable Operation -> ``Outcome("fail")``; a malformed or refused store command
   -> ``Outcome("ok", data=StoreError)``; nothing changes in either case.
3. `read` answers ``f == "read"`` without changing anything: ``data`` a `Query`, or the
   register read.
4. Time: only ``Command.time`` (stamped by the proposing leader) advances the machine's
   clock; it is used for nothing but session expiry.
5. ``restore(snapshot())`` gives an equal machine; equal machines give equal snapshot
   bytes (keys sorted, leases by id, sessions in activity order); ``__eq__`` and
   `digest` compare snapshots.
6. ``on_events`` (set by the runtime) is called from `apply` with each new revision and
   its events, in order; the machine only calls what it was given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import assert_never

import msgspec

from tejido.core.operations import Operation, Outcome
from tejido.mvcc.api import (
    MAX_REQUEST_BYTES,
    STORE_OPERATION,
    CloseSession,
    CloseSessionResponse,
    Command,
    CompactionRequest,
    DeleteRangeRequest,
    Event,
    KeyValue,
    LeaseExpire,
    LeaseGrant,
    LeaseLeases,
    LeaseRevoke,
    LeaseStatus,
    LeaseTimeToLive,
    OpenSession,
    OpenSessionResponse,
    PutRequest,
    Query,
    RangeRequest,
    Request,
    Result,
    StoreError,
    TxnRequest,
    decode_command,
    decode_query,
    encode_result,
)
from tejido.mvcc.keyindex import KeyHistory, Record
from tejido.mvcc.keyspace import EventsHook, KeySpace
from tejido.mvcc.session import DEFAULT_SESSION_TTL_S, Session, Sessions

__all__ = ["REGISTER_KEY_OF_NONE", "StoreStateMachine"]

REGISTER_KEY_OF_NONE = b"\0"
"""The key of the single-register workload (``Operation.key is None``)."""

_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What decoding bad bytes may raise (msgspec raises the last two for invalid UTF-8 and
for nesting deeper than the interpreter's stack allows)."""

_ENVELOPE_SLACK = 1024
"""An Operation wrapping a maximal command may exceed it by its own few fields."""

_encoder = msgspec.msgpack.Encoder()
_encode = _encoder.encode
_decode_operation = msgspec.msgpack.Decoder(Operation).decode
_decode_scalar = msgspec.msgpack.Decoder(int | str | None).decode


class _SessionState(msgspec.Struct, frozen=True, gc=False, array_like=True):
    client_id: int
    last_time: float
    last_seq: int
    last_result: bytes


class _State(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """The snapshot (rule 5): everything replicated, nothing derived."""

    revision: int
    compacted: int
    keys: list[tuple[bytes, list[Record]]]
    leases: list[LeaseStatus]
    next_lease_id: int
    sessions: list[_SessionState]
    next_client_id: int
    now: float


_decode_state = msgspec.msgpack.Decoder(_State).decode


class StoreStateMachine:
    """The store: an MVCC key space, leases and exactly-once sessions."""

    __slots__ = ("sessions", "space")

    def __init__(self, session_ttl_s: float = DEFAULT_SESSION_TTL_S) -> None:
        self.space = KeySpace()
        self.sessions = Sessions(session_ttl_s)

    # ---------------------------------------------------------------- views for the node

    @property
    def revision(self) -> int:
        return self.space.revision

    @property
    def compacted_revision(self) -> int:
        return self.space.compacted

    @property
    def on_events(self) -> EventsHook | None:
        return self.space.on_events

    @on_events.setter
    def on_events(self, hook: EventsHook | None) -> None:
        self.space.on_events = hook

    def events(self, start_revision: int, key: bytes, range_end: bytes = b"") -> list[Event]:
        """Watch catch-up: see `KeySpace.events` (raises `StoreErrorRaised` if compacted)."""
        return self.space.events(start_revision, key, range_end)

    def leases(self) -> list[LeaseStatus]:
        """Every lease and its granted TTL, for the lessor to rebuild deadlines."""
        return self.space.leases.statuses()

    def now(self) -> float:
        """The newest leader time applied (rule 4)."""
        return self.sessions.now

    # ---------------------------------------------------------------- StateMachine

    def apply(self, command: bytes) -> bytes:
        if len(command) > MAX_REQUEST_BYTES + _ENVELOPE_SLACK:
            return self._result(
                self.space.error("request_too_large", f"a request of {len(command)} bytes")
            )
        try:
            operation = _decode_operation(command)
        except _DECODE_ERRORS as exc:
            return _encode(Outcome("fail", error=f"not a store operation: {exc}"))
        if operation.data is None:
            return _encode(self._register(operation))
        if operation.f == "read":
            return self._query(operation.data)
        if operation.f != STORE_OPERATION:
            return self._result(
                self.space.error("bad_request", f"unknown operation {operation.f!r}")
            )
        try:
            decoded = decode_command(operation.data)
        except RecursionError:
            # Deterministic on every replica: the same refusal as `KeySpace`'s depth check.
            return self._result(self.space.too_deep())
        except _DECODE_ERRORS as exc:
            return self._result(self.space.error("bad_request", f"malformed command: {exc}"))
        return self._command(decoded)

    def apply_batch(self, commands: Sequence[bytes], results: bool) -> list[bytes]:
        applied = [self.apply(command) for command in commands]
        return applied if results else []

    def read(self, query: bytes) -> bytes:
        if len(query) > MAX_REQUEST_BYTES + _ENVELOPE_SLACK:
            return self._result(
                self.space.error("request_too_large", f"a query of {len(query)} bytes")
            )
        try:
            operation = _decode_operation(query)
        except _DECODE_ERRORS as exc:
            return _encode(Outcome("fail", error=f"not a store operation: {exc}"))
        if operation.f != "read":
            return _encode(Outcome("fail", error=f"not a read: {operation.f}"))
        if operation.data is None:
            return _encode(self._register(operation))
        return self._query(operation.data)

    def _query(self, data: bytes) -> bytes:
        try:
            query: Query = decode_query(data)
        except _DECODE_ERRORS as exc:
            return self._result(self.space.error("bad_request", f"malformed query: {exc}"))
        match query:
            case RangeRequest():
                return self._result(self.space.range(query))
            case LeaseTimeToLive():
                return self._result(self.space.lease_time_to_live(query))
            case LeaseLeases():
                return self._result(self.space.lease_leases())
            case _:
                assert_never(query)

    @staticmethod
    def _result(result: Result) -> bytes:
        return _encode(Outcome("ok", data=encode_result(result)))

    # ---------------------------------------------------------------- commands

    def _command(self, command: Command) -> bytes:
        """Sessions (session.py rules 2-3), then the operation."""
        self.sessions.advance(command.time)
        if not command.client_id and not command.seq:
            return self._result(self._execute(command.op))
        if command.client_id <= 0 or command.seq <= 0:
            return self._result(
                self.space.error(
                    "bad_request",
                    f"session {command.client_id} seq {command.seq}: both must be positive",
                )
            )
        session = self.sessions.touch(command.client_id)
        if session is None:
            return self._result(self._expired(command.client_id))
        if command.seq == session.last_seq:
            return session.last_result
        if command.seq < session.last_seq:
            return self._result(
                self.space.error(
                    "bad_request",
                    f"session {command.client_id}: seq {command.seq} is older than the last "
                    f"applied {session.last_seq}, whose response alone is kept",
                )
            )
        result = self._result(self._execute(command.op))
        if command.client_id in self.sessions.by_id:  # (a CloseSession of itself ends it)
            session.last_seq = command.seq
            session.last_result = result
        return result

    def _expired(self, client_id: int) -> StoreError:
        return self.space.error(
            "session_expired", f"session {client_id} is unknown or expired; open a new one"
        )

    def _execute(self, op: Request) -> Result:
        space = self.space
        match op:
            case RangeRequest():
                return space.range(op)
            case PutRequest():
                return space.put(op)
            case DeleteRangeRequest():
                return space.delete_range(op)
            case TxnRequest():
                return space.txn(op)
            case CompactionRequest():
                return space.compact(op)
            case LeaseGrant():
                return space.lease_grant(op)
            case LeaseRevoke():
                return space.lease_revoke(op)
            case LeaseExpire():
                return space.lease_expire(op)
            case LeaseTimeToLive():
                return space.lease_time_to_live(op)
            case LeaseLeases():
                return space.lease_leases()
            case OpenSession():
                return OpenSessionResponse(space.revision, self.sessions.open())
            case CloseSession():
                if self.sessions.by_id.pop(op.client_id, None) is None:
                    return self._expired(op.client_id)
                return CloseSessionResponse(space.revision)
            case _:
                assert_never(op)

    # ---------------------------------------------------------------- register workload

    def _register(self, operation: Operation) -> Outcome:
        """Rule 1: the shapes of `KeyValueStateMachine._apply`."""
        key = operation.key.encode() if operation.key else REGISTER_KEY_OF_NONE
        history = self.space.index.history(key)
        kv = history.current() if history is not None else None
        try:
            current = _decode_scalar(kv.value) if kv is not None else None
        except _DECODE_ERRORS:
            return Outcome("fail", operation.value, error=f"key {key!r} holds no register value")
        value = operation.value
        match operation.f:
            case "read":
                return Outcome("ok", current)
            case "write":
                if isinstance(value, tuple | list):
                    return Outcome("fail", error="write takes an int, a string or None")
                self.space.put(PutRequest(key, _encode(value)))
                return Outcome("ok", value)
            case "cas":
                if not isinstance(value, tuple | list) or len(value) != 2:
                    return Outcome("fail", value, error="cas needs (expected, new)")
                expected, new = value
                if current != expected:
                    return Outcome("fail", value)
                self.space.put(PutRequest(key, _encode(new)))
                return Outcome("ok", value)
            case "append":
                if not isinstance(value, str) or not isinstance(current, str | None):
                    return Outcome("fail", value, error="append needs strings")
                self.space.put(PutRequest(key, _encode((current or "") + value)))
                return Outcome("ok", value)
            case _:
                return Outcome("fail", value, error=f"unknown operation {operation.f!r}")

    # ---------------------------------------------------------------- snapshots

    def snapshot(self) -> bytes:
        space = self.space
        keys = space.index.keys
        return _encode(
            _State(
                revision=space.revision,
                compacted=space.compacted,
                keys=[(name, list(keys[name].records)) for name in keys],
                leases=space.leases.statuses(),
                next_lease_id=space.leases.next_id,
                sessions=[
                    _SessionState(client_id, s.last_time, s.last_seq, s.last_result)
                    for client_id, s in self.sessions.by_id.items()
                ],
                next_client_id=self.sessions.next_id,
                now=self.sessions.now,
            )
        )

    def restore(self, data: bytes) -> None:
        hook = self.space.on_events
        ttl_s = self.sessions.ttl_s
        self.space = KeySpace()
        self.space.on_events = hook
        self.sessions = Sessions(ttl_s)
        if not data:
            return
        state = _decode_state(data)
        space = self.space
        space.revision = state.revision
        space.compacted = state.compacted
        for name, records in state.keys:
            space.index.keys[name] = KeyHistory(name, list(records))
        space.index.rebuild_revisions()
        for status in state.leases:
            space.leases.grant(status.id, status.ttl)
        space.leases.next_id = state.next_lease_id
        for name in space.index.keys:
            current: KeyValue | None = space.index.keys[name].current()
            if current is not None and current.lease:
                space.leases.attach(name, 0, current.lease)
        for saved in state.sessions:
            self.sessions.by_id[saved.client_id] = Session(
                saved.last_time, saved.last_seq, saved.last_result
            )
        self.sessions.next_id = state.next_client_id
        self.sessions.now = state.now

    def digest(self) -> str:
        """A short fingerprint of the whole state (rule 5)."""
        return hashlib.blake2b(self.snapshot(), digest_size=16).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoreStateMachine):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]
