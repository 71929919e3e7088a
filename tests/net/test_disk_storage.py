"""On-disk storage: what a sync acknowledged survives a restart; torn tails are cut, damage
before the tail is refused with the file and offset; group commit covers queued syncs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tejido.core.errors import LocalProtocolError
from tejido.core.storage import LogAppend, LogCompact, LogTruncate, Put, Recovered
from tejido.net.storage import MAGIC, CorruptStorage, DiskStorage, StorageLocked


async def _write_and_sync(directory: Path, ops: list[object]) -> list[int]:
    durable: list[int] = []
    done = asyncio.Event()
    storage = DiskStorage(directory, on_durable=lambda t: (durable.append(t), done.set()))
    storage.open()
    for op in ops:
        storage.apply(op)  # type: ignore[arg-type]
    storage.request_sync(1)
    await asyncio.wait_for(done.wait(), 10)
    storage.abandon()  # like a crash: nothing more is flushed
    return durable


def _reopen(directory: Path) -> Recovered:
    storage = DiskStorage(directory, on_durable=lambda t: None)
    try:
        return storage.open()
    finally:
        storage.abandon()


def test_synced_operations_survive_a_restart(tmp_path: Path) -> None:
    ops = [
        LogAppend((b"a", b"b", b"c")),
        Put("term", b"\x03"),
        Put("register/x", b"v1"),
        LogTruncate(2),
        LogAppend((b"C", b"d")),
        LogCompact(1),
        Put("register/x", b"v2"),
        Put("gone", b"1"),
        Put("gone", None),
    ]
    assert asyncio.run(_write_and_sync(tmp_path, ops)) == [1]
    recovered = _reopen(tmp_path)
    assert recovered.first_index == 1
    assert recovered.records == (b"b", b"C", b"d")
    assert recovered.state == {"term": b"\x03", "register/x": b"v2"}
    # recovering twice changes nothing (the recovery itself is idempotent)
    assert _reopen(tmp_path) == recovered


def test_a_torn_tail_is_cut_off_and_the_log_stays_appendable(tmp_path: Path) -> None:
    asyncio.run(_write_and_sync(tmp_path, [LogAppend((b"one", b"two", b"three"))]))
    log = tmp_path / "log"
    whole = log.read_bytes()
    log.write_bytes(whole[:-3])  # the last record lost its last bytes in a crash
    recovered = _reopen(tmp_path)
    assert recovered.records == (b"one", b"two")
    assert log.stat().st_size < len(whole) - 3  # the torn record was truncated away
    asyncio.run(_write_and_sync(tmp_path, [LogAppend((b"four",))]))
    assert _reopen(tmp_path).records == (b"one", b"two", b"four")


def test_zeroes_after_the_last_record_are_a_torn_tail(tmp_path: Path) -> None:
    asyncio.run(_write_and_sync(tmp_path, [LogAppend((b"one",))]))
    log = tmp_path / "log"
    log.write_bytes(log.read_bytes() + b"\x00" * 4096)
    assert _reopen(tmp_path).records == (b"one",)


def test_damage_before_the_tail_is_refused_naming_file_and_offset(tmp_path: Path) -> None:
    asyncio.run(_write_and_sync(tmp_path, [LogAppend((b"first", b"second", b"third"))]))
    log = tmp_path / "log"
    data = bytearray(log.read_bytes())
    second = len(MAGIC) + 9 + len(b"first")  # where the second record starts
    data[second + 9] ^= 0xFF  # flip a byte of its body: its checksum fails, a good one follows
    log.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage, match=rf"{log}: offset {second}: record checksum mismatch"):
        _reopen(tmp_path)


def test_a_damaged_length_field_is_not_mistaken_for_a_torn_tail(tmp_path: Path) -> None:
    asyncio.run(_write_and_sync(tmp_path, [LogAppend((b"first", b"second", b"third"))]))
    log = tmp_path / "log"
    data = bytearray(log.read_bytes())
    data[len(MAGIC) + 4] = 0x7F  # the first record now claims ~2 GB
    log.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage, match=rf"offset {len(MAGIC)}: record of \d+ bytes runs"):
        _reopen(tmp_path)


def test_a_file_that_is_not_a_log_is_refused(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"hello, world\n")
    with pytest.raises(CorruptStorage, match="offset 0: not a tejido log"):
        _reopen(tmp_path)


def test_unsynced_puts_are_not_written_before_a_sync(tmp_path: Path) -> None:
    async def body() -> None:
        storage = DiskStorage(tmp_path, on_durable=lambda t: None)
        storage.open()
        storage.apply(Put("k", b"v"))
        storage.abandon()

    asyncio.run(body())
    assert _reopen(tmp_path).state == {}


def test_group_commit_answers_every_token_in_order_with_fewer_fsyncs(tmp_path: Path) -> None:
    async def body() -> tuple[list[int], int]:
        durable: list[int] = []
        all_done = asyncio.Event()

        def on_durable(token: int) -> None:
            durable.append(token)
            if token == 50:
                all_done.set()

        storage = DiskStorage(tmp_path, on_durable=on_durable)
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
    # the first token starts an fsync; the 49 queued behind it share the next one
    assert fsyncs == 2
    assert len(_reopen(tmp_path).records) == 50


def test_a_second_node_cannot_open_the_same_directory(tmp_path: Path) -> None:
    first = DiskStorage(tmp_path, on_durable=lambda t: None)
    first.open()
    try:
        with pytest.raises(StorageLocked, match="in use by another node"):
            DiskStorage(tmp_path, on_durable=lambda t: None).open()
    finally:
        first.abandon()


def test_bad_operations_are_refused(tmp_path: Path) -> None:
    storage = DiskStorage(tmp_path, on_durable=lambda t: None)
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


def test_a_log_mostly_dead_is_rewritten_compactly_at_open(tmp_path: Path) -> None:
    big = b"x" * 4096
    ops: list[object] = [LogAppend((big,) * 400), LogCompact(399)]
    asyncio.run(_write_and_sync(tmp_path, ops))
    before = (tmp_path / "log").stat().st_size
    recovered = _reopen(tmp_path)
    assert recovered.first_index == 399
    assert recovered.records == (big,)
    assert (tmp_path / "log").stat().st_size < before // 100
    assert _reopen(tmp_path) == recovered
