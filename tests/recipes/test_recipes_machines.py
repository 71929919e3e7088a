"""The pure recipe machines (`tejido.mvcc.recipes`) step by step, without a store."""

from __future__ import annotations

import pytest

from tejido.mvcc import api
from tejido.mvcc.recipes import (
    Acquire,
    Claim,
    CounterAdd,
    Done,
    Failed,
    FencedResource,
    Send,
    SessionExpired,
    StaleToken,
    Wait,
    contender_key,
    guarded_txn,
    read_blockers,
    semaphore_blockers,
)


def kv(key: bytes, create: int, mod: int | None = None, value: bytes = b"") -> api.KeyValue:
    return api.KeyValue(key, create, mod or create, 1, value)


def listing(revision: int, *kvs: api.KeyValue) -> api.RangeResponse:
    return api.RangeResponse(header_revision=revision, kvs=list(kvs), count=len(kvs))


def txn_with(range_response: api.RangeResponse, succeeded: bool = True) -> api.TxnResponse:
    return api.TxnResponse(
        header_revision=range_response.header_revision,
        succeeded=succeeded,
        responses=[range_response],
    )


def test_acquire_waits_on_its_predecessor_only_then_holds() -> None:
    key = contender_key(b"L", 0x30)
    assert key == b"L/30"
    machine = Acquire(b"L", key, 0x30)
    first = machine.start()
    assert isinstance(first, Send)
    assert isinstance(first.request, api.TxnRequest)
    assert first.request.compare[0].target == "CREATE"
    others = [kv(b"L/10", 5), kv(b"L/20", 7)]
    action = machine.on_result(txn_with(listing(9, *others, kv(key, 9))))
    assert action == Wait(b"L/20", b"", 10, 1)  # the newest earlier key, not all of them
    assert isinstance(machine.on_change(), Send)
    done = machine.on_result(listing(12, kv(key, 9)))
    assert isinstance(done, Done)
    assert (done.value.token, done.value.revision) == (9, 12)


def test_acquire_fails_when_our_key_vanished() -> None:
    machine = Acquire(b"L", b"L/1", 1)
    action = machine.on_result(listing(4, kv(b"L/2", 3)))
    assert isinstance(action, Failed)
    assert isinstance(action.error, SessionExpired)
    refused = machine.on_result(api.StoreError(code="lease_not_found", message="lease 1"))
    assert isinstance(refused, Failed)
    assert isinstance(refused.error, SessionExpired)


def test_semaphore_and_reader_blockers() -> None:
    mine = kv(b"S/c", 9)
    two_before = [kv(b"S/a", 3), kv(b"S/b", 5), mine]
    assert semaphore_blockers(3)(mine, two_before) == []
    assert len(semaphore_blockers(2)(mine, two_before)) == 2
    reader = kv(b"RW/r/3", 9)
    kvs = [kv(b"RW/r/1", 2), kv(b"RW/w/2", 4), reader, kv(b"RW/w/4", 11)]
    assert [b.key for b in read_blockers(b"RW")(reader, kvs)] == [b"RW/w/2"]


def test_guarded_txn_and_fenced_resource() -> None:
    txn = guarded_txn(b"L/1", 42, [api.PutRequest(key=b"x", value=b"1")])
    assert txn.compare[0].create_revision == 42
    assert txn.compare[0].key == b"L/1"
    fence = FencedResource()
    fence.admit(5)
    fence.admit(5)  # the same holder again
    fence.admit(8)
    with pytest.raises(StaleToken, match="older than 8"):
        fence.admit(5)


def test_counter_retries_with_the_value_read_in_the_failed_txn() -> None:
    machine = CounterAdd(b"n", 2)
    machine.start()
    action = machine.on_result(listing(3, kv(b"n", 2, 3, b"10")))
    assert isinstance(action, Send)
    assert isinstance(action.request, api.TxnRequest)
    assert action.request.compare[0].mod_revision == 3
    retry = machine.on_result(txn_with(listing(5, kv(b"n", 2, 5, b"11")), succeeded=False))
    assert isinstance(retry, Send)
    assert isinstance(retry.request, api.TxnRequest)
    assert retry.request.success[0] == api.PutRequest(key=b"n", value=b"13")
    assert machine.on_result(api.TxnResponse(header_revision=6, succeeded=True)) == Done(13)


def test_claim_takes_the_oldest_unclaimed_item() -> None:
    machine = Claim(b"q", 7)
    machine.start()
    items = listing(9, kv(b"q/items/b", 4), kv(b"q/items/a", 6), kv(b"q/items/c", 8))
    claims = listing(9, kv(b"q/claims/b", 5))
    action = machine.on_result(
        api.TxnResponse(header_revision=9, succeeded=True, responses=[items, claims])
    )
    assert isinstance(action, Send)
    assert isinstance(action.request, api.TxnRequest)
    assert action.request.success[0] == api.PutRequest(key=b"q/claims/a", lease=7)
    done = machine.on_result(api.TxnResponse(header_revision=10, succeeded=True))
    assert isinstance(done, Done)
    assert (done.value.key, done.value.claim_revision) == (b"q/items/a", 10)


def test_wait_change_detection_for_pollers() -> None:
    wait = Wait(b"k", b"", 10, 1)
    assert not wait.changed([kv(b"k", 3, 9)])
    assert wait.changed([])
    assert wait.changed([kv(b"k", 3, 10)])
