"""Transactions against etcd's documented behaviour (etcd3 API overview, "Transaction":
compares then success or failure operations, atomically, as one revision; etcd's
``applyCompare``: a compare on a missing key compares zero values, a VALUE compare on a
missing key fails; ``--max-txn-ops`` 128; "duplicate key given in txn request")."""

from __future__ import annotations

import sys

from mvcc_driver import Driver, command_bytes, result_of

from tejido.mvcc.api import (
    MAX_TXN_DEPTH,
    MAX_TXN_OPS,
    Compare,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)


def seeded() -> Driver:
    d = Driver()
    d.write(PutRequest(b"a", b"1"))  # 2
    d.write(PutRequest(b"b", b"2"))  # 3
    d.write(PutRequest(b"b", b"3"))  # 4
    return d


def holds(d: Driver, compare: Compare) -> bool:
    return d.ok(TxnRequest([compare]), TxnResponse).succeeded


def test_compare_targets_and_results() -> None:
    d = seeded()
    assert holds(d, Compare(b"a", "VALUE", "EQUAL", value=b"1"))
    assert not holds(d, Compare(b"a", "VALUE", "EQUAL", value=b"2"))
    assert holds(d, Compare(b"a", "VALUE", "LESS", value=b"2"))
    assert holds(d, Compare(b"b", "VERSION", "EQUAL", version=2))
    assert holds(d, Compare(b"b", "VERSION", "GREATER", version=1))
    assert holds(d, Compare(b"b", "CREATE", "EQUAL", create_revision=3))
    assert holds(d, Compare(b"b", "MOD", "EQUAL", mod_revision=4))
    assert holds(d, Compare(b"b", "MOD", "NOT_EQUAL", mod_revision=3))
    assert holds(d, Compare(b"b", "LEASE", "EQUAL", lease=0))


def test_compares_on_missing_keys() -> None:
    d = seeded()
    # The idiom "create if absent": version (or create revision) of a missing key is 0.
    assert holds(d, Compare(b"nope", "VERSION", "EQUAL", version=0))
    assert holds(d, Compare(b"nope", "CREATE", "EQUAL", create_revision=0))
    assert not holds(d, Compare(b"nope", "VALUE", "EQUAL", value=b""))
    assert not holds(d, Compare(b"nope", "VALUE", "NOT_EQUAL", value=b"x"))


def test_a_range_compare_must_hold_for_every_key() -> None:
    d = seeded()
    assert holds(d, Compare(b"a", "MOD", "LESS", range_end=b"c", mod_revision=5))
    assert not holds(d, Compare(b"a", "MOD", "LESS", range_end=b"c", mod_revision=3))


def test_success_and_failure_branches_run_as_one_revision() -> None:
    d = seeded()
    response = d.ok(
        TxnRequest(
            [Compare(b"a", "VALUE", value=b"1")],
            success=[PutRequest(b"x", b"1"), PutRequest(b"y", b"2"), DeleteRangeRequest(b"a")],
            failure=[PutRequest(b"never", b"!")],
        ),
        TxnResponse,
    )
    assert response.succeeded
    assert response.header_revision == 5
    assert [type(r) for r in response.responses] == [PutResponse, PutResponse, DeleteRangeResponse]
    assert all(r.header_revision == 5 for r in response.responses)
    kvs = d.read_ok(RangeRequest(b"\0", b"\0"), RangeResponse).kvs
    assert [kv.key for kv in kvs] == [b"b", b"x", b"y"]
    assert {kv.mod_revision for kv in kvs if kv.key != b"b"} == {5}
    events = d.machine.events(5, b"\0", b"\0")
    assert [(e.type, e.kv.key) for e in events] == [("PUT", b"x"), ("PUT", b"y"), ("DELETE", b"a")]

    failed = d.ok(
        TxnRequest([Compare(b"a", "VALUE", value=b"1")], failure=[PutRequest(b"f", b"1")]),
        TxnResponse,
    )
    assert not failed.succeeded
    assert failed.header_revision == 6


