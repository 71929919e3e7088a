"""The store machine's key-value semantics against etcd's documented behaviour.

Sources: etcd's ``mvccpb.KeyValue`` field comments (version: "a deletion resets the
version to zero and any modification of the key increases its version"), the etcd3 API
overview (etcd.io/docs/v3.5/learning/api/: response header revision, range_end
conventions, limit/more/count, revision 0 = current), and ``clientv3.GetPrefixRangeEnd``.
"""

from __future__ import annotations

import msgspec
import pytest
from mvcc_driver import Driver

from tejido.core.operations import Operation, Outcome
from tejido.mvcc.api import (
    MAX_REQUEST_BYTES,
    Command,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    decode_command,
    encode_command,
    prefix_end,
)
from tejido.mvcc.machine import StoreStateMachine

_encode = msgspec.msgpack.Encoder().encode
_outcome = msgspec.msgpack.Decoder(Outcome).decode


def get(d: Driver, key: bytes, **kw: object) -> RangeResponse:
    return d.read_ok(RangeRequest(key, **kw), RangeResponse)  # type: ignore[arg-type]


def test_an_empty_store_is_at_revision_1_and_each_put_takes_the_next() -> None:
    d = Driver()
    assert get(d, b"a").header_revision == 1
    assert d.ok(PutRequest(b"a", b"1"), PutResponse).header_revision == 2
    assert d.ok(PutRequest(b"b", b"1"), PutResponse).header_revision == 3
    assert get(d, b"a").header_revision == 3


def test_create_mod_and_version_follow_generations() -> None:
    d = Driver()
    d.write(PutRequest(b"k", b"v1"))  # rev 2
    d.write(PutRequest(b"k", b"v2"))  # rev 3
    assert get(d, b"k").kvs == [KeyValue(b"k", 2, 3, 2, b"v2")]
    deleted = d.ok(DeleteRangeRequest(b"k", prev_kv=True), DeleteRangeResponse)
    assert (deleted.header_revision, deleted.deleted) == (4, 1)
    assert deleted.prev_kvs == [KeyValue(b"k", 2, 3, 2, b"v2")]
    assert get(d, b"k").kvs == []
    d.write(PutRequest(b"k", b"v3"))  # rev 5: a new generation
    assert get(d, b"k").kvs == [KeyValue(b"k", 5, 5, 1, b"v3")]


def test_put_returns_the_previous_value_only_when_asked() -> None:
    d = Driver()
    assert d.ok(PutRequest(b"k", b"1", prev_kv=True), PutResponse).prev_kv is None
    assert d.ok(PutRequest(b"k", b"2"), PutResponse).prev_kv is None
    previous = d.ok(PutRequest(b"k", b"3", prev_kv=True), PutResponse).prev_kv
    assert previous == KeyValue(b"k", 2, 3, 2, b"2")


def test_a_delete_of_nothing_keeps_the_revision() -> None:
    d = Driver()
    d.write(PutRequest(b"a", b"1"))
    response = d.ok(DeleteRangeRequest(b"zz"), DeleteRangeResponse)
    assert (response.header_revision, response.deleted) == (2, 0)
    assert d.machine.revision == 2


def test_range_end_conventions() -> None:
    d = Driver()
    for key in (b"a", b"ab", b"abc", b"b", b"c"):
        d.write(PutRequest(key, key))
    keys = lambda r: [kv.key for kv in r.kvs]  # noqa: E731
    assert keys(get(d, b"ab")) == [b"ab"]  # empty range_end: one key
    assert keys(get(d, b"ab", range_end=b"b")) == [b"ab", b"abc"]  # [key, end)
    assert keys(get(d, b"ab", range_end=b"\0")) == [b"ab", b"abc", b"b", b"c"]  # >= key
    assert keys(get(d, b"a", range_end=prefix_end(b"a"))) == [b"a", b"ab", b"abc"]
    assert keys(get(d, b"\0", range_end=b"\0")) == [b"a", b"ab", b"abc", b"b", b"c"]
    assert keys(get(d, b"c", range_end=b"a")) == []  # end before start: nothing


def test_prefix_end() -> None:
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"
    assert prefix_end(b"") == b"\0"


