"""The store's client: `Client` (asyncio) and `BlockingClient` (any thread).

Give it any endpoints (client addresses) of the cluster. Rules:

1. **Routing.** Calls go to one preferred endpoint. Any member serves writes and
   linearizable reads (followers forward them through Raft), so the client does not have
   to find the leader to be correct; it does prefer it (one hop fewer): at the first call,
   and after a failure, it asks `status` and moves to the leader's address. A `NotLeader`
   refusal (lease keep-alive, membership) names the leader's address: the client follows
   it at once.
2. **Failover and retries, within the call's deadline** (``timeout_s``, default 5 s).
   Attempts pause with capped exponential backoff and full jitter. What is retried:
   - anything refused before it took effect (`NotApplied`: no leader yet, busy, a
     follower's `NotLeader`), and any call that could not reach an endpoint;
   - reads, after any failure (they change nothing);
   - writes through a *session* (exactly-once, Raft thesis §6.3), after any failure: the
     retried request carries the same (client id, sequence number), and the machine
     answers a duplicate from its record instead of applying it twice.
   A write without a session whose outcome is unknown (connection lost in flight, no
   answer in time) is not retried: it raises `OutcomeUnknown`.
3. **Errors say what happened**: `NotApplied` (and its subclasses `StoreError`,
   `NotLeader`) = certainly no effect; `OutcomeUnknown` = may or may not have taken effect.
   Nothing else escapes a call (RPC errors are translated).
4. **Watches** resume after a lost connection or a server-side cancellation (slow
   watcher, snapshot restore, member stopping) from the last delivered revision + 1, on
   any member, so the consumer sees every revision once, in order. ``compacted`` ends the
   watch with `StoreError`.
5. **History** (for the linearizability checker): ``recorder`` is called with one dict
   per invocation and one per completion (``type`` invoke / ok / fail / info), in the
   shape of the history format (docs/formats.md).
6. **Keep-alive** (`keepalive`): many leases renewed over one bidirectional stream to the
   leader, each every TTL/3; the stream follows leader changes. It ends with
   `StoreError(lease_not_found)` as soon as the leader says a lease is gone, and with
   `OutcomeUnknown` when no renewal of a lease got through for its whole TTL (it may have
   expired meanwhile).
7. **Shared connections** (``share_connections``, on by default): the clients of one
   event loop that talk to the same member with the same cluster name and timeout share
   one connection (`tejido.store.pool`), as gRPC's Python channels share theirs; the
   member then gets their concurrent requests in one read and replicates them as one
   batch. A client that sees the connection fail takes it out of the pool for everyone
   (the others find out on their next call); it closes when its last client closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

from tejido import rpc
from tejido.mvcc import api
from tejido.store import pool
from tejido.store.errors import (
    NotApplied,
    NotLeader,
    OutcomeUnknown,
    StoreError,
    WatchCancelled,
)
from tejido.store.service import (
    KV,
    DeleteRangeReply,
    LeaseGrantReply,
    LeaseKeepAliveReply,
    LeasesReply,
    LeaseTTLReply,
    MemberListReply,
    PutReply,
    RangeReply,
    Session,
    StatusReply,
    TxnReply,
    WatchRequest,
    WatchResponse,
)

__all__ = ["BlockingClient", "Client", "prefix_end"]

T = TypeVar("T")
Recorder = Callable[[dict[str, Any]], None]
_process_ids = itertools.count(1)
#: An attempt starting within this many seconds of its call takes the stub's timeout (the
#: client's ``timeout_s``) as its deadline instead of a per-call `rpc.call_options`.
_FRESH_S = 0.005


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def prefix_end(prefix: bytes | str) -> bytes:
    """The range end covering every key that starts with `prefix` (etcd's convention:
    increment the last byte below 0xff; ``b"\\0"`` = to the end of the key space)."""
    key = bytearray(_bytes(prefix))
    while key:
        if key[-1] < 0xFF:
            key[-1] += 1
            return bytes(key)
        key.pop()
    return b"\0"


class Client:
    """Asyncio client of a store cluster (rules in the module docstring)."""

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        timeout_s: float = 5.0,
        cluster: str = "tejido",
        sessions: bool = True,
        recorder: Recorder | None = None,
        initial_backoff_s: float = 0.02,
        max_backoff_s: float = 0.25,
        share_connections: bool = True,
    ) -> None:
        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not self.endpoints:
            raise NotApplied("a client needs at least one endpoint")
        self.timeout_s = timeout_s
        self.cluster = cluster
        self.use_sessions = sessions
        self.recorder = recorder
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.share_connections = share_connections
        self.process = next(_process_ids)
        self._stubs: dict[str, KV] = {}
        self._stream_stubs: dict[str, KV] = {}  # no per-call deadline: long-lived streams
        self._preferred = self.endpoints[0]
        self._discovered = False
        self._free_sessions: list[Session] = []
        self._rng = random.Random()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        stubs, self._stubs = self._stubs, {}
        streams, self._stream_stubs = self._stream_stubs, {}
        for stub in stubs.values():
            await self._let_go(stub, broken=False)
        for stub in streams.values():
            with contextlib.suppress(Exception):
                await rpc.close(stub)

    # ------------------------------------------------------------------ plumbing
    async def _stub(self, address: str) -> KV:
        stub = self._stubs.get(address)
        if stub is None:
            if self.share_connections:  # rule 7
                stub = await pool.acquire(address, self.cluster, self.timeout_s)
            else:
                stub = await rpc.connect(
                    KV,
                    address,
                    cluster=self.cluster,
                    timeout=self.timeout_s,
                    connect_timeout_s=1.0,
                )
            if address in self._stubs:  # another call of this client connected meanwhile
                await self._let_go(stub, broken=False)
                return self._stubs[address]
            self._stubs[address] = stub
        return stub

    async def _drop(self, address: str) -> None:
        stub = self._stubs.pop(address, None)
        if stub is not None:
            await self._let_go(stub, broken=True)

    async def _let_go(self, stub: KV, *, broken: bool) -> None:
        if self.share_connections:
            await pool.release(stub, broken=broken)
        else:
            with contextlib.suppress(Exception):
                await rpc.close(stub)

    def _rotate(self) -> None:
        known = self.endpoints
        index = known.index(self._preferred) if self._preferred in known else -1
        self._preferred = known[(index + 1) % len(known)]
        self._discovered = False

    async def _discover(self, deadline: float) -> None:
        """Rule 1: move to the leader's address when some member knows it."""
        self._discovered = True
        for address in [self._preferred, *(e for e in self.endpoints if e != self._preferred)]:
            if time.monotonic() >= deadline:
                return
            try:
                stub = await self._stub(address)
                with rpc.call_options(timeout=min(1.0, deadline - time.monotonic())):
                    status = await stub.status()
            except Exception:
                await self._drop(address)
                continue
            if status.leader_address:
                self._preferred = status.leader_address
                if status.leader_address not in self.endpoints:
                    self.endpoints.append(status.leader_address)
                return

    async def _call(self, fn: Callable[[KV], Awaitable[T]], *, retry_unknown: bool, what: str) -> T:
        deadline = time.monotonic() + self.timeout_s
        backoff = self.initial_backoff_s
        last: Exception | None = None
        unknown = False
        redirects = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not self._discovered:
                await self._discover(deadline)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
            address = self._preferred
            try:
                stub = self._stubs.get(address) or await self._stub(address)
            except Exception as exc:  # could not connect: nothing was sent
                last = exc
                await self._drop(address)
                self._rotate()
            else:
                try:
                    if remaining > self.timeout_s - _FRESH_S:
                        # A first attempt sent at once: the stub's own timeout (this
                        # client's) is the deadline, without a context per call.
                        return await fn(stub)
                    with rpc.call_options(timeout=remaining):
                        return await fn(stub)
                except StoreError:
                    raise  # the machine refused it: final
                except NotLeader as exc:
                    last = exc
                    redirects += 1
                    if exc.address and exc.address != address:
                        self._preferred = exc.address
                        if exc.address not in self.endpoints:
                            self.endpoints.append(exc.address)
                        if redirects <= 3:  # members disagreeing mid-election: back off
                            continue  # follow the redirect at once
                    else:
                        self._rotate()
                except NotApplied as exc:  # refused by Raft (no leader, busy): retry
                    last = exc
                    self._discovered = False
                except OutcomeUnknown as exc:
                    last, unknown = exc, True
                    if not retry_unknown:
                        raise
                    self._rotate()
                except rpc.DeadlineExceeded as exc:
                    last, unknown = exc, True
                    if not retry_unknown:
                        raise OutcomeUnknown(f"{what}: no answer within the deadline") from None
                    self._rotate()
                except (rpc.Unavailable, rpc.Cancelled, OSError, ConnectionError) as exc:
                    last, unknown = exc, True
                    await self._drop(address)
                    if not retry_unknown:
                        raise OutcomeUnknown(f"{what}: connection lost in flight: {exc}") from None
                    self._rotate()
                except (rpc.BadArguments, rpc.UnknownMethod) as exc:
                    raise NotApplied(f"{what}: {exc}") from None
                except rpc.RemoteError as exc:
                    raise OutcomeUnknown(f"{what}: server error: {exc}") from None
            pause = min(self.max_backoff_s, backoff, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(self._rng.uniform(0, pause))  # backoff between attempts
            backoff *= 2
        message = f"{what}: gave up after {self.timeout_s:.3g} s: {last}"
        if unknown:
            raise OutcomeUnknown(message)
        raise NotApplied(message)

    async def _write(
        self, fn: Callable[[KV, Session | None], Awaitable[T]], what: str, record: Any = None
    ) -> T:
        try:
            if not self.use_sessions:
                session = None
            elif self._free_sessions:  # (the common case, without a coroutine)
                session = self._free_sessions.pop()
            else:
                session = await self._take_session()
        except OutcomeUnknown as exc:  # the write itself was never sent
            raise NotApplied(f"{what}: could not open a session: {exc}") from None
        self._record("invoke", what, record)
        attempts = 0

        def attempt(stub: KV) -> Awaitable[T]:
            nonlocal attempts
            attempts += 1
            return fn(stub, session)

        try:
            try:
                result = await self._call(attempt, retry_unknown=session is not None, what=what)
            except StoreError as exc:
                if exc.code != "session_expired" or session is None:
                    raise
                if attempts > 1:  # an earlier attempt may have been applied
                    raise OutcomeUnknown(f"{what}: the session expired during retries") from None
                session = await self._take_session(fresh=True)  # idle too long: a new one
                result = await self._call(attempt, retry_unknown=session is not None, what=what)
        except NotApplied as exc:
            self._record("fail", what, record, str(exc))
            if session is not None:
                self._free_sessions.append(session.next())
            raise
        except OutcomeUnknown as exc:
            self._record("info", what, record, str(exc))
            raise  # the session is abandoned: its last request is in doubt
        self._record("ok", what, record, result)
        if session is not None:
            self._free_sessions.append(session.next())
        return result

    async def _take_session(self, fresh: bool = False) -> Session | None:
        """A free session of this client, or a new one (`fresh`: the pool's sessions
        expired together, drop them). Opening one is itself exactly-once-safe to retry:
        a lost answer only leaves an unused session behind, which expires."""
        if fresh:
            self._free_sessions.clear()
        if self._free_sessions:
            return self._free_sessions.pop()
        return await self._call(
            lambda stub: stub.open_session(), retry_unknown=True, what="open session"
        )

    async def _read(self, fn: Callable[[KV], Awaitable[T]], what: str, record: Any = None) -> T:
        self._record("invoke", what, record)
        try:
            result = await self._call(fn, retry_unknown=True, what=what)
        except (NotApplied, OutcomeUnknown) as exc:
            self._record("fail" if isinstance(exc, NotApplied) else "info", what, record, str(exc))
            raise
        self._record("ok", what, record, result)
        return result

    def _record(self, kind: str, what: str, request: Any, result: Any = None) -> None:
        if self.recorder is not None:
            self.recorder(
                {
                    "process": self.process,
                    "type": kind,
                    "f": what,
                    "request": request,
                    "result": result,
                    "time": time.monotonic(),
                }
            )

    # ------------------------------------------------------------------ key-value
    async def range(
        self,
        key: bytes | str,
        range_end: bytes | str = b"",
        *,
        prefix: bool = False,
        limit: int = 0,
        revision: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangeReply:
        """Keys in [key, range_end) (one key when range_end is empty); linearizable unless
        `serializable` (served by whichever member answers, possibly stale)."""
        k = _bytes(key)
        end = prefix_end(k) if prefix else _bytes(range_end)
        request = api.RangeRequest(
            key=k,
            range_end=end,
            limit=limit,
            revision=revision,
            keys_only=keys_only,
            count_only=count_only,
        )
        return await self._read(lambda stub: stub.range(request, serializable), "range", request)

    async def get(
        self, key: bytes | str, *, revision: int = 0, serializable: bool = False
    ) -> api.KeyValue | None:
        reply = await self.range(key, revision=revision, serializable=serializable)
        return reply.result.kvs[0] if reply.result.kvs else None

    async def put(
        self, key: bytes | str, value: bytes | str, *, lease: int = 0, prev_kv: bool = False
    ) -> PutReply:
        request = api.PutRequest(key=_bytes(key), value=_bytes(value), lease=lease, prev_kv=prev_kv)
        return await self._write(lambda stub, s: stub.put(request, s), "put", request)

    async def delete(
        self,
        key: bytes | str,
        range_end: bytes | str = b"",
        *,
        prefix: bool = False,
        prev_kv: bool = False,
    ) -> DeleteRangeReply:
        k = _bytes(key)
        end = prefix_end(k) if prefix else _bytes(range_end)
        request = api.DeleteRangeRequest(key=k, range_end=end, prev_kv=prev_kv)
        return await self._write(lambda stub, s: stub.delete_range(request, s), "delete", request)

    async def txn(self, request: api.TxnRequest) -> TxnReply:
        return await self._write(lambda stub, s: stub.txn(request, s), "txn", request)

    async def compact(self, revision: int) -> int:
        request = api.CompactionRequest(revision=revision)
        reply = await self._call(
            lambda stub: stub.compact(request), retry_unknown=True, what="compact"
        )
        return reply.revision

    # ------------------------------------------------------------------ leases
    async def lease_grant(self, ttl: int, lease: int = 0) -> LeaseGrantReply:
        return await self._write(lambda stub, s: stub.lease_grant(ttl, lease, s), "lease grant")

    async def lease_revoke(self, lease: int) -> None:
        await self._write(lambda stub, s: stub.lease_revoke(lease, s), "lease revoke")

    async def lease_keepalive(self, lease: int) -> LeaseKeepAliveReply:
        return await self._call(
            lambda stub: stub.lease_keepalive(lease), retry_unknown=True, what="lease keepalive"
        )

    async def _stream_stub(self, address: str) -> KV:
        stub = self._stream_stubs.get(address)
        if stub is None:
            stub = await rpc.connect(KV, address, cluster=self.cluster, connect_timeout_s=1.0)
            self._stream_stubs[address] = stub
        return stub

    async def keepalive(
        self, *leases: int, interval_s: float | None = None
    ) -> AsyncIterator[LeaseKeepAliveReply]:
        """Keep `leases` alive over one stream until the caller stops iterating (rule 6).

        Yields every renewal. Each lease is renewed every `interval_s` (default: a third
        of its TTL). Raises `StoreError(lease_not_found)` once a lease is gone, and
        `OutcomeUnknown` when no renewal of a lease got through within its TTL (or
        within the client's ``timeout_s`` before the first one)."""
        wanted = list(dict.fromkeys(leases))
        if not wanted:
            raise NotApplied("keepalive needs at least one lease id")
        ttls: dict[int, float] = {}
        renewed = dict.fromkeys(wanted, time.monotonic())
        backoff = self.initial_backoff_s

        def check_lost(now: float) -> float:
            """Raise for a lease not renewed in time; else when the next one would be."""
            earliest = float("inf")
            for lease in wanted:
                limit = renewed[lease] + ttls.get(lease, self.timeout_s)
                if now >= limit:
                    raise OutcomeUnknown(
                        f"lease {lease}: no keep-alive got through for "
                        f"{now - renewed[lease]:.3g} s; it may have expired"
                    )
                earliest = min(earliest, limit)
            return earliest

        while True:
            if not self._discovered:
                await self._discover(time.monotonic() + min(1.0, self.timeout_s))
            address = self._preferred
            queue: asyncio.Queue[int] = asyncio.Queue()
            reading: asyncio.Future[LeaseKeepAliveReply] | None = None

            try:
                stub = await self._stream_stub(address)
                stream = stub.lease_keepalive_stream(_queued(queue))
                due = dict.fromkeys(wanted, 0.0)  # send every lease at once on a new stream
                while True:
                    now = time.monotonic()
                    for lease, at in due.items():
                        if at <= now:
                            queue.put_nowait(lease)
                            due[lease] = now + (interval_s or ttls.get(lease, 3.0) / 3)
                    if reading is None:
                        reading = asyncio.ensure_future(anext(stream))
                    wake = min(min(due.values()), check_lost(now))
                    await asyncio.wait({reading}, timeout=max(0.0, wake - time.monotonic()))
                    if not reading.done():
                        continue
                    reply, reading = reading.result(), None
                    if reply.ttl <= 0:
                        raise StoreError(
                            f"lease {reply.id} not found (expired or revoked)", "lease_not_found"
                        )
                    if reply.id in renewed:
                        renewed[reply.id] = time.monotonic()
                        if reply.id not in ttls:  # the first reply: from now on by its TTL
                            due[reply.id] = renewed[reply.id] + (interval_s or reply.ttl / 3)
                        ttls[reply.id] = reply.ttl
                    backoff = self.initial_backoff_s
                    yield reply
            except (StoreError, OutcomeUnknown):
                raise
            except NotLeader as exc:
                if exc.address and exc.address != address:
                    self._preferred = exc.address
                else:
                    self._discovered = False
            except (StopAsyncIteration, NotApplied, rpc.RpcError, OSError):
                await self._drop_stream(address)
                self._rotate()
            finally:
                if reading is not None:
                    reading.cancel()
            check_lost(time.monotonic())
            await asyncio.sleep(self._rng.uniform(0, backoff))  # backoff before reconnecting
            backoff = min(self.max_backoff_s, backoff * 2)

    async def _drop_stream(self, address: str) -> None:
        stub = self._stream_stubs.pop(address, None)
        if stub is not None:
            with contextlib.suppress(Exception):
                await rpc.close(stub)

    async def lease_ttl(self, lease: int, *, keys: bool = False) -> LeaseTTLReply:
        return await self._call(
            lambda stub: stub.lease_ttl(lease, keys), retry_unknown=True, what="lease ttl"
        )

    async def leases(self) -> LeasesReply:
        return await self._call(lambda stub: stub.leases(), retry_unknown=True, what="leases")

    # ------------------------------------------------------------------ watches
    async def watch(
        self,
        key: bytes | str,
        range_end: bytes | str = b"",
        *,
        prefix: bool = False,
        start_revision: int = 0,
        progress: bool = False,
    ) -> AsyncIterator[WatchResponse]:
        """Responses with the events of every revision from `start_revision` (0: from now),
        each revision once, in order, across reconnects (rule 4). With `progress`, empty
        responses (``events == []``) also arrive while nothing changes."""
        k = _bytes(key)
        end = prefix_end(k) if prefix else _bytes(range_end)
        next_revision = start_revision
        backoff = self.initial_backoff_s
        while True:
            address = self._preferred
            try:
                stub = await self._stub(address)
                request = WatchRequest(key=k, range_end=end, start_revision=next_revision)
                async with contextlib.aclosing(stub.watch(request)) as stream:  # type: ignore[type-var]
                    async for response in stream:
                        backoff = self.initial_backoff_s
                        if response.events:
                            fresh = [
                                e for e in response.events if e.kv.mod_revision >= next_revision
                            ]
                            if not fresh:
                                continue
                            next_revision = fresh[-1].kv.mod_revision + 1
                            if len(fresh) != len(response.events):
                                response = WatchResponse(response.header, fresh)
                            yield response
                        else:
                            if next_revision == 0:
                                next_revision = response.header.revision + 1
                            if progress:
                                yield response
            except StoreError:
                raise  # compacted: history we promised is gone
            except (WatchCancelled, NotApplied, OutcomeUnknown, rpc.RpcError, OSError):
                await self._drop(address)
                self._rotate()
            await asyncio.sleep(self._rng.uniform(0, backoff))  # backoff before resuming
            backoff = min(self.max_backoff_s, backoff * 2)

    # ------------------------------------------------------------------ cluster
    async def status(self, endpoint: str | None = None) -> StatusReply:
        if endpoint is None:
            return await self._call(lambda stub: stub.status(), retry_unknown=True, what="status")
        stub = await self._stub(endpoint)
        try:
            with rpc.call_options(timeout=self.timeout_s):
                return await stub.status()
        except rpc.RpcError as exc:
            await self._drop(endpoint)
            raise NotApplied(f"status of {endpoint}: {exc}") from None

    async def member_list(self) -> MemberListReply:
        return await self._call(
            lambda stub: stub.member_list(), retry_unknown=True, what="member list"
        )

    async def member_add_learner(
        self, member: int, peer: str | None = None, client: str | None = None
    ) -> MemberListReply:
        """Add `member` as a learner; `peer` and `client` (HOST:PORT) are needed for a
        member that is not in the members' address books yet."""
        return await self._call(
            lambda stub: stub.member_add_learner(member, peer or "", client or ""),
            retry_unknown=False,
            what="member add",
        )

    async def member_promote(self, member: int) -> MemberListReply:
        return await self._call(
            lambda stub: stub.member_promote(member), retry_unknown=False, what="member promote"
        )

    async def member_remove(self, member: int) -> MemberListReply:
        return await self._call(
            lambda stub: stub.member_remove(member), retry_unknown=False, what="member remove"
        )

    async def leader_transfer(self, target: int) -> StatusReply:
        return await self._call(
            lambda stub: stub.leader_transfer(target), retry_unknown=False, what="leader transfer"
        )


async def _queued(queue: asyncio.Queue[int]) -> AsyncIterator[int]:
    """The items put into `queue`, as a stream's requests."""
    while True:
        yield await queue.get()


class BlockingClient:
    """`Client` for code without an event loop: one background thread runs the loop;
    every method blocks until done and may be called from any thread."""

    def __init__(self, endpoints: str | Sequence[str], **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tejido-kv", daemon=True
        )
        self._thread.start()
        self.client = Client(endpoints, **options)

    def call(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``fn(async_client)`` on the client's loop (fully typed)."""

        async def main() -> T:
            return await fn(self.client)

        return asyncio.run_coroutine_threadsafe(main(), self._loop).result()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.call(lambda c: c.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop.close()

    def get(self, key: bytes | str, **options: Any) -> api.KeyValue | None:
        return self.call(lambda c: c.get(key, **options))

    def range(self, key: bytes | str, range_end: bytes | str = b"", **options: Any) -> RangeReply:
        return self.call(lambda c: c.range(key, range_end, **options))

    def put(self, key: bytes | str, value: bytes | str, **options: Any) -> PutReply:
        return self.call(lambda c: c.put(key, value, **options))

    def delete(
        self, key: bytes | str, range_end: bytes | str = b"", **options: Any
    ) -> DeleteRangeReply:
        return self.call(lambda c: c.delete(key, range_end, **options))

    def txn(self, request: api.TxnRequest) -> TxnReply:
        return self.call(lambda c: c.txn(request))

    def lease_grant(self, ttl: int, lease: int = 0) -> LeaseGrantReply:
        return self.call(lambda c: c.lease_grant(ttl, lease))

    def lease_revoke(self, lease: int) -> None:
        self.call(lambda c: c.lease_revoke(lease))

    def lease_keepalive(self, lease: int) -> LeaseKeepAliveReply:
        return self.call(lambda c: c.lease_keepalive(lease))

    def lease_ttl(self, lease: int, *, keys: bool = False) -> LeaseTTLReply:
        return self.call(lambda c: c.lease_ttl(lease, keys=keys))

    def status(self, endpoint: str | None = None) -> StatusReply:
        return self.call(lambda c: c.status(endpoint))

    def member_list(self) -> MemberListReply:
        return self.call(lambda c: c.member_list())

    def keepalive(self, *leases: int, **options: Any) -> Iterator[LeaseKeepAliveReply]:
        """A plain iterator over `Client.keepalive`'s renewals (closing it stops them)."""
        stream = cast(
            AsyncGenerator[LeaseKeepAliveReply, None], self.client.keepalive(*leases, **options)
        )
        return self._iterate(stream)

    def watch(
        self, key: bytes | str, range_end: bytes | str = b"", **options: Any
    ) -> Iterator[WatchResponse]:
        """A plain iterator over `Client.watch`'s responses (closing it ends the watch)."""
        stream = cast(
            AsyncGenerator[WatchResponse, None], self.client.watch(key, range_end, **options)
        )
        return self._iterate(stream)

    def _iterate(self, stream: AsyncGenerator[T, None]) -> Iterator[T]:
        async def next_item() -> T:
            return await stream.__anext__()

        try:
            while True:
                try:
                    yield asyncio.run_coroutine_threadsafe(next_item(), self._loop).result()
                except StopAsyncIteration:
                    return
        finally:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stream.aclose(), self._loop).result(5.0)