def test_a_txn_without_writes_keeps_the_revision_and_reads_see_earlier_writes() -> None:
    d = seeded()
    read_only = d.ok(TxnRequest(success=[RangeRequest(b"a")]), TxnResponse)
    assert read_only.header_revision == 4
    assert read_only.responses == [RangeResponse(4, [KeyValue(b"a", 2, 2, 1, b"1")], False, 1)]
    both = d.ok(TxnRequest(success=[PutRequest(b"n", b"new"), RangeRequest(b"n")]), TxnResponse)
    seen = both.responses[1]
    assert isinstance(seen, RangeResponse)
    assert seen.kvs == [KeyValue(b"n", 5, 5, 1, b"new")]


def test_nested_txns_choose_by_the_state_before_the_txn() -> None:
    d = seeded()
    inner = TxnRequest(
        [Compare(b"a", "VALUE", value=b"1")],
        success=[PutRequest(b"inner", b"yes")],
        failure=[PutRequest(b"inner", b"no")],
    )
    # The outer txn changes a, but the inner compare still sees a == 1 (etcd evaluates
    # every compare on the chosen path before any write).
    response = d.ok(TxnRequest(success=[PutRequest(b"a", b"changed"), inner]), TxnResponse)
    nested = response.responses[1]
    assert isinstance(nested, TxnResponse)
    assert nested.succeeded
    got = d.read_ok(RangeRequest(b"inner"), RangeResponse).kvs
    assert [kv.value for kv in got] == [b"yes"]
    assert got[0].mod_revision == 5


def test_duplicate_keys_in_a_txn_are_refused() -> None:
    d = seeded()
    before = d.machine.snapshot()
    d.error(
        TxnRequest(success=[PutRequest(b"k", b"1"), PutRequest(b"k", b"2")]), "duplicate_key_in_txn"
    )
    d.error(
        TxnRequest(success=[PutRequest(b"k", b"1"), DeleteRangeRequest(b"a", b"z")]),
        "duplicate_key_in_txn",
    )
    d.error(
        TxnRequest(success=[PutRequest(b"k", b"1"), TxnRequest(success=[PutRequest(b"k", b"2")])]),
        "duplicate_key_in_txn",
    )
    assert d.machine.snapshot() == before
    # The same key in the two branches is fine: only one runs.
    d.ok(
        TxnRequest(success=[PutRequest(b"k", b"1")], failure=[PutRequest(b"k", b"2")]), TxnResponse
    )


def test_too_many_ops() -> None:
    d = seeded()
    ops = [PutRequest(b"k%d" % i, b"") for i in range(MAX_TXN_OPS + 1)]
    error = d.error(TxnRequest(success=ops), "too_many_ops")  # type: ignore[arg-type]
    assert str(MAX_TXN_OPS) in error.message
    d.ok(TxnRequest(success=ops[:MAX_TXN_OPS]), TxnResponse)  # type: ignore[arg-type]


def test_a_failing_step_aborts_the_whole_txn() -> None:
    d = seeded()
    before = d.machine.snapshot()
    d.error(
        TxnRequest(success=[PutRequest(b"ok", b"1"), PutRequest(b"bad", b"1", lease=99)]),
        "lease_not_found",
    )
    d.error(
        TxnRequest(success=[PutRequest(b"ok", b"1"), RangeRequest(b"a", revision=99)]),
        "future_revision",
    )
    assert d.machine.snapshot() == before


def nested(depth: int) -> TxnRequest:
    txn = TxnRequest(success=[PutRequest(b"deep", b"1")])
    for _ in range(depth - 1):
        txn = TxnRequest(success=[txn])
    return txn


def test_nesting_is_bounded_the_same_way_however_deep() -> None:
    d = seeded()
    d.ok(nested(MAX_TXN_DEPTH), TxnResponse)
    shallow = d.error(nested(MAX_TXN_DEPTH + 1), "bad_request")
    # Far deeper than the interpreter's stack: refused with the same error, not raised.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # to build and encode the request only
    try:
        data = command_bytes(nested(5_000))
    finally:
        sys.setrecursionlimit(limit)
    deep = result_of(d.machine.apply(data))
    assert deep == shallow
