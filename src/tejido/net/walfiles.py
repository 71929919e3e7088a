"""The files of the segmented write-ahead log (`tejido.net.wal`): formats, and the log itself.

Layout of ``DIR/wal/`` (see docs/store-disk.md for the whole data directory)::

    <seq:016x>-<first_index:016x>.wal   segment files: a header, then checksummed records
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
   without gaps from one segment to the next. A bad record in the last segment with no
   good record after it is a torn tail and is cut off; any other damage raises
   `CorruptStorage` naming the file and byte offset.
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


@dataclass(slots=True)
class Segment:
    """One segment file: its records are [first_index, first_index + count)."""

    seq: int
    first_index: int
    count: int
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
    bytes.find for the first 7 bytes of those index fields, 256 indexes per search.
    """
    low, high = expected, expected + _LOOKAHEAD_RECORDS
    for block in range(low & ~0xFF, high, 0x100):
        prefix = _INDEX.pack(block)[:7]
        at = data.find(prefix, pos + 9)  # an index field of a record starting after pos
        while at != -1:
            index = _INDEX.unpack_from(data, at)[0] if at + 8 <= len(data) else -1
            if low <= index < high and _check_record(data, at - 8, index)[0] is None:
                return at - 8
            at = data.find(prefix, at + 1)
    return None


class SegmentLog:
    """The segment files of one data directory.

    One thread at a time changes the segments; `write_now` may run beside a `sync` (a
    write(2) and an fsync of the same file may overlap), never beside anything else.
    """

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory = directory
        self.wal_dir = directory / "wal"
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.start_index = 0
        self._fd = -1
        #: Counters for tests and status: bytes cut from a torn tail at recovery,
        #: segments created and deleted since open.
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
                if last and not certain and self._is_torn_tail(data, pos, index):
                    self._cut_tail(segment, pos, end)
                    break
                raise _corrupt(segment.path, pos, problem, self.directory)
            length = _RECORD_HEAD.unpack_from(data, pos)[1]
            body_at = pos + RECORD_HEAD_BYTES
            out.append(data[body_at : body_at + length])
            pos = body_at + length
            index += 1
        segment.count = index - segment.first_index
        segment.size = pos

    @staticmethod
    def _is_torn_tail(data: bytes, pos: int, index: int) -> bool:
        if not data[pos:].strip(b"\x00"):
            return True  # only zeroes from here on (unwritten blocks)
        return _good_record_after(data, pos, index) is None

    def _cut_tail(self, segment: Segment, pos: int, end: int) -> None:
        fd = os.open(segment.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, pos)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.truncated_tail_bytes += end - pos

    # ---------------------------------------------------------------- writing
    def _open_last(self) -> None:
        self._fd = os.open(self.segments[-1].path, os.O_WRONLY | os.O_APPEND)

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
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, head + _CRC.pack(zlib.crc32(head)))
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
                    self._write(last, pending, pending_bytes, pending_count)
                    written += pending_bytes
                    pending, pending_bytes, pending_count = [], 0, 0
                self._roll(last.end_index)
                last = self.segments[-1]
            pending.append(data)
            pending_bytes += len(data)
            pending_count += count
        if pending:
            self._write(last, pending, pending_bytes, pending_count)
            written += pending_bytes
        return written

    def can_write_now(self) -> bool:
        """Whether an append may go straight into the last segment (it has room)."""
        return self._fd >= 0 and self.segments[-1].size < self.segment_bytes

    def write_now(self, data: bytes, count: int) -> None:
        """Append encoded records to the last segment (no rollover; see `can_write_now`)."""
        self._write(self.segments[-1], [data], len(data), count)

    def _write(self, segment: Segment, parts: list[bytes], size: int, count: int) -> None:
        write_all(self._fd, parts[0] if len(parts) == 1 else b"".join(parts))
        segment.size += size
        segment.count += count

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
