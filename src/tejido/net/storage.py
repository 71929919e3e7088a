"""The storage contract (`tejido.core.storage`) on a real disk, with fsync and group commit.

A node's data directory holds::

    LOCK              flock()ed while a node uses the directory (two nodes cannot share it)
    log               the log: a magic header, then checksummed records, append-only
    state/KEY         one file per `Put` key (the key percent-encoded), replaced atomically

Log record layout (little room for cleverness, by design)::

    crc32 (4 bytes, big-endian) | length (4) | kind (1) | body (length bytes)

The crc covers length, kind and body. Kinds: ``A`` one appended log record (a `LogAppend`
of n records writes n of these in one write(2)), ``T`` a `LogTruncate` (body: the index as
8 bytes), ``C`` a `LogCompact` (same). Recovery replays them in order.

Rules:

1. Operations apply in order: log records are written (to the page cache) as soon as the
   protocol emits them; a `Put` is remembered and written when the next sync runs. A key's
   file is replaced atomically: write a temporary file, fsync it, rename it over the old
   one, fsync the directory. So a crash leaves each key at its old or its newest value
   (a prefix of its puts, as the contract allows).
2. `Durable(token)` is delivered only after an fsync of the log (and of every dirty key)
   that started after the operations before `sync()` were written. fsync runs on a worker
   thread, never on the event loop. Group commit: while one fsync runs, every sync
   requested meanwhile waits for the next one, which then covers all of them at once.
3. Recovery reads the log front to back. A bad record (short header, frame past the end of
   the file, checksum mismatch) with no good record anywhere after it is a torn tail from
   a crash mid-write: it and everything after it is cut off (the file is truncated there).
   A bad record followed by a record that verifies is corruption of data that may have
   been acknowledged, which the node must not paper over: `CorruptStorage` names the file
   and the byte offset. (The scan for a later good record makes a damaged length field
   look like corruption, not like a tail, so a bit flip never silently drops the rest.)
4. A failed fsync is fatal (the kernel may have dropped the dirty pages, so retrying would
   lie): ``on_error`` is called and the node should stop.

Limits (the Store issue replaces this with segmented WAL files): one log file that only
shrinks when a node opens it (it is rewritten compactly when dead records dominate), every
record replayed into memory at start, one file per key (fine for the handful of keys
protocols keep, e.g. a Raft term and vote; not a key-value store).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, unquote

from tejido.core.errors import LocalProtocolError, TejidoError
from tejido.core.storage import LogAppend, LogCompact, LogTruncate, Put, Recovered, StorageOp

__all__ = [
    "CorruptStorage",
    "DiskStorage",
    "StorageLocked",
    "fsync_dir",
    "lock_directory",
    "write_all",
]

MAGIC = b"TJLOG001"
_HEAD = struct.Struct(">IIc")
_INDEX = struct.Struct(">Q")
_APPEND, _TRUNCATE, _COMPACT = b"A", b"T", b"C"
_STATE_CRC = struct.Struct(">I")
#: Rewrite the log at open when it is this many times larger than its live records.
_REWRITE_RATIO = 4
_REWRITE_MIN_BYTES = 1 << 20


class CorruptStorage(TejidoError):
    """The data directory holds bytes that fail their checksum before the end of a file."""


class StorageLocked(TejidoError):
    """Another process holds this data directory."""


def _record(kind: bytes, body: bytes) -> bytes:
    head = struct.pack(">Ic", len(body), kind)
    return struct.pack(">I", zlib.crc32(head + body)) + head + body


def write_all(fd: int, data: bytes) -> None:
    """write(2) until all of `data` is written (a write may be short)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: Path) -> None:
    """fsync a directory, so that renames and unlinks in it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_directory(directory: Path) -> int:
    """flock() ``directory/LOCK`` for this process; returns the descriptor holding the lock
    (closing it releases the lock). Raises `StorageLocked` when another node holds it."""
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageLocked(
            f"data directory {str(directory)!r} is in use by another node"
        ) from None
    return fd


class DiskStorage:
    """One node's storage: see the module docstring for the layout and the rules."""

    def __init__(
        self,
        directory: str | Path,
        *,
        on_durable: Callable[[int], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.log_path = self.directory / "log"
        self.state_dir = self.directory / "state"
        self.on_durable = on_durable
        self.on_error = on_error
        self._fd = -1
        self._lock_fd = -1
        self._first_index = 0
        self._next_index = 0
        self._dirty: dict[str, bytes | None] = {}
        self._waiting: list[int] = []
        self._in_flight = False
        self._closed = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tejido-fsync")
        #: Counters: fsync rounds run, sync tokens answered, log bytes written.
        self.fsyncs = 0
        self.tokens_durable = 0
        self.bytes_written = 0
        self.truncated_tail_bytes = 0

    # ------------------------------------------------------------------ opening
    def open(self) -> Recovered:
        """Lock the directory, recover what it holds (cutting a torn tail), open the log."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        self._lock()
        first, records, good_end, size = self._read_log()
        state = self._read_state()
        live = sum(len(r) + _HEAD.size for r in records)
        if good_end < size:
            self.truncated_tail_bytes = size - good_end
        if size > _REWRITE_MIN_BYTES and size > _REWRITE_RATIO * live:
            self._rewrite(first, records)
        else:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT, 0o644)
            if good_end == 0:
                os.ftruncate(fd, 0)
                write_all(fd, MAGIC)
                good_end = len(MAGIC)
            elif good_end < size:
                os.ftruncate(fd, good_end)
            os.fsync(fd)
            os.lseek(fd, good_end, os.SEEK_SET)
            self._fd = fd
            fsync_dir(self.directory)
        self._first_index = first
        self._next_index = first + len(records)
        return Recovered(first, tuple(records), state)

    def _lock(self) -> None:
        self._lock_fd = lock_directory(self.directory)

    def _read_log(self) -> tuple[int, list[bytes], int, int]:
        """(first index, records, end of the last good record, file size)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return 0, [], 0, 0
        if len(data) < len(MAGIC):
            if MAGIC.startswith(data):
                return 0, [], 0, len(data)  # torn while being created
            raise CorruptStorage(f"{self.log_path}: offset 0: not a tejido log (bad magic)")
        if not data.startswith(MAGIC):
            raise CorruptStorage(f"{self.log_path}: offset 0: not a tejido log (bad magic)")
        first = 0
        records: list[bytes] = []
        pos, end = len(MAGIC), len(data)
        while pos < end:
            problem = self._check_record(data, pos)
            if problem is not None:
                if self._is_torn_tail(data, pos):
                    return first, records, pos, end
                raise CorruptStorage(f"{self.log_path}: offset {pos}: {problem}")
            _, length, kind = _HEAD.unpack_from(data, pos)
            body = data[pos + _HEAD.size : pos + _HEAD.size + length]
            pos += _HEAD.size + length
            if kind == _APPEND:
                records.append(body)
                continue
            (index,) = _INDEX.unpack(body)
            if kind == _TRUNCATE:
                del records[max(0, index - first) :]
            else:
                del records[: max(0, min(index - first, len(records)))]
                first = index
        return first, records, pos, end

    @staticmethod
    def _check_record(data: bytes, pos: int) -> str | None:
        end = len(data)
        if end - pos < _HEAD.size:
            return f"record header cut short ({end - pos} of {_HEAD.size} bytes)"
        crc, length, kind = _HEAD.unpack_from(data, pos)
        stop = pos + _HEAD.size + length
        if stop > end:
            return f"record of {length} bytes runs past the end of the file"
        if zlib.crc32(data[pos + 4 : stop]) != crc:
            return "record checksum mismatch"
        if kind not in (_APPEND, _TRUNCATE, _COMPACT):
            return f"unknown record kind {kind!r}"
        if kind != _APPEND and length != _INDEX.size:
            return f"{kind!r} record with a {length}-byte body"
        return None

    @classmethod
    def _is_torn_tail(cls, data: bytes, pos: int) -> bool:
        """A bad record at `pos` is a torn tail unless a good record follows it somewhere."""
        end = len(data)
        if not data[pos:].strip(b"\x00"):
            return True  # only zeroes from here on (preallocated or unwritten blocks)
        for offset in range(pos + 1, end - _HEAD.size + 1):
            if data[offset + 8 : offset + 9] in (_APPEND, _TRUNCATE, _COMPACT) and (
                cls._check_record(data, offset) is None
            ):
                return False
        return True

    def _read_state(self) -> dict[str, bytes]:
        state: dict[str, bytes] = {}
        for path in sorted(self.state_dir.iterdir()):
            if path.name.startswith(".tmp-"):
                path.unlink()  # an interrupted put: the old file (if any) is still there
                continue
            raw = path.read_bytes()
            if len(raw) < _STATE_CRC.size or (
                _STATE_CRC.unpack_from(raw)[0] != zlib.crc32(raw[_STATE_CRC.size :])
            ):
                raise CorruptStorage(f"{path}: offset 0: state value checksum mismatch")
            state[unquote(path.name)] = raw[_STATE_CRC.size :]
        return state

    def _rewrite(self, first: int, records: list[bytes]) -> None:
        temp = self.directory / "log.rewrite"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        chunks = [MAGIC, _record(_COMPACT, _INDEX.pack(first))]
        chunks.extend(_record(_APPEND, r) for r in records)
        write_all(fd, b"".join(chunks))
        os.fsync(fd)
        os.replace(temp, self.log_path)
        fsync_dir(self.directory)
        self._fd = fd

    # ------------------------------------------------------------------ applying
    def apply(self, op: StorageOp) -> None:
        """Apply one operation (validated like `StorageState.apply`); see rule 1."""
        if self._fd < 0:
            raise LocalProtocolError("storage used before open() or after close()")
        match op:
            case LogAppend(records):
                data = b"".join(_record(_APPEND, r) for r in records)
                self._next_index += len(records)
            case LogTruncate(from_index):
                if not self._first_index <= from_index <= self._next_index:
                    raise LocalProtocolError(
                        f"LogTruncate(from_index={from_index}) outside the log "
                        f"[{self._first_index}, {self._next_index})"
                    )
                data = _record(_TRUNCATE, _INDEX.pack(from_index))
                self._next_index = from_index
            case LogCompact(before_index):
                if before_index < self._first_index:
                    raise LocalProtocolError(
                        f"LogCompact(before_index={before_index}) moves the log start "
                        f"backwards from {self._first_index}"
                    )
                data = _record(_COMPACT, _INDEX.pack(before_index))
                self._first_index = before_index
                self._next_index = max(self._next_index, before_index)
            case Put(key, value):
                self._dirty[key] = value
                return
        write_all(self._fd, data)
        self.bytes_written += len(data)

    # ------------------------------------------------------------------ syncing
    def request_sync(self, token: int) -> None:
        """Deliver ``on_durable(token)`` once everything applied so far is on disk (rule 2)."""
        self._waiting.append(token)
        if not self._in_flight and not self._closed:  # never after a failed fsync (rule 4)
            self._start_round()

    def _start_round(self) -> None:
        tokens, self._waiting = self._waiting, []
        dirty, self._dirty = self._dirty, {}
        self._in_flight = True
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._sync_job, self._fd, dirty)
        future.add_done_callback(lambda f: self._round_done(f, tokens))

    def _sync_job(self, fd: int, dirty: dict[str, bytes | None]) -> None:
        """Runs on the fsync thread: it touches only `fd`, `dirty` and the state directory."""
        for key, value in dirty.items():
            path = self.state_dir / quote(key, safe="")
            if value is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            temp = self.state_dir / f".tmp-{path.name}"
            tfd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(tfd, _STATE_CRC.pack(zlib.crc32(value)) + value)
                os.fsync(tfd)
            finally:
                os.close(tfd)
            os.replace(temp, path)
        if dirty:
            fsync_dir(self.state_dir)
        os.fsync(fd)

    def _round_done(self, future: asyncio.Future[None], tokens: list[int]) -> None:
        self._in_flight = False
        exc = None if future.cancelled() else future.exception()
        if future.cancelled() or exc is not None:
            self._closed = True
            if self.on_error is not None:
                self.on_error(exc or asyncio.CancelledError("fsync cancelled"))
            return
        self.fsyncs += 1
        self.tokens_durable += len(tokens)
        if self._waiting and not self._closed:
            self._start_round()
        for token in tokens:
            self.on_durable(token)

    @property
    def syncing(self) -> bool:
        return self._in_flight

    # ------------------------------------------------------------------ closing
    async def close(self) -> None:
        """Make everything applied durable (no `on_durable` calls), then release the files."""
        if self._fd < 0:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        dirty, self._dirty = self._dirty, {}
        await loop.run_in_executor(self._executor, self._sync_job, self._fd, dirty)
        self.abandon()

    def abandon(self) -> None:
        """Release the files without syncing (what a crash does; tests use it)."""
        self._closed = True
        self._executor.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
