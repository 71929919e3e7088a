"""Where a virtual actor's state lives between activations: persistence providers.

A provider stores one opaque byte string per grain, keyed by its `GrainId` ``(type,
key)``, behind three async calls (the `PersistenceProvider` protocol):

- ``load(grain) -> StoredState(data, etag)``: ``data`` is None when nothing is stored;
- ``save(grain, data, etag) -> new_etag``;
- ``clear(grain, etag) -> new_etag``.

Rules every provider keeps:

1. **Optimistic concurrency by etag.** Every load returns an ``etag`` (an int; ``0`` =
   never written). ``save`` and ``clear`` succeed only if the stored etag still equals
   the one passed, and return the next one; otherwise they raise `StateConflict` and
   change nothing. So of two activations of one grain that loaded the same state, the
   second to write fails instead of silently overwriting the first's update (the same
   rule as Orleans' storage providers and their ETag, see the Orleans docs, "Grain
   persistence"). Etags are never reused for a grain, so an old etag can never match
   again by accident: memory and file providers count up and keep a tombstone on
   ``clear``; the store provider uses etcd's ``mod_revision``, which only grows.
2. **Durable when acknowledged.** ``save`` returns only once the state is as durable as
   the provider can make it: `FileProvider` writes a temporary file, fsyncs it, renames
   it over the old one and fsyncs the directory (a crash leaves the old or the new state,
   never a torn one); `StoreProvider` returns once the replicated store committed the
   transaction (a majority fsynced it); `MemoryProvider` only lives as long as the
   process (tests, and grains whose state may be lost).
3. **Errors are typed.** `StateConflict` (another writer got there first: reload),
   `PersistenceError` (the provider could not do it: I/O error, corrupt record, store
   unreachable; ``outcome_unknown`` says whether the write may nevertheless have landed).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import secrets
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import msgspec

from tejido.actors.errors import ActorError
from tejido.mvcc import api
from tejido.net.storage import fsync_dir, write_all

if TYPE_CHECKING:
    from tejido.store.client import Client

__all__ = [
    "FileProvider",
    "GrainId",
    "MemoryProvider",
    "PersistenceError",
    "PersistenceProvider",
    "StateConflict",
    "StoreProvider",
    "StoredState",
]

T = TypeVar("T")


class GrainId(msgspec.Struct, frozen=True, order=True):
    """A virtual actor's identity: its type name and its key (``Player``, ``"ana"``)."""

    type: str
    key: str

    def __str__(self) -> str:
        return f"{self.type}/{self.key}"


class StoredState(msgspec.Struct, frozen=True):
    """What `load` found: the bytes (None: nothing stored) and the etag to write with."""

    data: bytes | None
    etag: int


class StateConflict(ActorError):
    """The stored etag is not the one this writer loaded: another activation (or a
    `clear`) wrote since. Nothing was changed; reload before writing again."""

    def __init__(self, grain: GrainId, expected: int, found: int | None) -> None:
        seen = "unknown" if found is None else str(found)
        super().__init__(
            f"state of grain {grain} changed under this writer: it expected etag {expected}, "
            f"the store has {seen} (another activation wrote it)"
        )
        self.grain = grain
        self.expected = expected
        self.found = found


class PersistenceError(ActorError):
    """A provider failed to load, save or clear a grain's state; `cause` says why."""

    def __init__(
        self, grain: GrainId, what: str, cause: BaseException, *, outcome_unknown: bool = False
    ) -> None:
        doubt = " (it may nevertheless have taken effect)" if outcome_unknown else ""
        super().__init__(f"{what} of grain {grain} failed{doubt}: {type(cause).__name__}: {cause}")
        self.grain = grain
        self.what = what
        self.cause = cause
        self.outcome_unknown = outcome_unknown


@runtime_checkable
class PersistenceProvider(Protocol):
    """Load, save and clear one grain's state with an etag (see the module docstring)."""

    async def load(self, grain: GrainId) -> StoredState: ...

    async def save(self, grain: GrainId, data: bytes, etag: int) -> int: ...

    async def clear(self, grain: GrainId, etag: int) -> int: ...


class MemoryProvider:
    """State in a dict of this process (tests; state that may die with the process).

    One instance may be shared by several actor systems of one process, which is how the
    in-process cluster tests let a grain move between "nodes" with its state.
    """

    def __init__(self) -> None:
        self._records: dict[GrainId, tuple[int, bytes | None]] = {}
        self.saves = 0

    async def load(self, grain: GrainId) -> StoredState:
        etag, data = self._records.get(grain, (0, None))
        return StoredState(data, etag)

    def _swap(self, grain: GrainId, etag: int, data: bytes | None) -> int:
        current = self._records.get(grain, (0, None))[0]
        if current != etag:
            raise StateConflict(grain, etag, current)
        self._records[grain] = (current + 1, data)
        return current + 1

    async def save(self, grain: GrainId, data: bytes, etag: int) -> int:
        new = self._swap(grain, etag, bytes(data))
        self.saves += 1
        return new

    async def clear(self, grain: GrainId, etag: int) -> int:
        return self._swap(grain, etag, None)  # a tombstone keeps the etag counting up


class _FileRecord(msgspec.Struct, array_like=True):
    type: str
    key: str
    etag: int
    data: bytes | None


_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(_FileRecord)


