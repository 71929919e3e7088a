"""The machine as Raft sees it: the register workload answers exactly as the plain
key-value machine does, snapshots restore equal machines with deterministic bytes, random
garbage never makes `apply` raise, and a batch is the same as one by one."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from mvcc_driver import Driver, command_bytes

from tejido.core.operations import Operation, Outcome
from tejido.mvcc.api import (
    CompactionRequest,
    Compare,
    DeleteRangeRequest,
    LeaseGrant,
    OpenSession,
    PutRequest,
    RangeRequest,
    RangeResponse,
    StoreError,
    TxnRequest,
    decode_result,
)
from tejido.mvcc.machine import StoreStateMachine
from tejido.raft.kv import KeyValueStateMachine, batch_apply

_encode = msgspec.msgpack.Encoder().encode
_outcome = msgspec.msgpack.Decoder(Outcome).decode

scalars = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["", "a", "b"]))
register_ops = st.one_of(
    st.builds(lambda k: Operation("read", k), st.sampled_from([None, "x", "y"])),
    st.builds(lambda k, v: Operation("write", k, v), st.sampled_from([None, "x", "y"]), scalars),
    st.builds(
        lambda k, a, b: Operation("cas", k, (a, b)),
        st.sampled_from([None, "x", "y"]),
        scalars,
        scalars,
    ),
    st.builds(lambda k, v: Operation("append", k, v), st.sampled_from([None, "x"]), scalars),
    st.builds(lambda: Operation("frob", "x", 1)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(register_ops, max_size=30))
def test_register_workload_answers_like_the_key_value_machine(ops: list[Operation]) -> None:
    store, plain = StoreStateMachine(), KeyValueStateMachine()
    for op in ops:
        data = _encode(op)
        expected = _outcome(plain.apply(data))
        got = _outcome(store.apply(data))
        assert (got.type, got.value) == (expected.type, expected.value), op
        if op.f == "read":
            assert _outcome(store.read(data)) == _outcome(plain.read(data))


def test_register_keys_live_in_the_mvcc_space() -> None:
    store = StoreStateMachine()
    store.apply(_encode(Operation("write", "x", 7)))
    d = Driver(store)
    kvs = d.read_ok(RangeRequest(b"x"), RangeResponse).kvs
    assert [(kv.value, kv.version) for kv in kvs] == [(_encode(7), 1)]


def mixed_commands() -> list[bytes]:
    ops = [
        OpenSession(),
        LeaseGrant(30),
        PutRequest(b"a", b"1", lease=1),
        PutRequest(b"b", b"2"),
        TxnRequest(
            [Compare(b"a", "VERSION", version=1)],
            [PutRequest(b"c", b"3"), DeleteRangeRequest(b"b")],
        ),
        PutRequest(b"a", b"again"),
        CompactionRequest(3),
        PutRequest(b"d", b"4"),
    ]
    out = [command_bytes(op, time=float(i)) for i, op in enumerate(ops)]
    out.append(command_bytes(PutRequest(b"s", b"1"), client_id=1, seq=1, time=9.0))
    out.append(_encode(Operation("write", "x", "reg")))
    return out


def test_snapshot_restore_gives_an_equal_machine_at_every_point() -> None:
    commands = mixed_commands()
    machine = StoreStateMachine()
    for command in commands:
        machine.apply(command)
        snapshot = machine.snapshot()
        restored = StoreStateMachine()
        restored.restore(snapshot)
        assert restored == machine
        assert restored.snapshot() == snapshot
        assert restored.leases() == machine.leases()
        assert restored.events(4, b"\0", b"\0") == machine.events(4, b"\0", b"\0")
    # A restored machine carries on identically (sessions included: a retry is answered).
    restored = StoreStateMachine()
    restored.restore(machine.snapshot())
    retry = commands[-2]
    assert restored.apply(retry) == machine.apply(retry)
    assert restored.revision == machine.revision
    empty = StoreStateMachine()
    machine.restore(b"")
    assert machine == empty


def test_restore_keeps_the_events_hook() -> None:
    machine = StoreStateMachine()
    seen: list[int] = []
    machine.on_events = lambda revision, events: seen.append(revision)
    machine.restore(StoreStateMachine().snapshot())
    machine.apply(command_bytes(PutRequest(b"k", b"v")))
    assert seen == [2]


def test_equal_commands_give_equal_bytes_and_batches_equal_single_applies() -> None:
    commands = mixed_commands()
    one, two, batched = StoreStateMachine(), StoreStateMachine(), StoreStateMachine()
    singles = [one.apply(c) for c in commands]
    for c in commands:
        two.apply(c)
    assert one.snapshot() == two.snapshot()
    assert one.digest() == two.digest()
    assert batch_apply(batched)(commands, True) == singles
    assert batched == one
    assert batch_apply(StoreStateMachine())(commands, False) == []


TAGS = [
    "range",
    "put",
    "delete_range",
    "txn",
    "compact",
    "lease_grant",
    "lease_revoke",
    "lease_expire",
    "lease_ttl",
    "lease_leases",
    "open_session",
    "close_session",
    "bad",
]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.builds(
            lambda f, data: _encode(Operation(f, data=data)),
            st.sampled_from(["store", "read", "write", "x"]),
            st.binary(max_size=64),
        ),
        st.builds(
            lambda tag, op: _encode(Operation("store", data=_encode({"op": {"type": tag, **op}}))),
            st.sampled_from(TAGS),
            st.dictionaries(
                st.sampled_from(
                    ["key", "value", "lease", "ids", "id", "ttl", "success", "compare"]
                ),
                st.one_of(
                    st.integers(-(2**63), 2**63 - 1),
                    st.binary(max_size=4),
                    st.text(max_size=4),
                    st.none(),
                    st.lists(st.integers(-5, 5), max_size=3),
                ),
            ),
        ),
    )
)
def test_garbage_never_raises_and_changes_nothing(data: bytes) -> None:
    machine = StoreStateMachine()
    machine.apply(command_bytes(PutRequest(b"k", b"v")))
    before = machine.snapshot()
    assert _outcome(machine.read(data)).type in ("ok", "fail")
    assert machine.snapshot() == before
    outcome = _outcome(machine.apply(data))
    assert outcome.type in ("ok", "fail")
    refused = outcome.type == "fail" or (
        outcome.data is not None and isinstance(decode_result(outcome.data), StoreError)
    )
    if refused:
        assert machine.snapshot() == before
