"""The key-value state machine: read/write/cas/append, snapshot and restore."""

from __future__ import annotations

from tejido.core.operations import Operation, Outcome
from tejido.raft.kv import KeyValueStateMachine, decode_outcome, encode_operation


def apply(machine: KeyValueStateMachine, op: Operation) -> Outcome:
    return decode_outcome(machine.apply(encode_operation(op)))


def test_operations() -> None:
    kv = KeyValueStateMachine()
    assert apply(kv, Operation("read", "k")) == Outcome("ok", None)
    assert apply(kv, Operation("write", "k", 1)).type == "ok"
    assert apply(kv, Operation("cas", "k", (2, 3))).type == "fail"
    assert apply(kv, Operation("cas", "k", (1, 3))).type == "ok"
    assert apply(kv, Operation("read", "k")) == Outcome("ok", 3)
    assert apply(kv, Operation("append", "l", "a")).type == "ok"
    assert apply(kv, Operation("append", "l", "b")).type == "ok"
    assert decode_outcome(kv.read(encode_operation(Operation("read", "l")))) == Outcome("ok", "ab")
    assert apply(kv, Operation("write", None, 5)).type == "ok"  # the single register
    assert apply(kv, Operation("read")) == Outcome("ok", 5)


def test_append_needs_strings() -> None:
    kv = KeyValueStateMachine()
    apply(kv, Operation("write", "k", 1))
    assert apply(kv, Operation("append", "k", "a")).type == "fail"
    assert kv.values["k"] == 1
    assert apply(kv, Operation("append", "s", 5)).type == "fail"


def test_garbage_commands_are_refused_deterministically() -> None:
    kv = KeyValueStateMachine()
    assert decode_outcome(kv.apply(b"\xff\x00")).type == "fail"
    assert apply(kv, Operation("delete", "k")).type == "fail"


# A msgpack map {"f": "write", "key": <the bytes ff fe as a str>, "value": 1}: well-formed
# msgpack whose string is not UTF-8 (msgspec raises UnicodeDecodeError, not DecodeError).
NOT_UTF8_WRITE = b"\x83\xa1f\xa5write\xa3key\xa2\xff\xfe\xa5value\x01"


def test_a_string_that_is_not_utf8_is_refused_not_raised() -> None:
    kv = KeyValueStateMachine()
    assert decode_outcome(kv.apply(NOT_UTF8_WRITE)).type == "fail"
    assert decode_outcome(kv.read(NOT_UTF8_WRITE)).type == "fail"
    good = encode_operation(Operation("write", "k", 7))
    for results in (False, True):
        applied = kv.apply_batch([good, NOT_UTF8_WRITE], results=results)
        if results:
            assert [decode_outcome(r).type for r in applied] == ["ok", "fail"]
    assert kv.values == {"k": 7}


def test_snapshot_roundtrip() -> None:
    kv = KeyValueStateMachine()
    apply(kv, Operation("write", "a", 1))
    apply(kv, Operation("append", "b", "x"))
    copy = KeyValueStateMachine()
    copy.restore(kv.snapshot())
    assert copy.values == kv.values
    assert copy.snapshot() == kv.snapshot()
