"""The storage contract (tejido.core.storage) on both disk implementations.

DiskStorage (one log file) and WalStorage (segment files, also with tiny segments so every
test crosses segment boundaries) must agree with the in-memory `StorageState` oracle: what a
sync acknowledged comes back after a restart; an unsynced suffix may be lost only as a
prefix of the operations; group commit answers every token in order.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wal_fixtures import FACTORIES, Factory, reopen, write_and_sync

from tejido.core.errors import LocalProtocolError
from tejido.core.storage import (
    LogAppend,
    LogCompact,
    LogTruncate,
    Put,
    Recovered,
    StorageOp,
    StorageState,
)
from tejido.net.storage import StorageLocked

pytestmark = pytest.mark.parametrize("factory", FACTORIES.values(), ids=FACTORIES.keys())


def test_synced_operations_survive_a_restart(factory: Factory, tmp_path: Path) -> None:
    ops: list[StorageOp] = [
        LogAppend((b"a", b"b", b"c")),
        Put("term", b"\x03"),
        Put("register/x", b"v1"),
        LogTruncate(2),
        LogAppend((b"C", b"d")),
        LogCompact(1),
        Put("register/x", b"v2"),
        Put("gone", b"1"),
        Put("gone", None),
        Put("odd.tmp", b"dots and suffixes in keys are fine"),
    ]
    write_and_sync(factory, tmp_path, ops)
    recovered = reopen(factory, tmp_path)
    assert recovered.first_index == 1
    assert recovered.records == (b"b", b"C", b"d")
    assert recovered.state == {
        "term": b"\x03",
        "register/x": b"v2",
        "odd.tmp": b"dots and suffixes in keys are fine",
    }
    assert reopen(factory, tmp_path) == recovered  # recovery is idempotent


def test_close_makes_everything_applied_durable(factory: Factory, tmp_path: Path) -> None:
    async def body() -> None:
        storage = factory(tmp_path, on_durable=lambda t: None)
        storage.open()
        storage.apply(LogAppend((b"x", b"y")))
        storage.apply(Put("k", b"v"))
        await storage.close()

    asyncio.run(body())
    assert reopen(factory, tmp_path) == Recovered(0, (b"x", b"y"), {"k": b"v"})


def test_unsynced_puts_are_not_written_before_a_sync(factory: Factory, tmp_path: Path) -> None:
    async def body() -> None:
        storage = factory(tmp_path, on_durable=lambda t: None)
        storage.open()
        storage.apply(Put("k", b"v"))
        storage.abandon()

    asyncio.run(body())
    assert reopen(factory, tmp_path).state == {}


def test_group_commit_answers_every_token_in_order_with_fewer_fsyncs(
    factory: Factory, tmp_path: Path
) -> None:
    async def body() -> tuple[list[int], int]:
        durable: list[int] = []
        all_done = asyncio.Event()

        def on_durable(token: int) -> None:
            durable.append(token)
            if token == 50:
                all_done.set()

        storage = factory(tmp_path, on_durable=on_durable)
        storage.open()
        for token in range(1, 51):
            storage.apply(LogAppend((f"r{token}".encode(),)))
            storage.request_sync(token)
        await asyncio.wait_for(all_done.wait(), 10)
        fsyncs = storage.fsyncs
        await storage.close()
        return durable, fsyncs

    durable, fsyncs = asyncio.run(body())
    assert durable == list(range(1, 51))
    assert fsyncs == 2  # the first token starts a round; the 49 queued behind share the next
    assert reopen(factory, tmp_path).records == tuple(f"r{t}".encode() for t in range(1, 51))


def test_a_second_node_cannot_open_the_same_directory(factory: Factory, tmp_path: Path) -> None:
    first = factory(tmp_path, on_durable=lambda t: None)
    first.open()
    try:
        with pytest.raises(StorageLocked, match="in use by another node"):
            factory(tmp_path, on_durable=lambda t: None).open()
    finally:
        first.abandon()
    reopen(factory, tmp_path)  # released: a later node can open it


def test_bad_operations_are_refused(factory: Factory, tmp_path: Path) -> None:
    storage = factory(tmp_path, on_durable=lambda t: None)
    storage.open()
    try:
        storage.apply(LogAppend((b"a",)))
        with pytest.raises(LocalProtocolError, match=r"LogTruncate\(from_index=5\) outside"):
            storage.apply(LogTruncate(5))
        storage.apply(LogCompact(1))
        with pytest.raises(LocalProtocolError, match="backwards"):
            storage.apply(LogCompact(0))
    finally:
        storage.abandon()


def test_a_failed_fsync_is_fatal(
    factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> tuple[list[BaseException], list[int]]:
        errors: list[BaseException] = []
        durable: list[int] = []
        failed = asyncio.Event()

        def on_error(exc: BaseException) -> None:
            errors.append(exc)
            failed.set()

        storage = factory(tmp_path, on_durable=durable.append, on_error=on_error)
        storage.open()

        def broken_fsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr("os.fsync", broken_fsync)
        storage.apply(LogAppend((b"x",)))
        storage.request_sync(1)
        await asyncio.wait_for(failed.wait(), 10)
        storage.request_sync(2)  # no further round runs after a failure
        monkeypatch.undo()
        storage.abandon()
        return errors, durable

    errors, durable = asyncio.run(body())
    assert [type(e) for e in errors] == [OSError]
    assert durable == []


# ---------------------------------------------------------------- against the oracle
@st.composite
def _operations(draw: st.DrawFn) -> list[StorageOp]:
    model = StorageState()
    ops: list[StorageOp] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["append", "append", "append", "truncate", "compact", "put"]))
        op: StorageOp
        if kind == "append":
            op = LogAppend(tuple(draw(st.lists(st.binary(max_size=60), min_size=1, max_size=6))))
        elif kind == "truncate":
            op = LogTruncate(draw(st.integers(model.first_index, model.next_index)))
        elif kind == "compact":
            op = LogCompact(draw(st.integers(model.first_index, model.next_index + 3)))
        else:
            value = draw(st.none() | st.binary(max_size=40))
            op = Put(draw(st.sampled_from(["hard", "snap", "a/b"])), value)
        model.apply(op)
        ops.append(op)
    return ops


@settings(max_examples=25, deadline=None)
@given(ops=_operations())
def test_a_synced_history_reopens_as_the_oracle_says(
    factory: Factory, ops: list[StorageOp]
) -> None:
    model = StorageState()
    for op in ops:
        model.apply(op)
    with tempfile.TemporaryDirectory() as name:
        write_and_sync(factory, Path(name), ops)
        assert reopen(factory, Path(name)) == model.snapshot()


@settings(max_examples=25, deadline=None)
@given(synced=_operations(), unsynced=_operations())
def test_an_unsynced_suffix_is_lost_only_as_a_prefix(
    factory: Factory, synced: list[StorageOp], unsynced: list[StorageOp]
) -> None:
    model = StorageState()
    for op in synced:
        model.apply(op)
    # the unsynced ops were drawn against an empty log: keep those valid after `synced`
    states = [model.snapshot()]
    kept: list[StorageOp] = []
    for op in unsynced:
        try:
            model.apply(op)
        except LocalProtocolError:
            continue
        kept.append(op)
        states.append(model.snapshot())

    async def body(directory: Path) -> None:
        done = asyncio.Event()
        storage = factory(directory, on_durable=lambda t: done.set())
        storage.open()
        for op in synced:
            storage.apply(op)
        storage.request_sync(1)
        await asyncio.wait_for(done.wait(), 10)
        for op in kept:
            storage.apply(op)
        storage.abandon()  # a crash: what was not synced may be lost

    with tempfile.TemporaryDirectory() as name:
        asyncio.run(body(Path(name)))
        got = reopen(factory, Path(name))
    logs = [(s.first_index, s.records) for s in states]
    assert (got.first_index, got.records) in logs
    for key in {*got.state, *states[0].state}:
        assert got.state.get(key) in [s.state.get(key) for s in states]
