"""Fenced locks: a mutex, a read-write lock and a counting semaphore on the store.

The decision logic is `tejido.mvcc.recipes.Acquire` (its rules 1 and 2); this module runs
it with a `Session` (its lease keeps our place in line and is renewed in the background).

Guarantees, and what they rest on:

1. Waiters are served in the order their keys were created (create revision), each
   watching only its predecessor.
2. `acquire` returns the **fencing token**: the create revision of our key. A later holder
   always has a larger token.
3. A holder that dies (or stops renewing for longer than the TTL) loses its key when the
   lease expires, and the next waiter takes over. The lock alone is therefore *not* mutual
   exclusion: a holder paused past its lease still believes it holds the lock (etcd's
   documentation says the same of its lock). Safety comes from fencing: `txn` applies a
   store write only while our key exists with our token, and `FencedResource` lets any
   other resource reject operations carrying an older token.
4. An acquisition that fails or is cancelled (e.g. by a timeout) deletes its key again.
5. A session holds one key per lock name: a `Lock` is not reentrant across tasks, and two
   `Lock` objects with the same session and name share the key (as in etcd).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from tejido.mvcc import api
from tejido.mvcc.recipes import (
    Acquire,
    Blockers,
    FencedResource,
    Holding,
    NotHolder,
    contender_key,
    guarded_txn,
    lock_blockers,
    read_blockers,
    semaphore_blockers,
    write_blockers,
)
from tejido.recipes._driver import drive
from tejido.recipes.session import Session

__all__ = ["FencedResource", "Lock", "ReadWriteLock", "Semaphore"]


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


async def _leave_line(session: Session, key: bytes) -> None:
    """An acquisition that failed or was cancelled deletes its key (best effort), so it
    does not hold up the waiters behind it until its lease expires (etcd does the same)."""
    if session.expired:
        return
    with contextlib.suppress(Exception):
        await asyncio.shield(session.client.delete(key))


class Lock:
    """A fenced mutex named `name` (rules in the module docstring).

    ``async with Lock(session, "jobs") as lock: await lock.put("jobs/state", b"x")``
    """

    def __init__(
        self,
        session: Session,
        name: bytes | str,
        *,
        kind: bytes = b"",
        blockers: Blockers = lock_blockers,
        watch_prefix: bool = False,
    ) -> None:
        self.session = session
        self.name = _bytes(name)
        if not self.name.strip(b"/"):
            raise ValueError("a lock needs a non-empty name")
        self.kind = kind
        self.blockers = blockers
        self.watch_prefix = watch_prefix
        self.holding: Holding | None = None

    @property
    def key(self) -> bytes:
        """Our key under the lock's prefix (it names the session's lease)."""
        return contender_key(self.name, self.session.lease, self.kind)

    @property
    def token(self) -> int:
        """The fencing token of the current hold; `NotHolder` when not holding."""
        if self.holding is None:
            raise NotHolder(f"{self.name!r} is not held by this session")
        return self.holding.token

    @property
    def held(self) -> bool:
        """Whether we believe we hold it (acquired, not released, session not lost). Only
        fencing makes acting on this belief safe (module rule 3)."""
        return self.holding is not None and not self.session.expired

    async def acquire(self) -> int:
        """Wait in line and take the lock; returns the fencing token. Raises
        `SessionExpired` when the session's lease is lost while waiting."""
        machine = Acquire(
            self.name,
            self.key,
            self.session.lease,
            blockers=self.blockers,
            watch_prefix=self.watch_prefix,
        )
        try:
            self.holding = await self.session.guard(drive(self.session.client, machine))
        except BaseException:
            await _leave_line(self.session, self.key)
            raise
        return self.holding.token

    async def release(self) -> None:
        """Delete our key (also when we only waited); the next waiter takes over."""
        self.holding = None
        await self.session.client.delete(self.key)

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    def guarded(
        self, success: Sequence[api.RequestOp], failure: Sequence[api.RequestOp] = ()
    ) -> api.TxnRequest:
        """A transaction that applies only while we still hold the lock (rule 3)."""
        return guarded_txn(self.key, self.token, success, failure)

    async def txn(self, success: Sequence[api.RequestOp]) -> api.TxnResponse:
        """Apply `success` atomically while we hold the lock; `NotHolder` if we do not
        (our key is gone or was replaced: the lease expired)."""
        reply = await self.session.client.txn(self.guarded(success))
        if not reply.result.succeeded:
            raise NotHolder(
                f"lock {self.name!r} with token {self.token} is no longer ours: nothing written"
            )
        return reply.result

    async def put(self, key: bytes | str, value: bytes | str) -> int:
        """A guarded put; returns the revision it created."""
        result = await self.txn([api.PutRequest(key=_bytes(key), value=_bytes(value))])
        return result.header_revision

    async def delete(self, key: bytes | str) -> int:
        """A guarded delete of one key; returns the revision."""
        result = await self.txn([api.DeleteRangeRequest(key=_bytes(key))])
        return result.header_revision


class ReadWriteLock:
    """Many readers or one writer (etcd ``recipes.RWMutex``): a reader waits only for
    earlier writers, a writer for every earlier key. ``rw.read()`` and ``rw.write()`` are
    `Lock` objects; each fencing token is our key's create revision, and `FencedResource`
    suits the writers' tokens only (readers share the lock)."""

    def __init__(self, session: Session, name: bytes | str) -> None:
        self.session = session
        self.name = _bytes(name)

    def read(self) -> Lock:
        return Lock(self.session, self.name, kind=b"r", blockers=read_blockers(self.name))

    def write(self) -> Lock:
        return Lock(self.session, self.name, kind=b"w", blockers=write_blockers)


class Semaphore(Lock):
    """Up to `limit` holders at once; every participant must use the same `limit`. Each
    holder's token is its key's create revision: guarded writes (`txn`) work as for a
    lock; `FencedResource` does not fit (holders share the semaphore)."""

    def __init__(self, session: Session, name: bytes | str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a semaphore needs a limit >= 1, not {limit}")
        super().__init__(session, name, blockers=semaphore_blockers(limit), watch_prefix=True)
        self.limit = limit