class FileProvider:
    """One file per grain under `root` (rules 1-2 of the module docstring).

    Layout: ``root/<type, %-quoted>/<BLAKE2b of the key, 32 hex digits>.grain``, each a
    msgpack record ``[type, key, etag, data]`` (the key inside guards against a hash
    collision). Reads and writes run on `threads` I/O threads of the provider's own.
    Compare-and-write is atomic across threads and processes that share
    `root`: it runs under ``flock`` of one of `lock_stripes` lock files in
    ``root/.locks`` (chosen by the grain's hash), so several local nodes may share one
    directory. ``fsync=False`` skips both fsyncs (faster; a power loss may then lose
    acknowledged state, a process crash still does not).
    """

    def __init__(
        self, root: str | Path, *, fsync: bool = True, lock_stripes: int = 64, threads: int = 16
    ) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.lock_stripes = lock_stripes
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        self._made: set[Path] = set()
        # file I/O runs on threads of its own: concurrent fsyncs share journal commits
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="tejido-grain-files")

    def close(self) -> None:
        """Let the I/O threads go (calls already started finish first)."""
        self._executor.shutdown(wait=True)

    def _paths(self, grain: GrainId) -> tuple[Path, Path]:
        digest = hashlib.blake2b(grain.key.encode(), digest_size=16).digest()
        directory = self.root / urllib.parse.quote(grain.type, safe="")
        stripe = int.from_bytes(digest[:4], "big") % self.lock_stripes
        return directory / f"{digest.hex()}.grain", self.root / ".locks" / f"{stripe}.lock"

    def _read(self, grain: GrainId, path: Path) -> tuple[int, bytes | None]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return 0, None
        record = _record_decoder.decode(raw)
        if (record.type, record.key) != (grain.type, grain.key):
            raise ValueError(f"{path} holds grain {record.type}/{record.key}")
        return record.etag, record.data

    def _load_sync(self, grain: GrainId) -> StoredState:
        path, _ = self._paths(grain)
        etag, data = self._read(grain, path)  # a rename is atomic: no lock needed
        return StoredState(data, etag)

    def _swap_sync(self, grain: GrainId, etag: int, data: bytes | None) -> int:
        path, lock_path = self._paths(grain)
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            current, _ = self._read(grain, path)
            if current != etag:
                raise StateConflict(grain, etag, current)
            record = _FileRecord(grain.type, grain.key, current + 1, data)
            if path.parent not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(path.parent)
            temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                write_all(fd, _record_encoder.encode(record))
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
            if self.fsync:
                fsync_dir(path.parent)
            return current + 1
        finally:
            os.close(lock_fd)  # releases the flock

    async def _run(self, what: str, fn: Callable[..., T], grain: GrainId, *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, fn, grain, *args
            )
        except StateConflict:
            raise
        except (OSError, ValueError, msgspec.DecodeError) as exc:
            raise PersistenceError(grain, what, exc) from exc

    async def load(self, grain: GrainId) -> StoredState:
        return await self._run("load", self._load_sync, grain)

    async def save(self, grain: GrainId, data: bytes, etag: int) -> int:
        return await self._run("save", self._swap_sync, grain, etag, bytes(data))

    async def clear(self, grain: GrainId, etag: int) -> int:
        return await self._run("clear", self._swap_sync, grain, etag, None)


class StoreProvider:
    """State in tejido's replicated store, one key per grain (``prefix + type/key``).

    ``save`` is one transaction: *if* the key's ``mod_revision`` equals the etag (0: the
    key does not exist) *then* put the state, *else* fetch the key to report what is
    there. The new etag is the transaction's revision, which is the key's new
    ``mod_revision``. ``clear`` deletes under the same compare and returns etag 0; since
    revisions only grow, a stale etag never matches a key created again later. Give the
    client sessions (the default): a write retried after a lost answer is then applied at
    most once, so ``outcome_unknown`` is rare; when it happens the grain must reload.
    """

    def __init__(self, client: Client, *, prefix: str = "/tejido/grains/") -> None:
        self.client = client
        self.prefix = prefix

    def key(self, grain: GrainId) -> bytes:
        return f"{self.prefix}{grain.type}/{grain.key}".encode()

    async def load(self, grain: GrainId) -> StoredState:
        from tejido.store.errors import NotApplied, OutcomeUnknown

        try:
            kv = await self.client.get(self.key(grain))
        except (NotApplied, OutcomeUnknown) as exc:
            raise PersistenceError(grain, "load", exc) from exc
        if kv is None:
            return StoredState(None, 0)
        return StoredState(kv.value, kv.mod_revision)

    async def _swap(self, grain: GrainId, etag: int, op: api.RequestOp, what: str) -> int:
        from tejido.store.errors import NotApplied, OutcomeUnknown

        key = self.key(grain)
        request = api.TxnRequest(
            compare=[api.Compare(key=key, target="MOD", mod_revision=etag)],
            success=[op],
            failure=[api.RangeRequest(key=key, keys_only=True)],
        )
        try:
            reply = await self.client.txn(request)
        except OutcomeUnknown as exc:
            raise PersistenceError(grain, what, exc, outcome_unknown=True) from exc
        except NotApplied as exc:
            raise PersistenceError(grain, what, exc) from exc
        if not reply.result.succeeded:
            found = 0
            for response in reply.result.responses:
                if isinstance(response, api.RangeResponse) and response.kvs:
                    found = response.kvs[0].mod_revision
            raise StateConflict(grain, etag, found)
        return reply.result.header_revision

    async def save(self, grain: GrainId, data: bytes, etag: int) -> int:
        put = api.PutRequest(key=self.key(grain), value=bytes(data))
        return await self._swap(grain, etag, put, "save")

    async def clear(self, grain: GrainId, etag: int) -> int:
        await self._swap(grain, etag, api.DeleteRangeRequest(key=self.key(grain)), "clear")
        return 0
