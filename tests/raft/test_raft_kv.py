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


def test_snapshot_roundtrip() -> None:
    kv = KeyValueStateMachine()
    apply(kv, Operation("write", "a", 1))
    apply(kv, Operation("append", "b", "x"))
    copy = KeyValueStateMachine()
    copy.restore(kv.snapshot())
    assert copy.values == kv.values
    assert copy.snapshot() == kv.snapshot()
