"""`WalStorage`: the storage contract (`tejido.core.storage`) on a segmented write-ahead log.

The successor of `tejido.net.storage.DiskStorage` for the store, with the same constructor
and methods (plus ``segment_bytes`` and ``flush_bytes``), so it drops into `NodeHost`.
A data directory holds::

    LOCK          flock()ed while a node uses the directory (`StorageLocked` otherwise)
    wal/          the log in segment files, see `tejido.net.walfiles` for the formats
    state/KEY     one file per `Put` key (snapshots too), replaced atomically

Rules:

1. `apply` validates an operation like `StorageState.apply` and encodes log records at
   once. In the common case (the last segment has room, nothing is queued, and the running
   round, if any, only fsyncs) a `LogAppend` is written (one write(2) into the page cache)
   right away on the event loop, as `DiskStorage` does, so the write overlaps the running
   fsync. Otherwise it is queued, and so is every later log operation until the round that
   takes the queue has finished: truncations, compactions and rollover (which fsync, rename
   and delete files) run only on the worker thread, and the event loop never writes while
   they run. A `Put`
   is remembered per key (a later put of the same key replaces it; `None` deletes).
2. Group commit: ``request_sync(token)`` starts a round on the worker thread unless one is
   running; a round takes every queued operation, writes the queued log records (one
   write(2) for all of them, split only at segment rollover), carries out truncations and
   compactions in order, replaces the dirty keys (temporary file, fsync, rename, one fsync
   of ``state/``), then fsyncs the last segment. Tokens requested while a round runs wait
   for the next round, which covers all of them with one fsync. So `Durable(token)` comes
   only after an fsync that started after everything applied before the sync was written.
   Tokens are delivered in order.
   b. Inline rounds (``inline_sync``, off by default; True, or a predicate asked when
      such a round could start; the store turns it on for a follower and gives its
      leader a predicate, `tejido.store.node` rule 10): when a round needs only the fsync
      (everything was written at once), the disk has been idle for at least as long as
      the last fsync took and the option allows it, the fsync runs on the event loop and
      the tokens are delivered in the next loop callback. An idle
      follower has nothing to do during that fsync but wait for it, and the two thread
      hand-offs (start the worker, wake the loop when it is done) cost it more than the
      blocked loop: on a c=1 put trace they put 150-400 us between the append and the
      acknowledgement. Under load (a sync requested soon after the previous round)
      rounds go to the worker as before, so the loop keeps reading while the disk works.
3. A round also starts without a token when more than ``flush_bytes`` of records are
   queued, so memory stays bounded for a protocol that rarely syncs.
4. A failed write or fsync is fatal (after a failed fsync the kernel may have dropped the
   dirty pages, so retrying would lie): ``on_error`` is called, no later round runs, and
   the node should stop.
5. Recovery (`open`): see `tejido.net.walfiles` rule 4. A torn tail is cut; any other
   damage raises `CorruptStorage` with the file, the byte offset and what to do (restore
   the member from a peer).

Limits: every live record is read into memory at open (the `Recovered` contract); one
file per key, so a put costs two fsyncs (the file and ``state/``); a write torn in the
middle by the disk (later pages on disk, earlier ones not) looks like corruption, not like a
torn tail, and stops the node rather than risk dropping acknowledged data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tejido.core.errors import LocalProtocolError, TejidoError
from tejido.core.storage import LogAppend, LogCompact, LogTruncate, Put, Recovered, StorageOp
from tejido.net.storage import CorruptStorage, StorageLocked, lock_directory
from tejido.net.walfiles import (
    SegmentLog,
    encode_records,
    fsync_dir,
    read_state,
    state_file,
    write_checked,
)

__all__ = [
    "DEFAULT_FLUSH_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "CorruptStorage",
    "ForeignStorage",
    "StorageLocked",
    "WalStorage",
]

DEFAULT_SEGMENT_BYTES = 64 << 20
DEFAULT_FLUSH_BYTES = 16 << 20


class ForeignStorage(TejidoError):
    """The data directory holds another storage format (e.g. a `DiskStorage` log)."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Encoded records of one `LogAppend`."""

    data: bytes
    count: int


_Queued = _Chunk | LogTruncate | LogCompact


