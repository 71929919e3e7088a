"""Preallocated, zero-filled segments (tejido.net.walfiles rule 5): the file size is not the
end of the log. Records land at the logical end, on the event loop's fast path and after a
reopen; zeros are extended on the worker before an append that does not fit; a zero-filled
rest is the end of a segment's data in any segment, while other bytes there stay corruption;
truncation never lets cut records come back; segments written without preallocation still
recover."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from wal_fixtures import data_end, reopen, segment_files, write_and_sync

from tejido.core.storage import LogAppend, LogTruncate, Recovered
from tejido.net.storage import CorruptStorage
from tejido.net.wal import WalStorage
from tejido.net.walfiles import HEADER_BYTES, RECORD_HEAD_BYTES, SegmentLog, encode_records

RECORD = b"p" * 84  # 100 bytes with its record header


def _records(first: int, count: int) -> tuple[bytes, ...]:
    return tuple(f"{i:04d}".encode() + RECORD[4:] for i in range(first, first + count))


def _log(directory: Path, segment_bytes: int = 1 << 16, preallocate: int = 1000) -> SegmentLog:
    log = SegmentLog(directory, segment_bytes, preallocate)
    directory.mkdir(exist_ok=True)
    return log


def _recover(directory: Path, **kwargs: int) -> tuple[int, list[bytes]]:
    log = _log(directory, **kwargs)
    try:
        return log.recover()
    finally:
        log.close()


def _storage(segment_bytes: int, preallocate_bytes: int = 1 << 20) -> Callable[..., WalStorage]:
    """A WalStorage factory with these sizes."""

    def factory(directory: Path, **more: object) -> WalStorage:
        sizes = {"segment_bytes": segment_bytes, "preallocate_bytes": preallocate_bytes}
        return WalStorage(directory, **sizes, **more)  # type: ignore[arg-type]

    return factory


def test_a_new_segment_is_born_zero_filled_and_appends_fill_it(tmp_path: Path) -> None:
    log = _log(tmp_path)
    assert log.recover() == (0, [])
    path = segment_files(tmp_path)[0]
    assert path.stat().st_size == HEADER_BYTES + 1000  # header, then the first chunk of zeros
    assert not path.read_bytes()[HEADER_BYTES:].strip(b"\x00")
    data = encode_records(0, _records(0, 3))
    assert log.can_write_now(len(data))
    log.write_now(data, 3)  # the event loop's fast path
    log.sync()
    log.close()
    raw = path.read_bytes()
    assert len(raw) == HEADER_BYTES + 1000  # the file did not grow: written into the zeros
    assert raw[HEADER_BYTES : HEADER_BYTES + len(data)] == data
    assert _recover(tmp_path) == (0, list(_records(0, 3)))


def test_reopened_appends_land_at_the_logical_end_not_the_file_size(tmp_path: Path) -> None:
    write_and_sync(WalStorage, tmp_path, [LogAppend(_records(0, 3))])
    path = segment_files(tmp_path)[0]
    size = path.stat().st_size
    assert size == HEADER_BYTES + (1 << 20)  # the default preallocation, not 300 bytes
    end = data_end(path)
    write_and_sync(WalStorage, tmp_path, [LogAppend(_records(3, 2))])  # fast path again
    assert path.stat().st_size == size
    assert path.read_bytes()[end : end + 200] == encode_records(3, _records(3, 2))
    assert reopen(WalStorage, tmp_path) == Recovered(0, _records(0, 5), {})


def test_an_append_that_does_not_fit_extends_the_zeros_on_the_worker(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.recover()
    path = segment_files(tmp_path)[0]
    index = 0
    while log.can_write_now(100):  # 100-byte records fill the 1,000 zeros on the fast path
        log.write_now(encode_records(index, _records(index, 1)), 1)
        index += 1
    assert index == 10
    assert path.stat().st_size == HEADER_BYTES + 1000  # the fast path never grows the file
    assert not log.can_write_now(100)  # so WalStorage queues it for a worker round ...
    log.append([(encode_records(index, _records(index, 1)), 1)])  # ... which extends first
    end = HEADER_BYTES + 1100
    assert path.stat().st_size == end + 1000  # a chunk of zeros past the append
    assert not path.read_bytes()[end:].strip(b"\x00")
    assert log.can_write_now(100)
    log.close()
    assert _recover(tmp_path) == (0, list(_records(0, 11)))


def test_zeros_stop_at_the_segment_limit_and_its_last_append_grows_the_file(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path, segment_bytes=700, preallocate=400)
    log.recover()
    for index in range(15):
        log.append([(encode_records(index, _records(index, 1)), 1)])
    log.close()
    files = segment_files(tmp_path)
    sizes = [p.stat().st_size for p in files]
    # 100-byte records after a 28-byte header: the 7th reaches 728 > 700, so it rolls
    assert sizes[:2] == [HEADER_BYTES + 700] * 2  # zeros only to 700, the last append past
    assert [data_end(p) for p in files[:2]] == sizes[:2]
    assert sizes[2] == HEADER_BYTES + 400  # the last one: a 100-byte record, its first zeros
    assert _recover(tmp_path) == (0, list(_records(0, 15)))


@pytest.mark.parametrize("cut_at", [1, 4, 7])
def test_truncated_records_never_come_back(tmp_path: Path, cut_at: int) -> None:
    """Cut records followed by shorter new ones: the old bytes past the new end would parse
    as records if the cut had left them (the indexes would even match)."""
    factory = _storage(segment_bytes=1 << 16, preallocate_bytes=250)
    write_and_sync(factory, tmp_path, [LogAppend((r,)) for r in _records(0, 8)])
    write_and_sync(factory, tmp_path, [LogTruncate(cut_at), LogAppend((b"short",))])
    path = segment_files(tmp_path)[0]
    # after the new record only zeros: the cut records' bytes are gone
    assert data_end(path) == HEADER_BYTES + 100 * cut_at + RECORD_HEAD_BYTES + len(b"short")
    expected = (*_records(0, cut_at), b"short")
    assert reopen(factory, tmp_path) == Recovered(0, expected, {})
    write_and_sync(factory, tmp_path, [LogAppend((b"more",))])
    assert reopen(factory, tmp_path).records == (*expected, b"more")


def test_a_segment_written_without_preallocation_recovers_and_grows_zeros(
    tmp_path: Path,
) -> None:
    old_style = _storage(segment_bytes=1 << 16, preallocate_bytes=0)
    write_and_sync(old_style, tmp_path, [LogAppend(_records(0, 4))])
    path = segment_files(tmp_path)[0]
    assert path.stat().st_size == HEADER_BYTES + 400  # a growing file: no zeros at all
    write_and_sync(WalStorage, tmp_path, [LogAppend(_records(4, 2))])
    assert path.stat().st_size == HEADER_BYTES + 600 + (1 << 20)  # extended before the append
    assert reopen(WalStorage, tmp_path) == Recovered(0, _records(0, 6), {})
    assert reopen(old_style, tmp_path) == Recovered(0, _records(0, 6), {})


def _zeros_in_a_full_segment(directory: Path) -> Path:
    """A full segment ending in zeros: written with big segments, then reopened with a
    smaller ``segment_bytes`` (a changed setting) so the next append rolls over."""
    write_and_sync(WalStorage, directory, [LogAppend(_records(0, 3))])
    write_and_sync(_storage(segment_bytes=200), directory, [LogAppend(_records(3, 2))])
    first, second = segment_files(directory)
    assert first.stat().st_size == HEADER_BYTES + (1 << 20)
    assert data_end(first) == HEADER_BYTES + 300
    assert second.name.endswith(f"{3:016x}.wal")
    return first


def test_zeros_end_the_data_of_a_segment_that_is_not_the_last(tmp_path: Path) -> None:
    _zeros_in_a_full_segment(tmp_path)
    assert reopen(WalStorage, tmp_path) == Recovered(0, _records(0, 5), {})


def test_non_zero_bytes_after_the_data_of_a_full_segment_are_corruption(tmp_path: Path) -> None:
    first = _zeros_in_a_full_segment(tmp_path)
    raw = bytearray(first.read_bytes())
    end = HEADER_BYTES + 300
    raw[end + 5000] = 1  # one stray byte deep in the zeros
    first.write_bytes(bytes(raw))
    with pytest.raises(CorruptStorage, match=rf"{first}: offset {end}: record checksum"):
        reopen(WalStorage, tmp_path)


def test_a_flipped_bit_before_the_zeros_is_corruption_naming_file_and_offset(
    tmp_path: Path,
) -> None:
    write_and_sync(WalStorage, tmp_path, [LogAppend(_records(0, 6))])
    path = segment_files(tmp_path)[0]
    raw = bytearray(path.read_bytes())
    second = HEADER_BYTES + 100
    raw[second + RECORD_HEAD_BYTES + 3] ^= 0x10  # in the body of record 1; 2..5 are good
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptStorage, match=rf"{path}: offset {second}: record checksum"):
        reopen(WalStorage, tmp_path)


def test_a_torn_write_in_the_zeros_is_cut_and_the_zeros_come_back(tmp_path: Path) -> None:
    write_and_sync(WalStorage, tmp_path, [LogAppend(_records(0, 4))])
    path = segment_files(tmp_path)[0]
    raw = bytearray(path.read_bytes())
    end = HEADER_BYTES + 400
    torn = encode_records(4, _records(4, 2))[:150]  # one record and half of the next
    raw[end : end + 150] = torn
    path.write_bytes(bytes(raw))
    storage = WalStorage(tmp_path, on_durable=lambda t: None)
    assert storage.open().records == _records(0, 5)
    storage.abandon()
    assert storage.truncated_tail_bytes == 50  # the half record, not the zeros after it
    assert path.stat().st_size == end + 100  # cut there ...
    write_and_sync(WalStorage, tmp_path, [LogAppend((b"next",))])
    assert path.stat().st_size > 1 << 20  # ... and zero-filled again by the next append
    assert reopen(WalStorage, tmp_path).records == (*_records(0, 5), b"next")
