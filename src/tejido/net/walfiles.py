"""The files of the segmented write-ahead log (`tejido.net.wal`): formats, and the log itself.

Layout of ``DIR/wal/`` (see docs/store-disk.md for the whole data directory)::

    <seq:016x>-<first_index:016x>.wal   segment files: a header, checksummed records, zeros
    START                               the compaction point (a checked value, see below)
    TRUNCATE                            a truncation in progress (exists only briefly)
    *.tmp                               a file being written; removed at recovery

Naming segments by sequence number and first index is etcd's scheme (etcd
``server/storage/wal`` package documentation: "<seq>-<index>.wal", 64 MB segments); the
formats and the code here are our own. All integers are big-endian.

Segment header (28 bytes)::

    magic "TJWAL\\0" (6) | version (2) | seq (8) | first_index (8) | crc32 of those 24 bytes (4)

Record (16 bytes + body)::

    crc32 (4) | length (4) | index (8) | body (length bytes)

The crc (zlib's CRC-32; crc32c is not in the standard library and costs a dependency for no
gain at these sizes) covers length, index and body. Storing each record's index lets
recovery check that a segment holds exactly the indexes its name promises.

A checked value (``START``, ``TRUNCATE`` and every ``state/`` file) is ``crc32 (4) | value``
and is always replaced atomically: temporary file, fsync, rename, fsync the directory.

Rules the `SegmentLog` keeps (it runs on the storage worker thread only):

1. Appends go to the last segment. When it reaches ``segment_bytes`` the next append rolls
   over: the full segment is fsynced *before* the new one is created (header written to a
   temporary file, fsynced, renamed, directory fsynced). So only the last segment can end
   in a torn record; anywhere else a bad record is corruption.
2. Compaction to index i fsyncs the last segment (so the log stays a prefix of what was
   written), replaces ``START`` with i, then deletes every segment whose records are all
   below i. When even the last segment ends below i, a new segment starting at i is created
   first. Recovery deletes segments below ``START`` that a crash left behind.
3. Truncation at index i is redone from an intent: fsync the last segment, write
   ``TRUNCATE`` (segment, byte offset, index), cut that segment at the offset, fsync it,
   delete every later segment, fsync the directory, then delete ``TRUNCATE`` and fsync the
   directory again before anything else is written. Recovery that finds ``TRUNCATE`` redoes
   the cut, so a crash leaves the log either untruncated or truncated, never half-way.
4. Recovery reads segments in sequence order; sequence numbers and indexes must continue
   without gaps from one segment to the next. In any segment, a position from which the
   rest of the file is all zero bytes is the end of that segment's data (rule 5; a zero
   record header never verifies, since the CRC-32 of zero length and index is not zero). A
   bad record in the last segment with no good record after it is a torn tail and is cut
   off (the file is truncated there); any other damage, including non-zero bytes after the
   last good record of a segment that is not the last, raises `CorruptStorage` naming the
   file and byte offset.
5. Preallocation: the file size is not the end of the log. The last segment is kept
   zero-filled (real zero bytes, written and fsynced, not fallocate: an unwritten extent
   still costs a metadata update at its first write) ahead of its last record, so the
   fsync after an append need not commit a new file size (an ext4 journal commit). The
   logical end is kept in memory (`Segment.size`) and records are written there with
   pwrite(2); the descriptor is not ``O_APPEND``. A new segment is created with its first
   ``preallocate_bytes`` of zeros (in the temporary file, before the fsync and rename of
   rule 1). An append on the worker thread that would end within half of
   ``preallocate_bytes`` of the zeroed end first writes zeros up to ``preallocate_bytes``
   past its end and fsyncs them; zeros never go past ``segment_bytes``, so the one append
   that crosses it grows the file. `write_now` (the event loop's fast path) only writes
   inside the zeros: `can_write_now` says no when the append does not fit, so it goes
   through a worker round, which extends first. A truncation cuts the file (ftruncate) at
   the cut, zeros included, so nothing past it can be read as a record again, and then
   (``TRUNCATE`` already deleted) writes new zeros after it; a torn tail cut at recovery
   gets its zeros from the next append. etcd preallocates its segments the same way (64
   MB, and its decoder takes a zero-filled remainder as the end of the log); the code here
   is our own. Segments written without preallocation (``preallocate_bytes=0``, or older
   files) hold the same records and recover the same way: the record format and version 1
   are unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from tejido.net.storage import CorruptStorage, fsync_dir, write_all

__all__ = [
    "DEFAULT_PREALLOCATE_BYTES",
    "HEADER_BYTES",
    "RECORD_HEAD_BYTES",
    "SEGMENT_MAGIC",
    "RECOVERY_ADVICE",
    "Segment",
    "SegmentLog",
    "encode_records",
    "fsync_dir",
    "read_checked",
    "read_state",
    "segment_name",
    "state_file",
    "write_checked",
]

SEGMENT_MAGIC = b"TJWAL\x00"
VERSION = 1
_HEADER_BODY = struct.Struct(">6sHQQ")
HEADER_BYTES = _HEADER_BODY.size + 4
_CRC = struct.Struct(">I")
_LEN_INDEX = struct.Struct(">IQ")
_RECORD_HEAD = struct.Struct(">IIQ")
RECORD_HEAD_BYTES = _RECORD_HEAD.size
_INDEX = struct.Struct(">Q")
_INTENT = struct.Struct(">QQQ")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
#: Zeros kept ahead of the last record (rule 5). Writing and fsyncing 1 MiB of zeros took
#: 0.6-0.9 ms on the development machine's disk, 4 MiB 3-12 ms: the larger chunk saves
#: few rounds (one per ~3,500 300-byte appends either way is rare) for a longer stall.
DEFAULT_PREALLOCATE_BYTES = 1 << 20
#: How far past a damaged record recovery looks for a good one (in records).
_LOOKAHEAD_RECORDS = 4096

RECOVERY_ADVICE = (
    "restore this member from a peer: remove it from the cluster, wipe {dir}, "
    "add it back as a learner"
)


def _corrupt(path: Path, offset: int, problem: str, directory: Path) -> CorruptStorage:
    advice = RECOVERY_ADVICE.format(dir=directory)
    return CorruptStorage(f"{path}: offset {offset}: {problem}; {advice}")


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def encode_records(first_index: int, records: tuple[bytes, ...]) -> bytes:
    """The bytes of `records` stored at `first_index`, `first_index` + 1, ..."""
    parts: list[bytes] = []
    for n, body in enumerate(records):
        head = _LEN_INDEX.pack(len(body), first_index + n)
        parts.append(_CRC.pack(zlib.crc32(body, zlib.crc32(head))))
        parts.append(head)
        parts.append(body)
    return b"".join(parts)


def write_checked(directory: Path, name: str, value: bytes, *, sync_dir: bool = True) -> None:
    """Replace ``directory/name`` with `value` atomically (temporary file, fsync, rename)."""
    temp = directory / f"{name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, _CRC.pack(zlib.crc32(value)) + value)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, directory / name)
    if sync_dir:
        fsync_dir(directory)


def read_checked(path: Path, directory: Path) -> bytes:
    raw = path.read_bytes()
    if len(raw) < _CRC.size or _CRC.unpack_from(raw)[0] != zlib.crc32(raw[_CRC.size :]):
        raise _corrupt(path, 0, "value checksum mismatch", directory)
    return raw[_CRC.size :]


def read_state(state_dir: Path, directory: Path) -> dict[str, bytes]:
    """Every ``state/`` value by key; interrupted writes (``*.tmp``) are removed."""
    state: dict[str, bytes] = {}
    for path in sorted(state_dir.iterdir()):
        if path.name.endswith(".tmp"):
            path.unlink()  # an interrupted put: the old file (if any) is still there
            continue
        state[unquote(path.name)] = read_checked(path, directory)
    return state


def state_file(state_dir: Path, key: str) -> Path:
    """The file holding `key`: percent-encoded, dots too, so no key ends in ".tmp"."""
    return state_dir / quote(key, safe="").replace(".", "%2E")


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite(2) until all of `data` is written at `offset` (a write may be short)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _zero_from(data: bytes, pos: int) -> bool:
    """Whether every byte from `pos` to the end of `data` is zero (rule 5)."""
    return data.count(0, pos) == len(data) - pos


@dataclass(slots=True)
class Segment:
    """One segment file: its records are [first_index, first_index + count)."""

    seq: int
    first_index: int
    count: int
    #: The header and records: the logical end of the data. The file may be longer, and
    #: then only zero bytes follow (rule 5). Before recovery reads it: the file size.
    size: int
    path: Path

    @property
    def end_index(self) -> int:
        return self.first_index + self.count


def _check_record(data: bytes, pos: int, expected: int) -> tuple[str | None, bool]:
    """(problem, certain): `certain` marks damage a torn write cannot explain."""
    end = len(data)
    if end - pos < RECORD_HEAD_BYTES:
        return f"record header cut short ({end - pos} of {RECORD_HEAD_BYTES} bytes)", False
    crc, length, index = _RECORD_HEAD.unpack_from(data, pos)
    stop = pos + RECORD_HEAD_BYTES + length
    if stop > end:
        return f"record of {length} bytes runs past the end of the file", False
    if zlib.crc32(data[pos + 4 : stop]) != crc:
        return "record checksum mismatch", False
    if index != expected:
        return f"record holds index {index} where {expected} was expected", True
    return None, False


def _good_record_after(data: bytes, pos: int, expected: int) -> int | None:
    """The offset of a record that verifies somewhere after `pos`, if any.

    A later record holds one of the next ``_LOOKAHEAD_RECORDS`` indexes (damage spanning more
    records than that is not recognised). Rather than try every offset, we search with
    bytes.find for the first 7 bytes of those index fields, 256 indexes per search. A good
    record's 16-byte header is never all zero, so the search stops where the zero-filled
    rest of a preallocated file begins (there, the 7 zero bytes of indexes 0-255 would
    match at every offset).
    """
    low, high = expected, expected + _LOOKAHEAD_RECORDS
    stop = min(len(data), len(data.rstrip(b"\x00")) + RECORD_HEAD_BYTES)
    for block in range(low & ~0xFF, high, 0x100):
        prefix = _INDEX.pack(block)[:7]
        at = data.find(prefix, pos + 9, stop)  # an index field of a record after pos
        while at != -1:
            index = _INDEX.unpack_from(data, at)[0] if at + 8 <= len(data) else -1
            if low <= index < high and _check_record(data, at - 8, index)[0] is None:
                return at - 8
            at = data.find(prefix, at + 1, stop)
    return None


class SegmentLog:
    """The segment files of one data directory.

    One thread at a time changes the segments; `write_now` may run beside a `sync` (a
    pwrite(2) and an fsync of the same file may overlap), never beside anything else, and
    only inside the zeros already written (`can_write_now`, rule 5).
    """

    def __init__(
        self,
        directory: Path,
        segment_bytes: int,
        preallocate_bytes: int = DEFAULT_PREALLOCATE_BYTES,
    ) -> None:
        self.directory = directory
        self.wal_dir = directory / "wal"
        self.segment_bytes = segment_bytes
        #: Zeros kept ahead of the last record (rule 5); 0 lets the file grow per append.
        self.preallocate_bytes = preallocate_bytes
        self.segments: list[Segment] = []
        self.start_index = 0
        self._fd = -1
        #: The size of the last segment's file: [last.size, _file_bytes) is all zero bytes.
        self._file_bytes = 0
        #: Counters for tests and status: bytes cut from a torn tail at recovery (up to
        #: its last non-zero byte), segments created and deleted since open.
        self.truncated_tail_bytes = 0
        self.segments_created = 0
        self.segments_deleted = 0

    # ---------------------------------------------------------------- recovery
    def recover(self) -> tuple[int, list[bytes]]:
        """Read the log back (rule 4), leave the last segment open for appends."""
        self.wal_dir.mkdir(exist_ok=True)
        for temp in self.wal_dir.glob("*.tmp"):
            temp.unlink()
        segments = self._list_segments()
        intent_path = self.wal_dir / "TRUNCATE"
        if intent_path.exists():
            segments = self._redo_truncation(intent_path, segments)
        start_path = self.wal_dir / "START"
        start: int | None = None
        if start_path.exists():
            raw = read_checked(start_path, self.directory)
            if len(raw) != _INDEX.size:
                raise _corrupt(start_path, 0, f"{len(raw)}-byte START value", self.directory)
            (start,) = _INDEX.unpack(raw)
        if start is None:
            start = segments[0].first_index if segments else 0
        segments = self._drop_dead(segments, start)
        records = self._read_segments(segments)
        self.segments = segments
        self.start_index = start
        first_live = segments[0].first_index if segments else start
        if start > first_live:
            records = records[start - first_live :]
        if not segments or segments[-1].end_index < start:
            # a compaction past the whole log, cut short before its segment was created
            self._roll(start)
            for dead in self.segments[:-1]:
                dead.path.unlink()
                self.segments_deleted += 1
            if len(self.segments) > 1:
                del self.segments[:-1]
                fsync_dir(self.wal_dir)
        else:
            self._open_last()
        return start, records

    def _list_segments(self) -> list[Segment]:
        found: list[Segment] = []
        for path in self.wal_dir.iterdir():
            if not path.name.endswith(".wal"):
                continue
            match = _NAME.match(path.name)
            if match is None:
                raise _corrupt(path, 0, "not a segment name", self.directory)
            seq, first = int(match[1], 16), int(match[2], 16)
            found.append(Segment(seq, first, 0, path.stat().st_size, path))
        found.sort(key=lambda s: s.seq)
        for segment in found:
            self._check_header(segment)
        return found

    def _check_header(self, segment: Segment) -> None:
        with segment.path.open("rb") as f:
            head = f.read(HEADER_BYTES)
        if len(head) < HEADER_BYTES:
            raise _corrupt(segment.path, 0, "segment header cut short", self.directory)
        magic, version, seq, first = _HEADER_BODY.unpack_from(head)
        if magic != SEGMENT_MAGIC:
            raise _corrupt(segment.path, 0, "not a tejido WAL segment (bad magic)", self.directory)
        if _CRC.unpack_from(head, _HEADER_BODY.size)[0] != zlib.crc32(head[: _HEADER_BODY.size]):
            raise _corrupt(segment.path, 0, "segment header checksum mismatch", self.directory)
        if version != VERSION:
            raise _corrupt(segment.path, 0, f"unknown WAL version {version}", self.directory)
        if (seq, first) != (segment.seq, segment.first_index):
            raise _corrupt(
                segment.path,
                0,
                f"header says segment {seq} from index {first}, the name disagrees",
                self.directory,
            )

    def _redo_truncation(self, intent_path: Path, segments: list[Segment]) -> list[Segment]:
        raw = read_checked(intent_path, self.directory)
        if len(raw) != _INTENT.size:
            raise _corrupt(intent_path, 0, f"{len(raw)}-byte TRUNCATE value", self.directory)
        seq, offset, _index = _INTENT.unpack(raw)
        kept = [s for s in segments if s.seq <= seq]
        if not kept or kept[-1].seq != seq:
            raise _corrupt(intent_path, 0, f"truncation of missing segment {seq}", self.directory)
        target = kept[-1]
        if target.size < offset:
            problem = f"shorter than the truncation offset {offset} in TRUNCATE"
            raise _corrupt(target.path, target.size, problem, self.directory)
        self._cut(target, offset, [s for s in segments if s.seq > seq])
        intent_path.unlink()
        fsync_dir(self.wal_dir)
        return kept

    def _drop_dead(self, segments: list[Segment], start: int) -> list[Segment]:
        """Delete segments wholly below `start` (a compaction interrupted by a crash)."""
        if not segments:
            return segments
        live_from = 0
        for k, segment in enumerate(segments):
            if segment.first_index <= start:
                live_from = k
        if segments[0].first_index > start:
            first = segments[0]
            problem = f"the log starts at index {start} but this segment starts later"
            raise _corrupt(first.path, 0, problem, self.directory)
        for dead in segments[:live_from]:
            dead.path.unlink()
            self.segments_deleted += 1
        if live_from:
            fsync_dir(self.wal_dir)
        return segments[live_from:]

    def _read_segments(self, segments: list[Segment]) -> list[bytes]:
        records: list[bytes] = []
        for k, segment in enumerate(segments):
            if k:
                before = segments[k - 1]
                if segment.seq != before.seq + 1 or segment.first_index != before.end_index:
                    problem = (
                        f"missing segment: {before.path.name} ends at index "
                        f"{before.end_index}, next is segment {segment.seq} from index "
                        f"{segment.first_index}"
                    )
                    raise _corrupt(segment.path, 0, problem, self.directory)
            self._read_records(segment, records, last=k == len(segments) - 1)
        return records

    def _read_records(self, segment: Segment, out: list[bytes], *, last: bool) -> None:
        data = segment.path.read_bytes()
        pos, end, index = HEADER_BYTES, len(data), segment.first_index
        while pos < end:
            problem, certain = _check_record(data, pos, index)
            if problem is not None:
                if _zero_from(data, pos):
                    break  # the zero-filled rest of a preallocated segment (rule 5)
                if last and not certain and _good_record_after(data, pos, index) is None:
                    self._cut_tail(segment, pos, len(data.rstrip(b"\x00")))
                    break
                raise _corrupt(segment.path, pos, problem, self.directory)
            length = _RECORD_HEAD.unpack_from(data, pos)[1]
            body_at = pos + RECORD_HEAD_BYTES
            out.append(data[body_at : body_at + length])
            pos = body_at + length
            index += 1
        segment.count = index - segment.first_index
        segment.size = pos

    def _cut_tail(self, segment: Segment, pos: int, end: int) -> None:
        """Truncate the torn tail at `pos`; `end` is its last non-zero byte + 1 (zeros past
        it were preallocated, not torn). The next append re-extends the zeros (rule 5)."""
        fd = os.open(segment.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, pos)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.truncated_tail_bytes += end - pos

    # ---------------------------------------------------------------- writing
    def _open_last(self) -> None:
        """Open the last segment for pwrite(2) at its logical end (not O_APPEND: rule 5)."""
        self._fd = os.open(self.segments[-1].path, os.O_WRONLY)
        self._file_bytes = os.fstat(self._fd).st_size

    def _zero_target(self, end: int) -> int:
        """Where the zeros should reach for data ending at `end` (rule 5)."""
        return min(self.segment_bytes, end + self.preallocate_bytes)

    def _zero_ahead(self, end: int) -> None:
        """Before an append on the worker ending at `end`: extend the zeros if it comes
        within half a chunk of their end (rule 5). Written and fsynced here, so the fsyncs
        of later appends into them commit no new file size."""
        if not self.preallocate_bytes or end + self.preallocate_bytes // 2 <= self._file_bytes:
            return
        target = self._zero_target(end)
        if target <= self._file_bytes:
            return  # at segment_bytes already: this append grows the file, the next rolls
        _pwrite_all(self._fd, bytes(target - self._file_bytes), self._file_bytes)
        os.fsync(self._fd)
        self._file_bytes = target

    def _roll(self, first_index: int) -> None:
        """Start a new last segment at `first_index` (rule 1)."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
        seq = self.segments[-1].seq + 1 if self.segments else 1
        name = segment_name(seq, first_index)
        temp = self.wal_dir / f"{name}.tmp"
        head = _HEADER_BODY.pack(SEGMENT_MAGIC, VERSION, seq, first_index)
        zeros = 0
        if self.preallocate_bytes:  # rule 5: born zero-filled, fsynced with its header
            zeros = max(0, self._zero_target(HEADER_BYTES) - HEADER_BYTES)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, head + _CRC.pack(zlib.crc32(head)) + bytes(zeros))
            os.fsync(fd)
        finally:
            os.close(fd)
        path = self.wal_dir / name
        os.replace(temp, path)
        fsync_dir(self.wal_dir)
        self.segments.append(Segment(seq, first_index, 0, HEADER_BYTES, path))
        self.segments_created += 1
        self._open_last()

    @property
    def end_index(self) -> int:
        return self.segments[-1].end_index

    def append(self, chunks: list[tuple[bytes, int]]) -> int:
        """Write encoded appends (bytes, record count) in as few writes as rollover allows.

        An append is never split: a segment rolls over before the first append that finds
        it at or past ``segment_bytes``, so it exceeds the limit by less than one append.
        """
        written = 0
        pending: list[bytes] = []
        pending_bytes = pending_count = 0
        last = self.segments[-1]
        for data, count in chunks:
            if last.size + pending_bytes >= self.segment_bytes and last.count + pending_count:
                if pending:
                    self._zero_ahead(last.size + pending_bytes)
                    self._write(last, pending, pending_bytes, pending_count)
                    written += pending_bytes
                    pending, pending_bytes, pending_count = [], 0, 0
                self._roll(last.end_index)
                last = self.segments[-1]
            pending.append(data)
            pending_bytes += len(data)
            pending_count += count
        if pending:
            self._zero_ahead(last.size + pending_bytes)
            self._write(last, pending, pending_bytes, pending_count)
            written += pending_bytes
        return written

    def can_write_now(self, size: int) -> bool:
        """Whether an append of `size` bytes may go straight into the last segment: it has
        not reached ``segment_bytes`` and, with preallocation, the append fits in the zeros
        (rule 5), so the event loop never extends the file."""
        if self._fd < 0:
            return False
        end = self.segments[-1].size
        if end >= self.segment_bytes:
            return False
        return not self.preallocate_bytes or end + size <= self._file_bytes

    def write_now(self, data: bytes, count: int) -> None:
        """Append encoded records to the last segment (no rollover; see `can_write_now`)."""
        self._write(self.segments[-1], [data], len(data), count)

    def _write(self, segment: Segment, parts: list[bytes], size: int, count: int) -> None:
        """Write at the logical end (rule 5), which may lie before the end of the file."""
        _pwrite_all(self._fd, parts[0] if len(parts) == 1 else b"".join(parts), segment.size)
        segment.size += size
        segment.count += count
        self._file_bytes = max(self._file_bytes, segment.size)

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, index: int) -> None:
        """Remove records >= `index` (rule 3)."""
        if index >= self.end_index:
            return
        k = max(n for n, s in enumerate(self.segments) if s.first_index <= index)
        target = self.segments[k]
        offset = self._offset_of(target, index)
        self.sync()
        write_checked(self.wal_dir, "TRUNCATE", _INTENT.pack(target.seq, offset, index))
        later = self.segments[k + 1 :]
        os.close(self._fd)
        self._fd = -1
        self._cut(target, offset, later)
        (self.wal_dir / "TRUNCATE").unlink()
        fsync_dir(self.wal_dir)
        del self.segments[k + 1 :]
        target.size = offset
        target.count = index - target.first_index
        self._open_last()
        self._zero_ahead(offset)  # the cut took the zeros too: extend them again (rule 5)

    def _offset_of(self, segment: Segment, index: int) -> int:
        with segment.path.open("rb") as f:
            pos, at = HEADER_BYTES, segment.first_index
            while at < index:
                f.seek(pos + 4)
                (length,) = struct.unpack(">I", f.read(4))
                pos += RECORD_HEAD_BYTES + length
                at += 1
        return pos

    def _cut(self, target: Segment, offset: int, later: list[Segment]) -> None:
        """Truncate `target` at `offset` (its zeros too: `truncate` writes new ones, rule 5)
        and delete the `later` segments."""
        fd = os.open(target.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        for segment in later:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
            self.segments_deleted += 1
        fsync_dir(self.wal_dir)

    def compact(self, index: int) -> None:
        """Forget records below `index`, deleting whole segments (rule 2)."""
        self.sync()
        write_checked(self.wal_dir, "START", _INDEX.pack(index))
        self.start_index = index
        if self.end_index < index:
            self._roll(index)
        dead = 0
        while dead + 1 < len(self.segments) and self.segments[dead + 1].first_index <= index:
            dead += 1
        for segment in self.segments[:dead]:
            segment.path.unlink()
            self.segments_deleted += 1
        if dead:
            del self.segments[:dead]
            fsync_dir(self.wal_dir)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
