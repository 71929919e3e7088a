"""A stand-in for `tejido.mvcc.machine.StoreStateMachine`, used only while that module does
not exist yet: the same command/query vocabulary (`tejido.mvcc.api`) and hooks
(`on_events`, `events`), with none of its depth (no reads at past revisions, compaction only
drops the event log, transactions support value/version/mod/create compares).

Rules: deterministic (time comes only from `Command.time`), never raises from `apply`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from tejido.core.operations import Operation, Outcome
from tejido.mvcc import api

__all__ = ["InterimMachine"]

_op_decoder = msgspec.msgpack.Decoder(Operation)
_encode = msgspec.msgpack.Encoder().encode


class _State(msgspec.Struct):
    revision: int = 1
    compacted: int = 0
    keys: dict[bytes, api.KeyValue] = {}
    leases: dict[int, tuple[int, list[bytes]]] = {}
    sessions: dict[int, tuple[int, bytes]] = {}
    next_session: int = 1
    log: list[tuple[int, list[api.Event]]] = []


class InterimMachine:
    def __init__(self) -> None:
        self.state = _State()
        self.on_events: Callable[[int, list[api.Event]], None] | None = None

    # ------------------------------------------------------------------ StateMachine
    def apply(self, command: bytes) -> bytes:
        try:
            operation = _op_decoder.decode(command)
            cmd = api.decode_command(operation.data or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _encode(Outcome("fail", error=f"not a store command: {exc}"))
        return _encode(Outcome("ok", data=api.encode_result(self._apply(cmd))))

    def read(self, query: bytes) -> bytes:
        try:
            operation = _op_decoder.decode(query)
            request = api.decode_query(operation.data or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _encode(Outcome("fail", error=f"not a store query: {exc}"))
        return _encode(Outcome("ok", data=api.encode_result(self._query(request))))

    def snapshot(self) -> bytes:
        return _encode(self.state)

    def restore(self, data: bytes) -> None:
        self.state = msgspec.msgpack.decode(data, type=_State) if data else _State()

    def events(self, start: int, key: bytes, range_end: bytes) -> list[api.Event] | api.StoreError:
        if start <= self.state.compacted:
            return api.StoreError("compacted", f"revision {start} is compacted")
        out: list[api.Event] = []
        for revision, events in self.state.log:
            if revision >= start:
                out.extend(e for e in events if _in_range(e.kv.key, key, range_end))
        return out

    # ------------------------------------------------------------------ internals
    def _apply(self, cmd: api.Command) -> api.Result:
        s = self.state
        if cmd.client_id:
            seen = s.sessions.get(cmd.client_id)
            if seen is None:
                return api.StoreError("session_expired", f"session {cmd.client_id} unknown")
            if cmd.seq <= seen[0]:
                return api.decode_result(seen[1])
        result = self._op(cmd.op)
        if cmd.client_id:
            s.sessions[cmd.client_id] = (cmd.seq, api.encode_result(result))
        return result

    def _op(self, op: api.Request) -> api.Result:
        s = self.state
        events: list[api.Event] = []
        match op:
            case api.OpenSession():
                ident = s.next_session
                s.next_session += 1
                s.sessions[ident] = (0, b"")
                return api.OpenSessionResponse(s.revision, ident)
            case api.RangeRequest() | api.LeaseTimeToLive() | api.LeaseLeases():
                return self._query(op)
            case api.PutRequest():
                if not op.key:
                    return api.StoreError("empty_key", "key is empty")
                if op.lease and op.lease not in s.leases:
                    return api.StoreError("lease_not_found", f"lease {op.lease} not found")
                result = self._put(op, s.revision + 1, events)
            case api.DeleteRangeRequest():
                result = self._delete(op, s.revision + 1, events)
            case api.TxnRequest():
                ok = all(self._compare(c) for c in op.compare)
                responses: list[api.ResponseOp] = []
                for sub in op.success if ok else op.failure:
                    r = self._op(sub) if isinstance(sub, api.RangeRequest) else None
                    if isinstance(sub, api.PutRequest):
                        r = self._put(sub, s.revision + 1, events)
                    elif isinstance(sub, api.DeleteRangeRequest):
                        r = self._delete(sub, s.revision + 1, events)
                    if isinstance(r, api.RangeResponse | api.PutResponse | api.DeleteRangeResponse):
                        responses.append(r)
                result = api.TxnResponse(s.revision, ok, responses)
            case api.CompactionRequest():
                if op.revision > s.revision:
                    return api.StoreError("future_revision", f"{op.revision} > {s.revision}")
                s.compacted = max(s.compacted, op.revision)
                s.log = [(r, e) for r, e in s.log if r > s.compacted]
                return api.CompactionResponse(s.revision)
            case api.LeaseGrant():
                ident = op.id or s.revision * 1000 + len(s.leases) + 1
                if ident in s.leases:
                    return api.StoreError("lease_exists", f"lease {ident} exists")
                s.leases[ident] = (op.ttl, [])
                return api.LeaseGrantResponse(s.revision, ident, op.ttl)
            case api.LeaseRevoke():
                if op.id not in s.leases:
                    return api.StoreError("lease_not_found", f"lease {op.id} not found")
                self._drop_leases([op.id], events)
                result = api.LeaseRevokeResponse(s.revision)
            case api.LeaseExpire():
                gone = [i for i in op.ids if i in s.leases]
                self._drop_leases(gone, events)
                result = api.LeaseExpireResponse(s.revision, gone)
            case _:
                return api.StoreError("bad_request", f"unsupported {type(op).__name__}")
        if events:
            s.revision += 1
            events = [_at(e, s.revision) for e in events]
            s.log.append((s.revision, events))
            result = _with_revision(result, s.revision)
            if self.on_events is not None:
                self.on_events(s.revision, events)
        return result

    def _put(self, op: api.PutRequest, revision: int, events: list[api.Event]) -> api.Result:
        s = self.state
        prev = s.keys.get(op.key)
        kv = api.KeyValue(
            op.key,
            prev.create_revision if prev else revision,
            revision,
            prev.version + 1 if prev else 1,
            op.value,
            op.lease,
        )
        s.keys[op.key] = kv
        if op.lease:
            s.leases[op.lease][1].append(op.key)
        events.append(api.Event("PUT", kv, prev))
        return api.PutResponse(s.revision, prev if op.prev_kv else None)

    def _delete(
        self, op: api.DeleteRangeRequest, revision: int, events: list[api.Event]
    ) -> api.Result:
        gone = [
            kv for k, kv in sorted(self.state.keys.items()) if _in_range(k, op.key, op.range_end)
        ]
        for kv in gone:
            del self.state.keys[kv.key]
            events.append(api.Event("DELETE", api.KeyValue(kv.key, 0, revision, 0), kv))
        return api.DeleteRangeResponse(self.state.revision, len(gone), gone if op.prev_kv else [])

    def _drop_leases(self, ids: list[int], events: list[api.Event]) -> None:
        for ident in ids:
            _, keys = self.state.leases.pop(ident)
            for key in keys:
                kv = self.state.keys.get(key)
                if kv is not None and kv.lease == ident:
                    self._delete(api.DeleteRangeRequest(key), self.state.revision + 1, events)

    def _compare(self, c: api.Compare) -> bool:
        kv = self.state.keys.get(c.key)
        actual: Any
        expected: Any
        if c.target == "VALUE":
            if kv is None:
                return False
            actual, expected = kv.value, c.value
        elif c.target == "VERSION":
            actual, expected = (kv.version if kv else 0), c.version
        elif c.target == "CREATE":
            actual, expected = (kv.create_revision if kv else 0), c.create_revision
        elif c.target == "MOD":
            actual, expected = (kv.mod_revision if kv else 0), c.mod_revision
        else:
            actual, expected = (kv.lease if kv else 0), c.lease
        outcomes: dict[str, bool] = {
            "EQUAL": actual == expected,
            "NOT_EQUAL": actual != expected,
            "GREATER": actual > expected,
            "LESS": actual < expected,
        }
        return outcomes[c.result]

    def _query(self, q: api.Query) -> api.Result:
        s = self.state
        match q:
            case api.RangeRequest():
                if q.revision and q.revision != s.revision:
                    return api.StoreError("bad_request", "interim machine: no past revisions")
                kvs = [kv for k, kv in sorted(s.keys.items()) if _in_range(k, q.key, q.range_end)]
                count = len(kvs)
                more = bool(q.limit) and count > q.limit
                if q.limit:
                    kvs = kvs[: q.limit]
                if q.count_only:
                    kvs = []
                elif q.keys_only:
                    kvs = [
                        api.KeyValue(kv.key, kv.create_revision, kv.mod_revision, kv.version)
                        for kv in kvs
                    ]
                return api.RangeResponse(s.revision, kvs, more, count)
            case api.LeaseTimeToLive():
                lease = s.leases.get(q.id)
                if lease is None:
                    return api.StoreError("lease_not_found", f"lease {q.id} not found")
                return api.LeaseTimeToLiveResponse(
                    s.revision, q.id, lease[0], list(lease[1]) if q.keys else []
                )
            case _:
                leases = [api.LeaseStatus(i, ttl) for i, (ttl, _) in sorted(s.leases.items())]
                return api.LeaseLeasesResponse(s.revision, leases)


def _in_range(key: bytes, start: bytes, end: bytes) -> bool:
    if not end:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


def _at(event: api.Event, revision: int) -> api.Event:
    kv = event.kv
    if event.type == "PUT":
        create = kv.create_revision if kv.version > 1 else revision
        kv = api.KeyValue(kv.key, create, revision, kv.version, kv.value, kv.lease)
    else:
        kv = api.KeyValue(kv.key, 0, revision, 0)
    return api.Event(event.type, kv, event.prev_kv)


def _with_revision(result: api.Result, revision: int) -> api.Result:
    if hasattr(result, "header_revision"):
        return msgspec.structs.replace(result, header_revision=revision)
    return result
