"""WalStorage's segment files: rollover, compaction deleting whole segments, truncation
across segments (redone from its intent after a crash), and the damage recovery refuses."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import pytest
from wal_fixtures import reopen, segment_files, wal_small, write_and_sync

from tejido.core.storage import LogAppend, LogCompact, LogTruncate, Put, Recovered, StorageState
from tejido.net.storage import CorruptStorage
from tejido.net.wal import ForeignStorage, WalStorage
from tejido.net.walfiles import HEADER_BYTES, RECORD_HEAD_BYTES, segment_name, write_checked

RECORD = b"r" * 40  # 60 bytes with index and header: a 256-byte segment rolls after four


def _records(first: int, count: int) -> tuple[bytes, ...]:
    return tuple(f"{i:04d}".encode() + RECORD for i in range(first, first + count))


def _appends(first: int, count: int) -> list[LogAppend]:
    """One append per record, so the segments roll over between them."""
    return [LogAppend((r,)) for r in _records(first, count)]


def _first_indexes(directory: Path) -> list[int]:
    return [int(p.name.split("-")[1].split(".")[0], 16) for p in segment_files(directory)]


def test_segments_roll_over_at_the_size_limit(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _appends(0, 20))
    files = segment_files(tmp_path)
    assert len(files) == 5
    assert [p.name for p in files] == [segment_name(s, 4 * (s - 1)) for s in range(1, 6)]
    # every full segment reached the limit with its last append, none went far beyond
    for path in files[:-1]:
        assert 256 <= path.stat().st_size < 256 + len(RECORD) + RECORD_HEAD_BYTES + 4
    assert reopen(wal_small, tmp_path).records == _records(0, 20)


def test_an_append_is_never_split_across_segments(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, [LogAppend(_records(0, 10)), LogAppend(_records(10, 3))])
    assert _first_indexes(tmp_path) == [0, 10]
    assert reopen(wal_small, tmp_path) == Recovered(0, _records(0, 13), {})


def test_compaction_deletes_whole_segments_only(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, [*_appends(0, 20), LogCompact(9)])
    # segments [0,4) and [4,8) are gone; [8,12) holds index 8 < 9 but also 9..11: kept
    assert _first_indexes(tmp_path) == [8, 12, 16]
    recovered = reopen(wal_small, tmp_path)
    assert recovered.first_index == 9
    assert recovered.records == _records(9, 11)


def test_compaction_beyond_the_log_starts_a_new_segment(tmp_path: Path) -> None:
    ops = [*_appends(0, 6), LogCompact(50), LogAppend(_records(50, 2))]
    write_and_sync(wal_small, tmp_path, ops)
    assert _first_indexes(tmp_path) == [50]
    assert reopen(wal_small, tmp_path) == Recovered(50, _records(50, 2), {})


def test_truncation_across_segments_removes_the_later_ones(tmp_path: Path) -> None:
    ops = [*_appends(0, 20), LogTruncate(6), LogAppend((b"new6", b"new7"))]
    write_and_sync(wal_small, tmp_path, ops)
    assert _first_indexes(tmp_path) == [0, 4]
    assert reopen(wal_small, tmp_path).records == (*_records(0, 6), b"new6", b"new7")


def test_truncation_at_a_segment_boundary_and_to_the_compaction_point(tmp_path: Path) -> None:
    ops = [*_appends(0, 12), LogTruncate(8), LogCompact(5), LogTruncate(5)]
    write_and_sync(wal_small, tmp_path, [*ops, LogAppend((b"x",))])
    assert reopen(wal_small, tmp_path) == Recovered(5, (b"x",), {})


def test_reopened_storage_continues_where_it_was(tmp_path: Path) -> None:
    model = StorageState()
    batches = [
        [*_appends(0, 7), Put("hard", b"t1")],
        [LogTruncate(5), LogAppend((b"a", b"b", b"c"))],
        [LogCompact(6), Put("snap", b"s" * 5000), *_appends(8, 9)],
        [LogTruncate(12), Put("hard", None)],
    ]
    for batch in batches:
        write_and_sync(wal_small, tmp_path, batch)
        for op in batch:
            model.apply(op)
        assert reopen(wal_small, tmp_path) == model.snapshot()


def test_an_interrupted_truncation_is_redone_at_recovery(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _appends(0, 12))
    second = segment_files(tmp_path)[1]  # holds 4..7
    offset = HEADER_BYTES + 2 * (RECORD_HEAD_BYTES + len(_records(0, 1)[0]))  # index 6
    # the crash came after the intent was durable, before anything was cut
    write_checked(tmp_path / "wal", "TRUNCATE", struct.pack(">QQQ", 2, offset, 6))
    recovered = reopen(wal_small, tmp_path)
    assert recovered.records == _records(0, 6)
    assert _first_indexes(tmp_path) == [0, 4]
    assert second.stat().st_size == offset
    assert not (tmp_path / "wal" / "TRUNCATE").exists()


def test_segments_left_below_the_compaction_point_are_deleted(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _appends(0, 12))
    # the crash came after START was replaced, before the old segments were deleted
    write_checked(tmp_path / "wal", "START", struct.pack(">Q", 9))
    assert reopen(wal_small, tmp_path) == Recovered(9, _records(9, 3), {})
    assert _first_indexes(tmp_path) == [8]


def test_a_missing_segment_is_refused(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _appends(0, 12))
    segment_files(tmp_path)[1].unlink()
    third = segment_files(tmp_path)[1]
    with pytest.raises(CorruptStorage, match=rf"{third}: offset 0: missing segment") as info:
        reopen(wal_small, tmp_path)
    assert "restore this member from a peer" in str(info.value)
    assert f"wipe {tmp_path}" in str(info.value)


def test_a_missing_first_segment_is_refused(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, [*_appends(0, 12), LogCompact(2)])
    first, second = segment_files(tmp_path)[:2]
    first.unlink()
    with pytest.raises(CorruptStorage, match=rf"{second}: offset 0: the log starts at index 2"):
        reopen(wal_small, tmp_path)


def test_a_header_that_disagrees_with_the_name_is_refused(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _appends(0, 12))
    second = segment_files(tmp_path)[1]
    second.rename(second.with_name(segment_name(2, 5)))
    with pytest.raises(CorruptStorage, match="offset 0: header says segment 2 from index 4"):
        reopen(wal_small, tmp_path)


def test_a_record_with_the_wrong_index_is_refused_even_at_the_tail(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, [LogAppend(_records(0, 2))])
    path = segment_files(tmp_path)[0]
    body = b"stray"
    head = struct.pack(">IQ", len(body), 7)
    stray = struct.pack(">I", zlib.crc32(body, zlib.crc32(head))) + head + body
    end = path.stat().st_size
    path.write_bytes(path.read_bytes() + stray)
    with pytest.raises(CorruptStorage, match=rf"offset {end}: record holds index 7 where 2"):
        reopen(wal_small, tmp_path)


def test_a_damaged_state_value_is_refused(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, [Put("hard", b"term 3")])
    path = tmp_path / "state" / "hard"
    path.write_bytes(path.read_bytes()[:-1] + b"4")
    with pytest.raises(CorruptStorage, match=rf"{path}: offset 0: value checksum mismatch"):
        reopen(wal_small, tmp_path)


def test_a_disk_storage_directory_is_not_mistaken_for_an_empty_wal(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"TJLOG001")
    with pytest.raises(ForeignStorage, match="a DiskStorage log"):
        reopen(WalStorage, tmp_path)
    reopen(WalStorage, tmp_path / "fresh")  # the lock was released: a new dir works


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="segment_bytes must be positive, not 0"):
        WalStorage(tmp_path, on_durable=lambda t: None, segment_bytes=0)


def test_a_large_queue_is_written_without_waiting_for_a_sync(tmp_path: Path) -> None:
    async def rounds(flush_bytes: int, directory: Path) -> int:
        done = asyncio.Event()
        storage = WalStorage(directory, on_durable=lambda t: done.set(), flush_bytes=flush_bytes)
        storage.open()
        storage.apply(LogTruncate(0))  # queued for the worker thread: the appends queue behind
        for record in _records(0, 40):  # 60 bytes each
            storage.apply(LogAppend((record,)))
        storage.request_sync(1)
        await asyncio.wait_for(done.wait(), 10)
        count = storage.fsyncs
        storage.abandon()
        return count

    # past 1000 queued bytes a round starts on its own; the sync waits for the next one
    assert asyncio.run(rounds(1000, tmp_path / "small")) == 2
    assert asyncio.run(rounds(1 << 20, tmp_path / "large")) == 1
    assert reopen(WalStorage, tmp_path / "small").records == _records(0, 40)


def test_a_compaction_past_the_log_interrupted_before_its_new_segment(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _appends(0, 12))
    # the crash came after START moved past the log, before the segment at 50 was created
    write_checked(tmp_path / "wal", "START", struct.pack(">Q", 50))
    assert reopen(wal_small, tmp_path) == Recovered(50, (), {})
    assert _first_indexes(tmp_path) == [50]
    write_and_sync(wal_small, tmp_path, [LogAppend((b"fifty",))])
    assert reopen(wal_small, tmp_path) == Recovered(50, (b"fifty",), {})