class WalStorage:
    """One node's storage: see the module docstring for the layout and the rules."""

    def __init__(
        self,
        directory: str | Path,
        *,
        on_durable: Callable[[int], None],
        on_error: Callable[[BaseException], None] | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        flush_bytes: int = DEFAULT_FLUSH_BYTES,
    ) -> None:
        if segment_bytes < 1:
            raise LocalProtocolError(f"segment_bytes must be positive, not {segment_bytes}")
        self.directory = Path(directory)
        self.state_dir = self.directory / "state"
        self.on_durable = on_durable
        self.on_error = on_error
        self.flush_bytes = flush_bytes
        self.log = SegmentLog(self.directory, segment_bytes)
        self._lock_fd = -1
        self._open = False
        self._first_index = 0
        self._next_index = 0
        self._queued: list[_Queued] = []
        self._queued_bytes = 0
        self._dirty: dict[str, bytes | None] = {}
        self._waiting: list[int] = []
        self._in_flight = False
        #: The running round writes, rolls, truncates or compacts segments (not only fsync).
        self._exclusive = False
        self._closed = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tejido-wal")
        #: Rule 2b: fsync on the event loop when idle (set by the owner): False, True, or a
        #: predicate asked at the start of each round that could run inline.
        self.inline_sync: bool | Callable[[], bool] = False
        #: When the last round ended and how long its fsync took (`clock` seconds).
        self.clock: Callable[[], float] = time.monotonic
        self._idle_since = 0.0
        self._last_fsync_s = 0.0
        #: Counters: fsync rounds run, sync tokens answered, log bytes written.
        self.fsyncs = 0
        self.tokens_durable = 0
        self.bytes_written = 0

    @property
    def truncated_tail_bytes(self) -> int:
        """Bytes of a torn tail cut off when the directory was opened."""
        return self.log.truncated_tail_bytes

    # ------------------------------------------------------------------ opening
    def open(self) -> Recovered:
        """Lock the directory, recover what it holds (cutting a torn tail), open the log."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if (self.directory / "log").exists():
                raise ForeignStorage(
                    f"{self.directory / 'log'}: a DiskStorage log; WalStorage does not "
                    "convert it (start this member on an empty directory)"
                )
            self.state_dir.mkdir(exist_ok=True)
            state = read_state(self.state_dir, self.directory)
            start, records = self.log.recover()
        except BaseException:
            self.log.close()
            self._unlock()
            raise
        self._first_index = start
        self._next_index = start + len(records)
        self._open = True
        return Recovered(start, tuple(records), state)

    def _lock(self) -> None:
        self._lock_fd = lock_directory(self.directory)

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # ------------------------------------------------------------------ applying
    def apply(self, op: StorageOp) -> None:
        """Apply one operation (validated like `StorageState.apply`); see rule 1."""
        if not self._open:
            raise LocalProtocolError("storage used before open() or after close()")
        match op:
            case LogAppend(records):
                if not records:
                    return
                data = encode_records(self._next_index, records)
                self._next_index += len(records)
                if not self._queued and not self._exclusive and self.log.can_write_now():
                    self.log.write_now(data, len(records))  # rule 1: the common case
                    self.bytes_written += len(data)
                    return
                self._queued.append(_Chunk(data, len(records)))
                self._queued_bytes += len(data)
                if self._queued_bytes > self.flush_bytes and not self._in_flight:
                    self._flush_soon()
            case LogTruncate(from_index):
                if not self._first_index <= from_index <= self._next_index:
                    raise LocalProtocolError(
                        f"LogTruncate(from_index={from_index}) outside the log "
                        f"[{self._first_index}, {self._next_index})"
                    )
                self._next_index = from_index
                self._queued.append(op)
            case LogCompact(before_index):
                if before_index < self._first_index:
                    raise LocalProtocolError(
                        f"LogCompact(before_index={before_index}) moves the log start "
                        f"backwards from {self._first_index}"
                    )
                self._first_index = before_index
                self._next_index = max(self._next_index, before_index)
                self._queued.append(op)
            case Put(key, value):
                self._dirty[key] = value

    # ------------------------------------------------------------------ syncing
    def request_sync(self, token: int) -> None:
        """Deliver ``on_durable(token)`` once everything applied so far is on disk (rule 2)."""
        self.request_syncs((token,))

    def request_syncs(self, tokens: Sequence[int]) -> None:
        """`request_sync` for each of `tokens` (in order), all covered by the same fsync
        round: one round, not one for the first token and a second for the rest."""
        self._waiting.extend(tokens)
        if not self._in_flight and not self._closed:
            self._start_round()

    def _flush_soon(self) -> None:
        """Start a round without a token (rule 3), if there is a loop to report it to."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # applied outside a loop (a tool or a test): the next sync writes it
        if not self._closed:
            self._start_round()

    def _take(self) -> tuple[list[_Queued], dict[str, bytes | None]]:
        queued, self._queued, self._queued_bytes = self._queued, [], 0
        dirty, self._dirty = self._dirty, {}
        return queued, dirty

    def _start_round(self) -> None:
        inline = self.inline_sync
        if (
            inline
            and not self._queued
            and not self._dirty
            and self.clock() - self._idle_since >= self._last_fsync_s
            and (inline is True or inline())
        ):
            self._inline_round()
            return
        tokens, self._waiting = self._waiting, []
        queued, dirty = self._take()
        self._in_flight = True
        self._exclusive = bool(queued)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._round, queued, dirty)
        future.add_done_callback(lambda f: self._round_done(f, tokens))

    def _round(self, queued: list[_Queued], dirty: dict[str, bytes | None]) -> int:
        """Runs on the worker thread: it alone touches the files (after `open`)."""
        written = 0
        chunks: list[tuple[bytes, int]] = []
        for item in queued:
            if isinstance(item, _Chunk):
                chunks.append((item.data, item.count))
                continue
            if chunks:
                written += self.log.append(chunks)
                chunks = []
            if isinstance(item, LogTruncate):
                self.log.truncate(item.from_index)
            else:
                self.log.compact(item.before_index)
        if chunks:
            written += self.log.append(chunks)
        for key, value in dirty.items():
            path = state_file(self.state_dir, key)
            if value is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            else:
                write_checked(self.state_dir, path.name, value, sync_dir=False)
        if dirty:
            fsync_dir(self.state_dir)
        started = self.clock()
        self.log.sync()
        self._last_fsync_s = self.clock() - started
        return written

    def _inline_round(self) -> None:
        """Rule 2b: only the fsync, here on the loop; tokens in the next loop callback."""
        tokens, self._waiting = self._waiting, []
        self._in_flight = True
        started = self.clock()
        try:
            self.log.sync()
        except OSError as exc:  # rule 4
            self._in_flight = False
            self._closed = True
            if self.on_error is not None:
                self.on_error(exc)
            return
        self._last_fsync_s = self.clock() - started
        done = asyncio.get_running_loop().create_future()
        done.set_result(0)
        asyncio.get_running_loop().call_soon(self._round_done, done, tokens)

    def _round_done(self, future: asyncio.Future[int], tokens: list[int]) -> None:
        self._in_flight = self._exclusive = False
        self._idle_since = self.clock()
        exc = None if future.cancelled() else future.exception()
        if future.cancelled() or exc is not None:
            self._closed = True
            if self.on_error is not None:
                self.on_error(exc or asyncio.CancelledError("fsync cancelled"))
            return
        self.fsyncs += 1
        self.bytes_written += future.result()
        self.tokens_durable += len(tokens)
        if not self._closed and (self._waiting or self._queued_bytes > self.flush_bytes):
            self._start_round()
        for token in tokens:
            self.on_durable(token)

    @property
    def syncing(self) -> bool:
        return self._in_flight

    # ------------------------------------------------------------------ closing
    async def close(self) -> None:
        """Make everything applied durable (no `on_durable` calls), then release the files."""
        if not self._open:
            return
        self._closed = True
        queued, dirty = self._take()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._round, queued, dirty)
        self.abandon()

    def abandon(self) -> None:
        """Release the files without writing what is queued (what a crash does; tests use it)."""
        self._closed = True
        self._open = False
        self._executor.shutdown(wait=True)
        self._queued, self._queued_bytes, self._dirty = [], 0, {}
        self.log.close()
        self._unlock()
