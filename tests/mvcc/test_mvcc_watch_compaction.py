"""Compaction and the watch events contract (etcd3 API overview, "Watch API" and
"Compaction": events ordered by revision, resumable from any revision, a watch or a read
below the compacted revision fails with "compacted"; mvccpb.Event: a DELETE carries the
key at the deletion's revision, prev_kv the value before)."""

from __future__ import annotations

import pytest
from mvcc_driver import Driver

from tejido.mvcc import StoreErrorRaised
from tejido.mvcc.api import (
    CompactionRequest,
    CompactionResponse,
    DeleteRangeRequest,
    Event,
    KeyValue,
    PutRequest,
    RangeRequest,
    RangeResponse,
    TxnRequest,
)


def busy() -> Driver:
    d = Driver()
    for i in range(30):
        key = b"k%d" % (i % 4)
        if i % 7 == 6:
            d.write(DeleteRangeRequest(key))
        elif i % 5 == 4:
            d.write(
                TxnRequest(success=[PutRequest(key, b"t%d" % i), PutRequest(b"other", b"%d" % i)])
            )
        else:
            d.write(PutRequest(key, b"v%d" % i))
    return d


def test_events_are_ordered_without_gaps_or_duplicates() -> None:
    d = busy()
    events = d.machine.events(1, b"\0", b"\0")
    revisions = [e.kv.mod_revision for e in events]
    assert revisions == sorted(revisions)
    assert sorted(set(revisions)) == list(range(2, d.machine.revision + 1))  # no gaps
    keyed = [(e.kv.mod_revision, e.kv.key) for e in events]
    assert len(keyed) == len(set(keyed))  # no duplicates


def test_events_are_resumable_from_any_revision() -> None:
    d = busy()
    every = d.machine.events(1, b"\0", b"\0")
    for start in range(1, d.machine.revision + 2):
        assert d.machine.events(start, b"\0", b"\0") == [
            e for e in every if e.kv.mod_revision >= start
        ]


def test_events_filter_by_key_and_prefix() -> None:
    d = busy()
    every = d.machine.events(1, b"\0", b"\0")
    assert d.machine.events(1, b"k1") == [e for e in every if e.kv.key == b"k1"]
    assert d.machine.events(1, b"k", b"l") == [e for e in every if e.kv.key.startswith(b"k")]


def test_the_hook_sees_each_revision_once_in_order_and_matches_events() -> None:
    d = Driver()
    seen: list[tuple[int, list[Event]]] = []
    d.machine.on_events = lambda revision, events: seen.append((revision, events))
    d.write(PutRequest(b"a", b"1"))
    d.write(DeleteRangeRequest(b"nothing"))  # no revision, no call
    d.write(TxnRequest(success=[PutRequest(b"b", b"1"), DeleteRangeRequest(b"a")]))
    assert [r for r, _ in seen] == [2, 3]
    assert seen[1][1] == [
        Event("PUT", KeyValue(b"b", 3, 3, 1, b"1")),
        Event("DELETE", KeyValue(b"a", 0, 3, 0), KeyValue(b"a", 2, 2, 1, b"1")),
    ]
    assert [e for _, events in seen for e in events] == d.machine.events(1, b"\0", b"\0")


def test_compaction_keeps_live_keys_and_reads_from_the_compacted_revision() -> None:
    d = busy()
    current = d.read_ok(RangeRequest(b"\0", b"\0"), RangeResponse).kvs
    at = 15
    at_before = d.read_ok(RangeRequest(b"\0", b"\0", revision=at), RangeResponse).kvs
    later_before = d.machine.events(at + 1, b"\0", b"\0")
    d.ok(CompactionRequest(at), CompactionResponse)
    assert d.machine.compacted_revision == at
    assert d.read_ok(RangeRequest(b"\0", b"\0"), RangeResponse).kvs == current
    assert d.read_ok(RangeRequest(b"\0", b"\0", revision=at), RangeResponse).kvs == at_before
    assert d.machine.events(at + 1, b"\0", b"\0") == later_before
    error = d.query(RangeRequest(b"k1", revision=at - 1))
    assert getattr(error, "code", None) == "compacted"
    with pytest.raises(StoreErrorRaised) as raised:
        d.machine.events(at, b"\0", b"\0")
    assert raised.value.error.code == "compacted"


def test_compaction_errors() -> None:
    d = busy()
    d.error(CompactionRequest(d.machine.revision + 1), "future_revision")
    d.ok(CompactionRequest(10), CompactionResponse)
    d.error(CompactionRequest(10), "compacted")
    d.error(CompactionRequest(5), "compacted")
    d.ok(CompactionRequest(d.machine.revision), CompactionResponse)


def test_compaction_drops_the_history_of_deleted_keys() -> None:
    d = Driver()
    d.write(PutRequest(b"gone", b"1"))
    d.write(DeleteRangeRequest(b"gone"))
    d.write(PutRequest(b"live", b"1"))
    d.ok(CompactionRequest(d.machine.revision), CompactionResponse)
    assert d.machine.space.index.history(b"gone") is None
    assert [h.key for h in d.machine.space.index.histories(b"\0", b"\0")] == [b"live"]
