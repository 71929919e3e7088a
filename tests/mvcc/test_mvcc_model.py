"""The store machine against a naive reference model (style guide: property-test the
optimised thing against a naive oracle), with hypothesis' stateful testing.

The model keeps, per key, every value it ever had with its revision (no compaction, no
sorted index), computes create/mod/version by etcd's rules directly, and keeps a flat
event log. Random sequences of puts, deletes (single and ranges), transactions, compactions,
reads at past revisions, watches from any revision and snapshot/restore must agree with it.
A twin machine fed the same command bytes must stay byte-for-byte equal (determinism).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from mvcc_driver import Driver

from tejido.mvcc import StoreErrorRaised
from tejido.mvcc.api import (
    CompactionRequest,
    CompactionResponse,
    Compare,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    KeyValue,
    LeaseExpire,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    StoreError,
    TxnRequest,
    TxnResponse,
)
from tejido.mvcc.keyindex import in_range
from tejido.mvcc.machine import StoreStateMachine

KEYS = [b"a", b"b", b"ba", b"c", b"d"]
# Leases: granted, attached by puts (or detached by puts without one), revoked or expired;
# the model deletes a lease's keys in one revision, as etcd's revoke does.
keys = st.sampled_from(KEYS)
values = st.sampled_from([b"", b"1", b"2", b"xyz"])
ranges = st.sampled_from([(b"a", b"c"), (b"b", b"\0"), (b"\0", b"\0"), (b"ba", b"bb"), (b"c", b"")])


class Model:
    def __init__(self) -> None:
        self.revision = 1
        self.compacted = 0
        self.history: dict[bytes, list[tuple[int, KeyValue | None]]] = {}
        self.log: list[Event] = []
        self.leases: set[int] = set()

    def current(self, key: bytes) -> KeyValue | None:
        entries = self.history.get(key)
        return entries[-1][1] if entries else None

    def at(self, key: bytes, revision: int) -> KeyValue | None:
        found = None
        for rev, kv in self.history.get(key, []):
            if rev <= revision:
                found = kv
        return found

    def put(self, key: bytes, value: bytes, revision: int, lease: int = 0) -> None:
        cur = self.current(key)
        if cur is None:
            kv = KeyValue(key, revision, revision, 1, value, lease)
        else:
            kv = KeyValue(key, cur.create_revision, revision, cur.version + 1, value, lease)
        self.history.setdefault(key, []).append((revision, kv))
        self.log.append(Event("PUT", kv, cur))

    def delete(self, start: bytes, end: bytes, revision: int) -> int:
        gone = 0
        for key in sorted(self.history):
            cur = self.current(key)
            if cur is not None and in_range(key, start, end):
                self.history[key].append((revision, None))
                self.log.append(Event("DELETE", KeyValue(key, 0, revision, 0), cur))
                gone += 1
        return gone

    def revoke(self, lease: int) -> None:
        """Delete the lease's keys (key order) in one revision, if it has any."""
        self.leases.discard(lease)
        attached = [
            k for k in sorted(self.history) if (kv := self.current(k)) and kv.lease == lease
        ]
        if attached:
            self.revision += 1
            for key in attached:
                self.delete(key, b"", self.revision)

    def range(self, start: bytes, end: bytes, revision: int) -> list[KeyValue]:
        out = [self.at(key, revision) for key in sorted(self.history) if in_range(key, start, end)]
        return [kv for kv in out if kv is not None]


class StoreAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.driver = Driver()
        self.twin = StoreStateMachine()
        self.fed = 0
        self.model = Model()

    @rule(key=keys, value=values)
    def put(self, key: bytes, value: bytes) -> None:
        response = self.driver.ok(PutRequest(key, value, prev_kv=True), PutResponse)
        previous = self.model.current(key)
        self.model.revision += 1
        self.model.put(key, value, self.model.revision)
        assert response.header_revision == self.model.revision
        assert response.prev_kv == previous

    @rule(bounds=ranges)
    def delete(self, bounds: tuple[bytes, bytes]) -> None:
        start, end = bounds
        response = self.driver.ok(DeleteRangeRequest(start, end, prev_kv=True), DeleteRangeResponse)
        expected = list(self.model.range(start, end, self.model.revision))
        if expected:
            self.model.revision += 1
            self.model.delete(start, end, self.model.revision)
        assert response.deleted == len(expected)
        assert response.prev_kvs == expected
        assert response.header_revision == self.model.revision

    @rule(
        key=keys,
        expected=values,
        success=st.dictionaries(keys, st.one_of(values, st.none()), max_size=3),
        failure=st.dictionaries(keys, st.one_of(values, st.none()), max_size=3),
    )
    def txn(
        self,
        key: bytes,
        expected: bytes,
        success: dict[bytes, bytes | None],
        failure: dict[bytes, bytes | None],
    ) -> None:
        def ops(plan: dict[bytes, bytes | None]) -> list[PutRequest | DeleteRangeRequest]:
            return [
                PutRequest(k, v) if v is not None else DeleteRangeRequest(k)
                for k, v in plan.items()
            ]

        response = self.driver.ok(
            TxnRequest([Compare(key, "VALUE", value=expected)], ops(success), ops(failure)),  # type: ignore[arg-type]
            TxnResponse,
        )
        cur = self.model.current(key)
        holds = cur is not None and cur.value == expected
        assert response.succeeded == holds
        plan = success if holds else failure
        changes = any(v is not None or self.model.current(k) is not None for k, v in plan.items())
        if changes:
            self.model.revision += 1
            for k, v in plan.items():
                if v is None:
                    self.model.delete(k, b"", self.model.revision)
                else:
                    self.model.put(k, v, self.model.revision)
        assert response.header_revision == self.model.revision

    @rule(ttl=st.integers(1, 100))
    def grant(self, ttl: int) -> None:
        granted = self.driver.ok(LeaseGrant(ttl), LeaseGrantResponse)
        assert granted.id not in self.model.leases
        self.model.leases.add(granted.id)

    @rule(key=keys, value=values, pick=st.integers(0, 3))
    def put_with_lease(self, key: bytes, value: bytes, pick: int) -> None:
        lease = pick  # ids are picked from 1 upward: some exist, some do not (0: none)
        result = self.driver.write(PutRequest(key, value, lease=lease))
        if lease and lease not in self.model.leases:
            assert isinstance(result, StoreError)
            assert result.code == "lease_not_found"
            return
        assert isinstance(result, PutResponse)
        self.model.revision += 1
        self.model.put(key, value, self.model.revision, lease)

    @rule(pick=st.integers(1, 3), expire=st.booleans())
    def revoke(self, pick: int, expire: bool) -> None:
        existed = pick in self.model.leases
        op = LeaseExpire([pick]) if expire else LeaseRevoke(pick)
        result = self.driver.write(op)
        if not existed and not expire:
            assert isinstance(result, StoreError)
            assert result.code == "lease_not_found"
        self.model.revoke(pick)
        assert getattr(result, "header_revision", None) == self.model.revision

    @rule(back=st.integers(0, 6))
    def compact(self, back: int) -> None:
        target = self.model.revision - back
        result = self.driver.write(CompactionRequest(target))
        if target <= self.model.compacted:
            assert isinstance(result, StoreError)
            assert result.code == "compacted"
        else:
            assert isinstance(result, CompactionResponse)
            self.model.compacted = target

    @rule(back=st.integers(0, 12), bounds=ranges, limit=st.integers(0, 3))
    def read_at(self, back: int, bounds: tuple[bytes, bytes], limit: int) -> None:
        revision = max(self.model.revision - back, 1)
        result = self.driver.query(
            RangeRequest(bounds[0], bounds[1], limit=limit, revision=revision)
        )
        if revision < self.model.compacted:
            assert isinstance(result, StoreError)
            assert result.code == "compacted"
            return
        assert isinstance(result, RangeResponse), result
        expected = self.model.range(bounds[0], bounds[1], revision)
        assert result.count == len(expected)
        assert result.kvs == (expected[:limit] if limit else expected)
        assert result.more == (limit > 0 and len(expected) > limit)

    @rule(back=st.integers(0, 12), bounds=ranges)
    def watch_from(self, back: int, bounds: tuple[bytes, bytes]) -> None:
        start = max(self.model.revision + 1 - back, 1)
        if self.model.compacted and start <= self.model.compacted:
            with pytest.raises(StoreErrorRaised) as raised:
                self.driver.machine.events(start, *bounds)
            assert raised.value.error.code == "compacted"
            return
        expected = [
            e for e in self.model.log if e.kv.mod_revision >= start and in_range(e.kv.key, *bounds)
        ]
        assert self.driver.machine.events(start, *bounds) == expected

    @precondition(lambda self: self.model.revision > 1)
    @rule()
    def snapshot_and_restore(self) -> None:
        restored = StoreStateMachine()
        restored.restore(self.driver.machine.snapshot())
        assert restored == self.driver.machine
        assert restored.digest() == self.driver.machine.digest()
        self.driver.machine = restored  # carry on with the restored machine

    @invariant()
    def current_state_matches(self) -> None:
        result = self.driver.query(RangeRequest(b"\0", b"\0"))
        assert isinstance(result, RangeResponse)
        assert result.kvs == self.model.range(b"\0", b"\0", self.model.revision)
        assert result.header_revision == self.model.revision == self.driver.machine.revision
        assert {s.id for s in self.driver.machine.leases()} == self.model.leases

    @invariant()
    def twin_is_identical(self) -> None:
        for command in self.driver.sent[self.fed :]:
            self.twin.apply(command)
        self.fed = len(self.driver.sent)
        assert self.twin.snapshot() == self.driver.machine.snapshot()


TestStoreAgainstModel = StoreAgainstModel.TestCase
TestStoreAgainstModel.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
