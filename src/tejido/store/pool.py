"""Connections to store members shared by the `Client` objects of one event loop.

An application (or a load generator) often makes several `tejido.kv.Client` objects in
one process, each given the cluster's endpoints in its own order. Each client moves to
the leader (`tejido.store.client` rule 1), so without sharing the leader would serve one
connection per client object: its requests then arrive in separate reads, in separate
loop iterations, and are appended, replicated and fsynced as separate small batches.
gRPC's Python channels share their connections the same way (gRPC core's global
subchannel pool: channels to the same target with the same arguments use one
subchannel); etcd's Go client does not, so its users share one client instead.

Rules:

1. A pool belongs to one event loop (a `BlockingClient` runs its own loop, so it gets its
   own pool). Its key is (address, cluster, timeout): clients that would have made
   identical connections share one; any other setting gets its own.
2. `acquire` returns the pooled stub and counts the client as a user; concurrent first
   acquisitions wait for one connection attempt, and a failed attempt fails each of them
   (and leaves nothing in the pool).
3. `release(stub, broken=...)`: a client lets go of a stub. ``broken`` (the client saw the
   connection fail, or gave up on the member) also takes it out of the pool, so the next
   `acquire` connects afresh; clients still holding it find out for themselves. The
   connection closes when its last user lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from dataclasses import dataclass, field

from tejido import rpc
from tejido.store.service import KV

__all__ = ["acquire", "release"]

_Key = tuple[str, str, float]


@dataclass
class _Entry:
    key: _Key
    connecting: asyncio.Future[KV]
    users: int = 0
    stub: KV | None = None


@dataclass
class _Pool:
    entries: dict[_Key, _Entry] = field(default_factory=dict)
    by_stub: dict[int, _Entry] = field(default_factory=dict)
    closing: set[asyncio.Future[None]] = field(default_factory=set)


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = _Pool()
    return pool


async def _connect(key: _Key) -> KV:
    address, cluster, timeout = key
    return await rpc.connect(KV, address, cluster=cluster, timeout=timeout, connect_timeout_s=1.0)


async def acquire(address: str, cluster: str, timeout: float) -> KV:
    """A connected stub for `address`, shared with this loop's other clients (rule 2)."""
    pool = _pool()
    key = (address, cluster, timeout)
    entry = pool.entries.get(key)
    if entry is None:
        connecting = asyncio.ensure_future(_connect(key))
        entry = pool.entries[key] = _Entry(key, connecting)
        connecting.add_done_callback(functools.partial(_connected, pool, entry))
    entry.users += 1
    try:
        return await asyncio.shield(entry.connecting)
    except BaseException:
        entry.users -= 1
        if entry.users == 0 and entry.stub is not None:
            await _forget(pool, entry)  # the only user was cancelled just after the connect
        raise


def _connected(pool: _Pool, entry: _Entry, connecting: asyncio.Future[KV]) -> None:
    """The connection attempt ended (runs before any waiter resumes)."""
    if connecting.cancelled() or connecting.exception() is not None:
        if pool.entries.get(entry.key) is entry:
            del pool.entries[entry.key]  # the next acquire tries again
        return
    entry.stub = connecting.result()
    pool.by_stub[id(entry.stub)] = entry
    if entry.users == 0:  # every waiter gave up meanwhile
        closing = asyncio.ensure_future(_forget(pool, entry))
        pool.closing.add(closing)
        closing.add_done_callback(pool.closing.discard)


async def _forget(pool: _Pool, entry: _Entry) -> None:
    if pool.entries.get(entry.key) is entry:
        del pool.entries[entry.key]
    stub, entry.stub = entry.stub, None
    if stub is not None:
        pool.by_stub.pop(id(stub), None)
        with contextlib.suppress(Exception):
            await rpc.close(stub)


async def release(stub: KV, *, broken: bool) -> None:
    """One user lets go of `stub` (rule 3)."""
    pool = _pool()
    entry = pool.by_stub.get(id(stub))
    if entry is None or entry.stub is not stub:
        with contextlib.suppress(Exception):
            await rpc.close(stub)  # not from this pool: close it here
        return
    entry.users -= 1
    if broken and pool.entries.get(entry.key) is entry:
        del pool.entries[entry.key]  # new acquisitions connect afresh
    if entry.users <= 0:
        await _forget(pool, entry)


def pooled_count() -> int:
    """Connections (or attempts) in this loop's pool (for tests and status)."""
    return len(_pool().entries)
