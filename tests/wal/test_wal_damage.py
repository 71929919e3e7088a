"""Damaged WAL files: a torn tail is cut (at every byte offset of the last append), every
other change of a bit is refused with the file's name; nothing is ever silently wrong."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wal_fixtures import reopen, segment_files, wal_small, write_and_sync

from tejido.core.storage import LogAppend, LogCompact, Put, Recovered
from tejido.net.storage import CorruptStorage
from tejido.net.wal import WalStorage
from tejido.net.walfiles import HEADER_BYTES, RECORD_HEAD_BYTES

_LAST_APPEND = (b"tail-one", b"tail-two", b"tail-three")
_OPS = [
    *(LogAppend((f"record {i}".encode() * 3,)) for i in range(14)),
    LogCompact(2),
    Put("hard", b"term=4 vote=2"),
    Put("snapshot", bytes(range(256)) * 4),
    LogAppend(_LAST_APPEND),
]


def _last_append_offsets(path: Path) -> list[int]:
    """Where each record of the last append starts in the last segment, and its end."""
    size = path.stat().st_size
    lengths = [RECORD_HEAD_BYTES + len(r) for r in _LAST_APPEND]
    start = size - sum(lengths)
    offsets = [start]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    return offsets


def test_a_torn_last_append_keeps_exactly_its_whole_records(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _OPS)
    whole = reopen(wal_small, tmp_path)
    before = whole.records[: -len(_LAST_APPEND)]
    last = segment_files(tmp_path)[-1]
    data = last.read_bytes()
    offsets = _last_append_offsets(last)
    assert offsets[-1] == len(data)
    for cut in range(offsets[0], len(data)):
        last.write_bytes(data[:cut])
        recovered = reopen(wal_small, tmp_path)
        complete = sum(1 for end in offsets[1:] if end <= cut)
        assert recovered.records == before + _LAST_APPEND[:complete], cut
        assert recovered.state == whole.state
        assert last.stat().st_size == offsets[complete]  # the torn bytes were cut away


def test_the_log_continues_after_a_torn_tail_is_cut(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _OPS)
    last = segment_files(tmp_path)[-1]
    last.write_bytes(last.read_bytes()[:-5])
    recovered = reopen(wal_small, tmp_path)
    assert recovered.records[-1] == b"tail-two"
    write_and_sync(wal_small, tmp_path, [LogAppend((b"after",))])
    assert reopen(wal_small, tmp_path).records == (*recovered.records, b"after")


def test_zeroes_after_the_last_record_are_a_torn_tail(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _OPS)
    last = segment_files(tmp_path)[-1]
    size = last.stat().st_size
    last.write_bytes(last.read_bytes() + b"\x00" * 4096)  # blocks allocated, never written
    assert reopen(wal_small, tmp_path).records[-1] == b"tail-three"
    assert last.stat().st_size == size


def test_a_torn_record_in_a_full_segment_is_corruption(tmp_path: Path) -> None:
    write_and_sync(wal_small, tmp_path, _OPS)
    second = segment_files(tmp_path)[1]  # fsynced before the next one was created
    size = second.stat().st_size
    second.write_bytes(second.read_bytes()[:-3])
    with pytest.raises(CorruptStorage, match=rf"{second}: offset \d+: record of \d+ bytes runs"):
        reopen(wal_small, tmp_path)
    assert size - 3 == second.stat().st_size  # refused, not repaired


# ---------------------------------------------------------------- bit flips
@pytest.fixture(scope="module")
def template() -> Iterator[tuple[Path, Recovered]]:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        write_and_sync(wal_small, directory, _OPS)
        yield directory, reopen(wal_small, directory)


def _damageable(directory: Path) -> list[Path]:
    files = [*segment_files(directory), directory / "wal" / "START"]
    return files + sorted((directory / "state").iterdir())


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_flipped_bit_is_refused_or_cut_with_the_tail(
    template: tuple[Path, Recovered], data: st.DataObject
) -> None:
    source, whole = template
    files = [p.relative_to(source) for p in _damageable(source)]
    last_segment = segment_files(source)[-1].relative_to(source)
    last_record_at = _last_append_offsets(source / last_segment)[-2]
    chosen = data.draw(st.sampled_from(files), label="file")
    size = (source / chosen).stat().st_size
    offset = data.draw(st.integers(0, size - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name) / "node"
        shutil.copytree(source, directory)
        path = directory / chosen
        raw = bytearray(path.read_bytes())
        raw[offset] ^= 1 << bit
        path.write_bytes(bytes(raw))
        error: str | None = None
        try:
            recovered = reopen(wal_small, directory)
        except CorruptStorage as exc:
            error = str(exc)
    if error is not None:
        assert error.startswith(f"{path}: offset "), error
        assert "restore this member from a peer" in error
        return
    # not refused: only a flip inside the last record may do that, and it loses only it
    assert chosen == last_segment, (chosen, offset)
    assert offset >= last_record_at, (chosen, offset)
    assert recovered == Recovered(whole.first_index, whole.records[:-1], whole.state)


@pytest.mark.parametrize("garbled_records", [1, 40, 300, 1000])
def test_damage_over_many_records_before_good_ones_is_corruption(
    tmp_path: Path, garbled_records: int
) -> None:
    bodies = tuple(b"%05d" % i for i in range(1200))  # 21 bytes per record
    write_and_sync(WalStorage, tmp_path, [LogAppend(bodies)])
    path = segment_files(tmp_path)[0]
    data = bytearray(path.read_bytes())
    start = HEADER_BYTES + 10 * 21
    garbage = random.Random(garbled_records).randbytes(garbled_records * 21)
    data[start : start + len(garbage)] = garbage  # a garbled sector run; good records follow
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage, match=rf"{path}: offset {start}: record"):
        reopen(WalStorage, tmp_path)
