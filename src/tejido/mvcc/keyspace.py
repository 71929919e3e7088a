"""The MVCC key space: etcd's KV and Lease operations on a `KeyIndex` (see
docs/store-machine.md; etcd docs "KV API guarantees" and "API reference",
etcd.io/docs/v3.5/learning/api/ and api_guarantees/).

Rules:

1. Revision: the store starts at revision 1 (etcd's empty store). Every request that
   changes at least one key (put, delete range that deleted something, txn with such an
   operation, lease revoke/expire with attached keys) takes the next revision; its
   changes get sub-revisions 0, 1, ... in execution order. Requests that change no key
   (range, failed compares with no writes, delete of nothing, compaction, lease grant)
   leave the revision alone. Every response's ``header_revision`` is the revision after it.
2. Key: create_revision = revision of the put that began the key's generation, version =
   puts in this generation (1, 2, ...), mod_revision = revision of the last put. A delete
   ends the generation; the next put starts a new one with version 1.
3. Range: ``revision`` 0 is the current revision; below the compacted revision ->
   ``compacted``; above the current -> ``future_revision``. ``count`` is every key
   matched; ``limit`` caps ``kvs`` and sets ``more`` when keys were left out.
4. Txn: all compares (of this transaction and of every nested one on the chosen path) are
   evaluated against the state before the transaction, as etcd does; then the chosen
   operations are validated as a whole (limits, leases, empty keys, and no key put twice or
   both put and deleted: ``duplicate_key_in_txn``) and only then executed, in order, as one
   revision; a range inside a txn sees the txn's earlier writes. Nested txns are allowed
   (etcd 3.3+). A compare over a range holds when it holds for every key; a compare on no
   key compares the zero KeyValue, except VALUE, which is then false (etcd's ``applyCompare``).
5. Compaction at C (C <= current, C > the last compaction): reads at revisions >= C stay
   exact; reads below C and watches from C or below get ``compacted``.
6. Nothing here raises on bad input: every refusal is a `StoreError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

import msgspec

from tejido.mvcc.api import (
    MAX_KEY_BYTES,
    MAX_REQUEST_BYTES,
    MAX_TXN_DEPTH,
    MAX_TXN_OPS,
    CompactionRequest,
    CompactionResponse,
    Compare,
    DeleteRangeRequest,
    DeleteRangeResponse,
    ErrorCode,
    Event,
    KeyValue,
    LeaseExpire,
    LeaseExpireResponse,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseLeasesResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    LeaseTimeToLive,
    LeaseTimeToLiveResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    ResponseOp,
    StoreError,
    TxnRequest,
    TxnResponse,
)
from tejido.mvcc.keyindex import KeyHistory, KeyIndex, Record, in_range
from tejido.mvcc.lease import Leases

__all__ = ["EventsHook", "KeySpace", "StoreErrorRaised"]

EventsHook = Callable[[int, list[Event]], None]


class StoreErrorRaised(Exception):
    """A direct call (not through apply/read) refused: ``error`` says why."""

    def __init__(self, error: StoreError) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class _Plan:
    """A transaction's chosen path (rule 4): whether its compares held, and its steps."""

    __slots__ = ("steps", "succeeded")

    def __init__(
        self, succeeded: bool, steps: list[RangeRequest | PutRequest | DeleteRangeRequest | _Plan]
    ) -> None:
        self.succeeded = succeeded
        self.steps = steps


class _Write:
    """One revision being written: its number, next sub-revision, events so far."""

    __slots__ = ("events", "main")

    def __init__(self, main: int) -> None:
        self.main = main
        self.events: list[Event] = []