def test_limit_more_count_keys_only_count_only() -> None:
    d = Driver()
    for i in range(5):
        d.write(PutRequest(b"k%d" % i, b"value"))
    limited = get(d, b"k", range_end=b"l", limit=2)
    assert [kv.key for kv in limited.kvs] == [b"k0", b"k1"]
    assert (limited.more, limited.count) == (True, 5)
    whole = get(d, b"k", range_end=b"l", limit=5)
    assert (whole.more, whole.count, len(whole.kvs)) == (False, 5, 5)
    keys_only = get(d, b"k", range_end=b"l", keys_only=True)
    assert all(kv.value == b"" and kv.version == 1 for kv in keys_only.kvs)
    counted = get(d, b"k", range_end=b"l", count_only=True)
    assert (counted.kvs, counted.count, counted.more) == ([], 5, False)


def test_reads_at_past_revisions() -> None:
    d = Driver()
    d.write(PutRequest(b"k", b"1"))  # 2
    d.write(PutRequest(b"k", b"2"))  # 3
    d.write(DeleteRangeRequest(b"k"))  # 4
    d.write(PutRequest(b"k", b"3"))  # 5
    assert [kv.value for kv in get(d, b"k", revision=1).kvs] == []
    assert [kv.value for kv in get(d, b"k", revision=2).kvs] == [b"1"]
    assert [kv.value for kv in get(d, b"k", revision=3).kvs] == [b"2"]
    assert get(d, b"k", revision=4).kvs == []
    assert get(d, b"k", revision=5).kvs == [KeyValue(b"k", 5, 5, 1, b"3")]
    error = d.query(RangeRequest(b"k", revision=6))
    assert getattr(error, "code", None) == "future_revision"


@pytest.mark.parametrize(
    ("op", "code"),
    [
        (PutRequest(b"", b"v"), "empty_key"),
        (DeleteRangeRequest(b""), "empty_key"),
        (RangeRequest(b""), "empty_key"),
        (RangeRequest(b"k", limit=-1), "bad_request"),
        (PutRequest(b"k", b"v", lease=42), "lease_not_found"),
        (PutRequest(b"k", ignore_value=True), "bad_request"),  # the key does not exist
        (PutRequest(b"k", b"v", ignore_value=True), "bad_request"),
    ],
)
def test_bad_requests_are_refused_by_name_and_change_nothing(op: object, code: str) -> None:
    d = Driver()
    before = d.machine.snapshot()
    error = d.error(op, code)  # type: ignore[arg-type]
    assert error.message
    assert d.machine.snapshot() == before


def test_ignore_value_and_ignore_lease_keep_the_current_ones() -> None:
    d = Driver()
    d.write(PutRequest(b"k", b"kept"))
    d.write(PutRequest(b"k", ignore_value=True))
    assert get(d, b"k").kvs == [KeyValue(b"k", 2, 3, 2, b"kept")]


def test_an_oversized_request_is_refused_and_the_machine_keeps_serving() -> None:
    m = StoreStateMachine()
    big = PutRequest(b"k", b"x" * (MAX_REQUEST_BYTES + 2048))
    data = _encode(Operation(f="store", data=encode_command(Command(big))))
    d = Driver(m)
    from mvcc_driver import result_of

    error = result_of(m.apply(data))
    assert getattr(error, "code", None) == "request_too_large"
    assert d.ok(PutRequest(b"k", b"small"), PutResponse).header_revision == 2


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xc1",
        _encode({"f": 3}),
        _encode(Operation(f="store", data=b"\x93\x01\x02")),
        _encode(Operation(f="store", data=_encode({"op": {"type": "nope"}}))),
        _encode(Operation(f="frobnicate", data=b"x")),
        _encode(Operation(f="store", data=_encode({"op": {"type": "put", "key": 5}}))),
    ],
)
def test_malformed_commands_give_an_error_result_never_a_raise(garbage: bytes) -> None:
    m = StoreStateMachine()
    before = m.snapshot()
    outcome = _outcome(m.apply(garbage))
    if outcome.type == "ok":
        assert outcome.data is not None
        from tejido.mvcc.api import StoreError, decode_result

        result = decode_result(outcome.data)
        assert isinstance(result, StoreError)
        assert result.code == "bad_request"
    else:
        assert outcome.type == "fail"
        assert outcome.error
    assert m.snapshot() == before


def test_command_round_trip() -> None:
    command = Command(PutRequest(b"k", b"v", lease=3), client_id=1, seq=2, time=3.5)
    assert decode_command(encode_command(command)) == command