class KeySpace:
    __slots__ = ("compacted", "index", "leases", "on_events", "revision")

    def __init__(self) -> None:
        self.index = KeyIndex()
        self.revision = 1
        self.compacted = 0
        self.leases = Leases()
        self.on_events: EventsHook | None = None

    def error(self, code: ErrorCode, message: str) -> StoreError:
        return StoreError(code, message, self.revision)

    def too_deep(self) -> StoreError:
        return self.error("bad_request", f"txn: nested deeper than {MAX_TXN_DEPTH} levels")

    # ---------------------------------------------------------------- reads

    def range(self, request: RangeRequest, header: int = 0) -> RangeResponse | StoreError:
        refused = self._check_range(request)
        if refused is not None:
            return refused
        return self._range(request, header or self.revision)

    def _check_range(self, request: RangeRequest) -> StoreError | None:
        if not request.key:
            return self.error("empty_key", "range: the key is empty")
        if request.limit < 0:
            return self.error("bad_request", f"range: negative limit {request.limit}")
        if request.revision < 0:
            return self.error("bad_request", f"range: negative revision {request.revision}")
        if request.revision > self.revision:
            return self.error(
                "future_revision",
                f"range: revision {request.revision} is above the current {self.revision}",
            )
        if request.revision and request.revision < self.compacted:
            return self.error(
                "compacted",
                f"range: revision {request.revision} is below the compacted {self.compacted}",
            )
        return None

    def _range(self, request: RangeRequest, header: int) -> RangeResponse:
        revision = request.revision
        limit = request.limit
        kvs: list[KeyValue] = []
        count = 0
        for history in self.index.histories(request.key, request.range_end):
            kv = history.at(revision) if revision else history.current()
            if kv is None:
                continue
            count += 1
            if request.count_only or (limit and len(kvs) >= limit):
                continue
            kvs.append(msgspec.structs.replace(kv, value=b"") if request.keys_only else kv)
        more = not request.count_only and count > len(kvs)
        return RangeResponse(header, kvs, more, count)

    def _compare(self, compare: Compare) -> bool:
        kvs = [
            kv
            for history in self.index.histories(compare.key, compare.range_end)
            if (kv := history.current()) is not None
        ]
        if not kvs:
            if compare.target == "VALUE":
                return False
            kvs = [KeyValue(compare.key, 0, 0, 0)]
        return all(_holds(compare, kv) for kv in kvs)

    # ---------------------------------------------------------------- single writes

    def put(self, request: PutRequest) -> PutResponse | StoreError:
        key = request.key
        if (
            key
            and not request.lease
            and not request.ignore_value
            and not request.ignore_lease
            and len(key) <= MAX_KEY_BYTES
            and len(request.value) <= MAX_REQUEST_BYTES
        ):
            return self._plain_put(key, request)
        refused = self._check_put(request)
        if refused is not None:
            return refused
        write = _Write(self.revision + 1)
        response = self._put(write, request)
        self._commit(write)
        return response

    def _plain_put(self, key: bytes, request: PutRequest) -> PutResponse:
        """The common put (valid, no lease, no ignore flags) in one step: exactly what
        `_check_put`, `_put` and `_commit` do for it (one event, sub-revision 0), without
        their general bookkeeping. Every write costs this on every member."""
        main = self.revision + 1
        index = self.index
        history = index.history(key)
        if history is None:
            history = KeyHistory(key)
            index.keys[key] = history
        records = history.records
        current = records[-1].kv if records else None
        if current is None:
            kv = KeyValue(key, main, main, 1, request.value, 0)
        else:
            kv = KeyValue(key, current.create_revision, main, current.version + 1, request.value, 0)
            if current.lease:
                self.leases.attach(key, current.lease, 0)
        records.append(Record(main, 0, kv))
        index.by_revision[main] = [key]
        index.revisions.append(main)
        self.revision = main
        if self.on_events is not None:
            self.on_events(main, [Event("PUT", kv, current)])
        return PutResponse(main, current if request.prev_kv else None)

    def delete_range(self, request: DeleteRangeRequest) -> DeleteRangeResponse | StoreError:
        if not request.key:
            return self.error("empty_key", "delete: the key is empty")
        changes = self._deletes_something(request)
        write = _Write(self.revision + 1)
        response = self._delete(write, request, write.main if changes else self.revision)
        self._commit(write)
        return response

    def _check_put(self, request: PutRequest) -> StoreError | None:
        if not request.key:
            return self.error("empty_key", "put: the key is empty")
        if len(request.key) > MAX_KEY_BYTES:
            return self.error("key_too_large", f"put: key of {len(request.key)} bytes")
        if len(request.value) > MAX_REQUEST_BYTES:
            return self.error("value_too_large", f"put: value of {len(request.value)} bytes")
        if request.lease and request.lease not in self.leases.by_id:
            return self.error("lease_not_found", f"put: lease {request.lease} does not exist")
        if request.ignore_value and request.value:
            return self.error("bad_request", "put: a value given with ignore_value")
        if request.ignore_lease and request.lease:
            return self.error("bad_request", "put: a lease given with ignore_lease")
        if request.ignore_value or request.ignore_lease:
            history = self.index.history(request.key)
            if history is None or history.current() is None:
                return self.error(
                    "bad_request", f"put: ignore_value/ignore_lease on absent key {request.key!r}"
                )
        return None

    def _put(self, write: _Write, request: PutRequest, header: int = 0) -> PutResponse:
        history = self.index.history(request.key)
        current = history.current() if history is not None else None
        value = current.value if request.ignore_value and current is not None else request.value
        lease = current.lease if request.ignore_lease and current is not None else request.lease
        main = write.main
        if current is None:
            kv = KeyValue(request.key, main, main, 1, value, lease)
        else:
            kv = KeyValue(
                request.key, current.create_revision, main, current.version + 1, value, lease
            )
        self.index.record(request.key, main, len(write.events), kv)
        write.events.append(Event("PUT", kv, current))
        self.leases.attach(request.key, current.lease if current is not None else 0, lease)
        return PutResponse(header or main, current if request.prev_kv else None)

    def _deletes_something(self, request: DeleteRangeRequest) -> bool:
        return any(
            h.current() is not None for h in self.index.histories(request.key, request.range_end)
        )

    def _delete(
        self, write: _Write, request: DeleteRangeRequest, header: int
    ) -> DeleteRangeResponse:
        live = [
            (history.key, kv)
            for history in self.index.histories(request.key, request.range_end)
            if (kv := history.current()) is not None
        ]
        for key, kv in live:
            self._delete_key(write, key, kv)
        prev_kvs = [kv for _, kv in live] if request.prev_kv else []
        return DeleteRangeResponse(header, len(live), prev_kvs)

    def _delete_key(self, write: _Write, key: bytes, current: KeyValue) -> None:
        main = write.main
        self.index.record(key, main, len(write.events), None)
        write.events.append(Event("DELETE", KeyValue(key, 0, main, 0), current))
        self.leases.attach(key, current.lease, 0)

    def _commit(self, write: _Write) -> None:
        if not write.events:
            return
        self.revision = write.main
        if self.on_events is not None:
            self.on_events(write.main, write.events)

    # ---------------------------------------------------------------- transactions

    def txn(self, request: TxnRequest) -> TxnResponse | StoreError:
        plan = self._plan(request)
        if isinstance(plan, StoreError):
            return plan
        puts: set[bytes] = set()
        deletes: list[DeleteRangeRequest] = []
        for step in _flatten(plan):
            if isinstance(step, PutRequest):
                if step.key in puts:
                    return self.error("duplicate_key_in_txn", f"txn: key {step.key!r} is put twice")
                puts.add(step.key)
            elif isinstance(step, DeleteRangeRequest):
                deletes.append(step)
        for key in puts:
            for delete in deletes:
                if in_range(key, delete.key, delete.range_end):
                    return self.error(
                        "duplicate_key_in_txn", f"txn: key {key!r} is both put and deleted"
                    )
        changes = bool(puts) or any(self._deletes_something(d) for d in deletes)
        write = _Write(self.revision + 1)
        response = self._run(write, plan, write.main if changes else self.revision)
        self._commit(write)
        return response

    def _plan(self, request: TxnRequest, depth: int = 1) -> _Plan | StoreError:
        """Rule 4: choose the path by the pre-transaction state and validate its steps."""
        if depth > MAX_TXN_DEPTH:
            return self.too_deep()
        for name, items in (
            ("compares", request.compare),
            ("success", request.success),
            ("failure", request.failure),
        ):
            if len(items) > MAX_TXN_OPS:
                return self.error(
                    "too_many_ops", f"txn: {len(items)} {name}, at most {MAX_TXN_OPS}"
                )
        for compare in request.compare:
            if not compare.key:
                return self.error("empty_key", "txn: a compare has an empty key")
        succeeded = all(self._compare(compare) for compare in request.compare)
        steps: list[RangeRequest | PutRequest | DeleteRangeRequest | _Plan] = []
        for op in request.success if succeeded else request.failure:
            checked = self._check_step(op, depth)
            if isinstance(checked, StoreError):
                return checked
            steps.append(checked)
        return _Plan(succeeded, steps)

    def _check_step(
        self, op: RequestOp, depth: int
    ) -> RangeRequest | PutRequest | DeleteRangeRequest | _Plan | StoreError:
        match op:
            case RangeRequest():
                return self._check_range(op) or op
            case PutRequest():
                return self._check_put(op) or op
            case DeleteRangeRequest():
                return (
                    self.error("empty_key", "txn: a delete has an empty key") if not op.key else op
                )
            case TxnRequest():
                return self._plan(op, depth + 1)
            case _:
                assert_never(op)

    def _run(self, write: _Write, plan: _Plan, header: int) -> TxnResponse:
        responses: list[ResponseOp] = []
        for step in plan.steps:
            if isinstance(step, RangeRequest):
                responses.append(self._range(step, header))
            elif isinstance(step, PutRequest):
                responses.append(self._put(write, step, header))
            elif isinstance(step, DeleteRangeRequest):
                responses.append(self._delete(write, step, header))
            else:
                responses.append(self._run(write, step, header))
        return TxnResponse(header, plan.succeeded, responses)

    # ---------------------------------------------------------------- compaction

    def compact(self, request: CompactionRequest) -> CompactionResponse | StoreError:
        revision = request.revision
        if revision > self.revision:
            return self.error(
                "future_revision",
                f"compact: revision {revision} is above the current {self.revision}",
            )
        if revision <= self.compacted:
            return self.error(
                "compacted",
                f"compact: revision {revision} is already compacted (at {self.compacted})",
            )
        self.index.compact(revision)
        self.compacted = revision
        return CompactionResponse(self.revision)

    def events(self, start_revision: int, key: bytes, range_end: bytes = b"") -> list[Event]:
        """Every event at revision >= `start_revision` on the range, in (revision,
        sub-revision) order; raises `StoreErrorRaised` (compacted) when the start is at or
        below the compacted revision (rule 5)."""
        start = max(start_revision, 1)
        if self.compacted and start <= self.compacted:
            raise StoreErrorRaised(
                self.error(
                    "compacted",
                    f"watch: revision {start_revision} is compacted (at {self.compacted})",
                )
            )
        return self.index.events(start, key, range_end)

    # ---------------------------------------------------------------- leases

    def lease_grant(self, request: LeaseGrant) -> LeaseGrantResponse | StoreError:
        if request.ttl <= 0:
            return self.error("bad_request", f"lease grant: ttl {request.ttl} is not positive")
        if request.id < 0:
            return self.error("bad_request", f"lease grant: negative id {request.id}")
        if request.id in self.leases.by_id:
            return self.error("lease_exists", f"lease grant: lease {request.id} exists")
        lease_id = request.id or self.leases.pick_id()
        self.leases.grant(lease_id, request.ttl)
        return LeaseGrantResponse(self.revision, lease_id, request.ttl)

    def lease_revoke(self, request: LeaseRevoke) -> LeaseRevokeResponse | StoreError:
        if request.id not in self.leases.by_id:
            return self.error("lease_not_found", f"lease revoke: lease {request.id} does not exist")
        self._drop_leases([request.id])
        return LeaseRevokeResponse(self.revision)

    def lease_expire(self, request: LeaseExpire) -> LeaseExpireResponse:
        ids = sorted({i for i in request.ids if i in self.leases.by_id})
        self._drop_leases(ids)
        return LeaseExpireResponse(self.revision, ids)

    def _drop_leases(self, ids: list[int]) -> None:
        """Delete every key attached to the leases in one revision, then the leases."""
        write = _Write(self.revision + 1)
        for lease_id in ids:
            lease = self.leases.by_id[lease_id]
            for key in sorted(lease.keys):
                history = self.index.history(key)
                current = history.current() if history is not None else None
                if current is not None:
                    self._delete_key(write, key, current)
            del self.leases.by_id[lease_id]
        self._commit(write)

    def lease_time_to_live(self, request: LeaseTimeToLive) -> LeaseTimeToLiveResponse | StoreError:
        lease = self.leases.by_id.get(request.id)
        if lease is None:
            return self.error("lease_not_found", f"lease ttl: lease {request.id} does not exist")
        keys = sorted(lease.keys) if request.keys else []
        return LeaseTimeToLiveResponse(self.revision, lease.id, lease.ttl, keys)

    def lease_leases(self) -> LeaseLeasesResponse:
        return LeaseLeasesResponse(self.revision, self.leases.statuses())


def _flatten(plan: _Plan) -> list[RangeRequest | PutRequest | DeleteRangeRequest]:
    out: list[RangeRequest | PutRequest | DeleteRangeRequest] = []
    for step in plan.steps:
        if isinstance(step, _Plan):
            out.extend(_flatten(step))
        else:
            out.append(step)
    return out


def _holds(compare: Compare, kv: KeyValue) -> bool:
    left: bytes | int
    right: bytes | int
    match compare.target:
        case "VALUE":
            left, right = kv.value, compare.value
        case "VERSION":
            left, right = kv.version, compare.version
        case "CREATE":
            left, right = kv.create_revision, compare.create_revision
        case "MOD":
            left, right = kv.mod_revision, compare.mod_revision
        case "LEASE":
            left, right = kv.lease, compare.lease
        case _:
            assert_never(compare.target)
    match compare.result:
        case "EQUAL":
            return left == right
        case "NOT_EQUAL":
            return left != right
        case "GREATER":
            return left > right  # type: ignore[operator]
        case "LESS":
            return left < right  # type: ignore[operator]
        case _:
            assert_never(compare.result)
