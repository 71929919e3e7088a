"""Cluster membership for actor systems: links between nodes, heartbeats, a member view.

An `ActorSystem` started with a `ClusterConfig` (or ``node=..., listen=..., seeds=...``)
becomes a *node*: it listens for ``tejido.net`` connections (handshake purpose ``actors``,
cluster id = the system's name, optional mutual TLS from `tejido.net.tls`, exactly as RPC
and the node mesh use them) and dials its seeds. Rules:

1. **One outgoing link per peer.** Each node sends everything for a peer over the link it
   dialled to it, and reads what the peer sends over the link the peer dialled. So there
   is one ordered stream per direction and pair (which is what keeps messages ordered per
   sender-receiver pair), and no simultaneous-open race to settle. A link that drops is
   redialled with capped exponential backoff and full jitter; frames sent meanwhile wait
   in a bounded queue (oldest dropped and counted beyond ``queue_limit``).
2. **Joining.** The first frame on a link is `Join(node, address, incarnation)`. The
   incarnation (a fresh number per process start) tells a restarted node from its
   previous life. A node is *up* in our view once its own `Join` reached us; it is never
   up because someone else says so. `Heartbeat` frames carry the sender's member list,
   and we dial every member we hear of: so joining through any one seed reaches all.
3. **Failure detection.** Every frame from a peer counts as a heartbeat; we send one every
   ``heartbeat_s``. A peer silent for ``failure_timeout_s`` is *down* (reason ``lost``).
   A graceful exit sends `Leave` (reason ``left``) and waits (bounded) for `LeaveDone`.
   A down incarnation is *quarantined*: it cannot come back (its links are refused with
   `Quarantined`), it must restart, as in Akka's remoting (doc.akka.io, "Artery Remoting":
   quarantine). A `Join` from a newer incarnation of an up node downs the old one (reason
   ``restarted``) and brings the new one up.
4. **The view is local.** Each node decides for itself (no consensus on membership); two
   nodes agree once their heartbeats have crossed, i.e. within a few ``heartbeat_s`` of a
   join and ``failure_timeout_s`` of a crash.
5. **A read's answers leave with it.** Frames sent while the frames of one read are
   handled (replies to asks, acks) are collected per link and written when the read is
   done: one frame with `write_at_once`, several in one write. So a request/response
   exchange costs the responder one loop turn and one write, as a bare echo does; a
   sender that expects no company this turn (a sequential asker) uses `send_at_once`.

The public API other layers build on (virtual actors use it for placement):

- ``cluster.members()``: the up members, this node included, sorted by node name;
- ``cluster.subscribe()``: an async iterator of `MemberUp` / `MemberDown` events, starting
  with a `MemberUp` for every current member; ``close()`` it (or leave its ``async with``);
- ``cluster.add_listener(callback)``: the same events as synchronous callbacks on the loop;
  returns a function that removes the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tejido.actors.wire import (
    Ack,
    Ask,
    Fail,
    Find,
    Frame,
    Heartbeat,
    Join,
    Leave,
    LeaveDone,
    MemberInfo,
    Quarantined,
    Reply,
    Spawn,
    StopActor,
    Tell,
    Unwatch,
    Watch,
    decode_frame,
    encode_frame,
)
from tejido.net.connection import ConnectionClosed, FramedConnection, connect, serve
from tejido.net.handshake import HandshakeRefused, Hello
from tejido.net.tls import TLSConfig

__all__ = [
    "Cluster",
    "ClusterConfig",
    "Delivery",
    "Member",
    "MemberDown",
    "MemberEvent",
    "MemberUp",
    "Subscription",
]

log = logging.getLogger("tejido.actors.cluster")

PURPOSE = "actors"


class Delivery(enum.Enum):
    """How remote tells are delivered (see docs/actors.md, "Delivery guarantees")."""

    AT_MOST_ONCE = "at-most-once"
    AT_LEAST_ONCE = "at-least-once"


@dataclass(frozen=True)
class ClusterConfig:
    """How an actor system joins a cluster (see the module docstring)."""

    node: str
    listen: str = "127.0.0.1:0"
    seeds: tuple[str, ...] = ()
    tls: TLSConfig | None = None
    heartbeat_s: float = 0.25
    failure_timeout_s: float = 3.0
    delivery: Delivery = Delivery.AT_MOST_ONCE
    #: at-least-once: first resend after this long without an ack, doubling up to the max.
    retry_min_s: float = 0.1
    retry_max_s: float = 2.0
    #: frames queued for a peer whose link is down (oldest dropped beyond it).
    queue_limit: int = 100_000
    #: how long a graceful leave waits for each peer's `LeaveDone`.
    leave_timeout_s: float = 2.0
    connect_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.node or "/" in self.node or "@" in self.node:
            raise ValueError(f"invalid node name {self.node!r}: non-empty, no '/' or '@'")
        if self.heartbeat_s <= 0 or self.failure_timeout_s <= self.heartbeat_s:
            raise ValueError(
                f"need 0 < heartbeat_s ({self.heartbeat_s}) < failure_timeout_s "
                f"({self.failure_timeout_s})"
            )
        seeds: object = self.seeds
        if isinstance(seeds, str):
            raise ValueError("seeds must be a sequence of HOST:PORT strings, not one string")


class Member(msgspec.Struct, frozen=True, order=True):
    """A node in the cluster: its name, the address it listens on, its incarnation."""

    node: str
    address: str
    incarnation: int


@dataclass(frozen=True)
class MemberUp:
    member: Member


@dataclass(frozen=True)
class MemberDown:
    """`member` is down: ``reason`` is ``left`` (graceful), ``lost`` (no heartbeat within
    the timeout, or it quarantined us) or ``restarted`` (a newer incarnation joined)."""

    member: Member
    reason: str


MemberEvent = MemberUp | MemberDown


class Subscription:
    """Membership events as an async iterator (see `Cluster.subscribe`)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._queue: asyncio.Queue[MemberEvent | None] = asyncio.Queue()
        self._remove = cluster.add_listener(self._queue.put_nowait)

    def __aiter__(self) -> AsyncIterator[MemberEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MemberEvent]:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event

    async def next(self, timeout: float | None = None) -> MemberEvent:
        """The next event (raises `TimeoutError` after `timeout` s, `StopAsyncIteration`
        once closed)."""
        async with asyncio.timeout(timeout):
            event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._remove()
        self._queue.put_nowait(None)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


@dataclass
class _Link:
    """Our outgoing connection to one address (rule 1)."""

    address: str
    node: str | None
    conn: FramedConnection | None = None
    queue: deque[bytes] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    closed: bool = False
    leave_done: asyncio.Future[None] | None = None


class _LinkReceiver:
    """What the peer answers on our outgoing link: only `Quarantined` / `LeaveDone`."""

    def __init__(self, cluster: Cluster, link: _Link) -> None:
        self.cluster = cluster
        self.link = link

    def frame_received(self, payload: bytes) -> None:
        try:
            frame = decode_frame(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.cluster.bad_frames += 1
            return
        if isinstance(frame, LeaveDone):
            done = self.link.leave_done
            if done is not None and not done.done():
                done.set_result(None)
        elif isinstance(frame, Quarantined):
            log.error("%s: %s quarantined us: %s", self.cluster.node, self.link.node, frame.reason)
            self.cluster._quarantined_by(self.link)

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


class _Inbound:
    """A link a peer dialled to us: its frames, starting with its `Join`."""

    def __init__(self, cluster: Cluster, conn: FramedConnection) -> None:
        self.cluster = cluster
        self.conn = conn
        self.member: Member | None = None

    def frames_received(self, payloads: list[bytes]) -> None:
        cluster = self.cluster
        member = self.member
        if member is not None and cluster._up.get(member.node) is member:
            cluster._last_heard[member.node] = cluster._now()
        outer = cluster._batch is None
        if outer:
            cluster._batch = {}
        conn = self.conn
        handlers = cluster.handlers
        try:
            for payload in payloads:
                if member is None:  # the handshake's Join comes first
                    self.frame_received(payload)
                    member = self.member
                elif (frame := _decode(self, payload)) is None:
                    pass
                elif (handler := handlers.get(type(frame))) is not None:
                    # the hot path: what `_handle` does for a messaging frame
                    if cluster._up.get(member.node) is member:
                        try:
                            handler(member.node, frame)
                        except Exception:  # a bug or a hostile frame must not cost the link
                            cluster.bad_frames += 1
                            kind = type(frame).__name__
                            log.exception("%s: handling %s from %s", cluster.node, kind, member)
                else:
                    self._handle(frame)
                if conn.is_closing:
                    return
        finally:
            if outer:
                cluster._write_batch()

    def frame_received(self, payload: bytes) -> None:
        frame = _decode(self, payload)
        if frame is not None:
            self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        cluster = self.cluster
        member = self.member
        if member is None:
            if not isinstance(frame, Join):
                cluster.bad_frames += 1
                self.conn.close()
                return
            self.member = cluster._joined(self, frame)
            return
        if cluster._up.get(member.node) is not member:
            return  # a down (quarantined) incarnation's late frames
        if isinstance(frame, Heartbeat):
            cluster._last_heard[member.node] = cluster._now()
            cluster._gossip(frame.members)
        elif isinstance(frame, Leave):
            cluster._down(member, "left")
            cluster._spawn(self._leave_done(member.node))
        else:
            try:  # (heard: counted per batch of frames)
                cluster.on_frame(member.node, frame)
            except Exception:  # a bug or a hostile frame must not cost the link
                cluster.bad_frames += 1
                log.exception("%s: handling %s from %s", cluster.node, type(frame).__name__, member)

    async def _leave_done(self, node: str) -> None:
        hook = self.cluster.before_leave_done
        if hook is not None:
            try:
                await hook(node)
            except Exception:
                log.exception("%s: cleaning up after %s left", self.cluster.node, node)
        with contextlib.suppress(ConnectionClosed):
            self.conn.send(encode_frame(LeaveDone()))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.cluster._inbound.discard(self)


#: The frames `tejido.actors.remote` handles (the rest are membership's own).
_MESSAGING = frozenset((Tell, Ask, Reply, Fail, Watch, Unwatch, Spawn, StopActor, Find, Ack))


def _decode(inbound: _Inbound, payload: bytes) -> Frame | None:
    """One frame from `inbound`'s peer, or None (counted, logged) when it is garbage."""
    try:
        return decode_frame(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        cluster = inbound.cluster
        cluster.bad_frames += 1
        log.warning("%s: undecodable frame from %s dropped: %s", cluster.node, inbound.member, exc)
        return None


class Cluster:
    """A node's view of the cluster and its links (see the module docstring)."""

    def __init__(
        self,
        config: ClusterConfig,
        cluster_id: str,
        on_frame: Callable[[str, Frame], None],
    ) -> None:
        self.config = config
        self.node = config.node
        self.cluster_id = cluster_id
        self.on_frame = on_frame
        #: Who handles each messaging frame kind read from a member (`on_frame` unless
        #: the owner registers a handler of its own for a hot kind).
        self.handlers: dict[type, Callable[[str, Any], None]] = dict.fromkeys(_MESSAGING, on_frame)
        self.address = ""
        self.incarnation = time.time_ns()
        self.self_member = Member(self.node, "", self.incarnation)
        self.bad_frames = 0
        self.dropped = 0
        self._up: dict[str, Member] = {}
        self._last_heard: dict[str, float] = {}
        self._quarantine: set[tuple[str, int]] = set()
        self._links: dict[str, _Link] = {}  # by address
        self._inbound: set[_Inbound] = set()
        self._listeners: list[Callable[[MemberEvent], None]] = []
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._leaving = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: awaited when a member leaves, before we answer its `Leave` (remoting stops the
        #: actors spawned on its behalf here, so the leaver sees them gone).
        self.before_leave_done: Callable[[str], Awaitable[None]] | None = None
        # While a read's frames are handled: the frames sent meanwhile, per connection,
        # written when the read is done (rule 5).
        self._batch: dict[FramedConnection, list[bytes]] | None = None

    # ------------------------------------------------------------------ public API
    def members(self) -> list[Member]:
        """The up members, this node included, sorted by node name."""
        return sorted([self.self_member, *self._up.values()])

    def member(self, node: str) -> Member | None:
        """The up member named `node` (this node included), or None."""
        if node == self.node:
            return self.self_member
        return self._up.get(node)

    def subscribe(self) -> Subscription:
        """Membership events, starting with `MemberUp` for every current member."""
        subscription = Subscription(self)
        for member in self.members():
            subscription._queue.put_nowait(MemberUp(member))
        return subscription

    def add_listener(self, callback: Callable[[MemberEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` on every later membership change; returns a remover."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def send(self, node: str, payload: bytes) -> bool:
        """Queue an encoded frame for `node`; False (nothing sent) if it is not up."""
        member = self._up.get(node)
        if member is None:
            return False
        link = self._links.get(member.address)
        if link is None:
            link = self._dial(member.address, node)
        batch = self._batch
        conn = link.conn
        if batch is not None and conn is not None and not conn.is_closing:
            frames = batch.get(conn)  # `_send_on` inline: the hot case, a read's reply
            if frames is None:
                batch[conn] = [payload]
            else:
                frames.append(payload)
        else:
            self._send_on(link, payload)
        return True

    def send_at_once(self, node: str, payload: bytes) -> bool:
        """`send` for a sender that expects no other frame this loop turn (rule 5): the
        frame is written now when nothing is queued before it on the link."""
        member = self._up.get(node)
        if member is None:
            return False
        link = self._links.get(member.address)
        if link is None:
            link = self._dial(member.address, node)
        conn = link.conn
        if self._batch is None and conn is not None and not conn.is_closing:
            conn.write_at_once(payload)
        else:
            self._send_on(link, payload)
        return True

    def stats(self) -> dict[str, int]:
        return {"bad_frames": self.bad_frames, "dropped": self.dropped, "up": len(self._up)}

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = self.config
        ssl = config.tls.server_context() if config.tls is not None else None
        self._server = await serve(
            config.listen,
            cluster=self.cluster_id,
            node=self.node,
            purposes=(PURPOSE,),
            accept=self._accept,
            ssl=ssl,
        )
        host, _, _ = config.listen.rpartition(":")
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"{host or '127.0.0.1'}:{port}"
        self.self_member = Member(self.node, self.address, self.incarnation)
        for seed in config.seeds:
            if seed != self.address:
                self._dial(seed, None)
        self._ticker = self._loop.create_task(self._tick())

    async def leave(self) -> None:
        """Tell every member we leave, wait (bounded) for their `LeaveDone`, close."""
        if self._leaving:
            return
        self._leaving = True
        if self._ticker is not None:
            self._ticker.cancel()
        loop = asyncio.get_running_loop()
        waits = []
        for link in list(self._links.values()):
            if link.conn is None or link.conn.is_closing:
                continue
            link.leave_done = loop.create_future()
            self._send_on(link, encode_frame(Leave()))
            waits.append(link.leave_done)
        if waits:
            await asyncio.wait(waits, timeout=self.config.leave_timeout_s)
        await self.close()

    async def close(self) -> None:
        """Close every link and the listener at once (what a crash looks like to peers,
        minus the heartbeat wait: they see the links drop)."""
        self._leaving = True
        if self._ticker is not None:
            self._ticker.cancel()
        for link in list(self._links.values()):
            self._close_link(link)
        for inbound in list(self._inbound):
            inbound.conn.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        tasks = [link.task for link in self._links.values() if link.task is not None]
        self._links.clear()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ links
    def _dial(self, address: str, node: str | None) -> _Link:
        link = self._links.get(address)
        if link is not None:
            return link
        link = self._links[address] = _Link(address, node)
        assert self._loop is not None
        link.task = self._loop.create_task(self._run_link(link))
        return link

    def _send_on(self, link: _Link, payload: bytes) -> None:
        conn = link.conn
        if conn is not None and not conn.is_closing:
            batch = self._batch
            if batch is None:
                conn.send(payload)
            else:
                frames = batch.get(conn)
                if frames is None:
                    batch[conn] = [payload]
                else:
                    frames.append(payload)
            return
        if link.closed:
            self.dropped += 1
            return
        if len(link.queue) >= self.config.queue_limit:
            link.queue.popleft()
            self.dropped += 1
        link.queue.append(payload)

    def _write_batch(self) -> None:
        """Write what was sent while a read was handled: a lone frame at once (no flush
        turn), several in one write (rule 5)."""
        batch, self._batch = self._batch, None
        for conn, frames in (batch or {}).items():
            if conn.is_closing:
                self.dropped += len(frames)
            elif len(frames) == 1:
                conn.write_at_once(frames[0])
            else:
                conn.send_many(frames)
                conn.flush()

    def _close_link(self, link: _Link) -> None:
        link.closed = True
        if link.task is not None:
            link.task.cancel()
        if link.conn is not None:
            link.conn.close()
        self.dropped += len(link.queue)
        link.queue.clear()

    async def _run_link(self, link: _Link) -> None:
        config = self.config
        ssl = config.tls.client_context() if config.tls is not None else None
        hello = Hello(cluster=self.cluster_id, node=self.node, purpose=PURPOSE)
        failures = 0
        while not link.closed:
            try:
                conn = await connect(
                    link.address,
                    hello,
                    ssl=ssl,
                    expect_node=link.node,
                    timeout=config.connect_timeout_s,
                )
            except HandshakeRefused as exc:
                log.error("%s: %s refused our link: %s", self.node, link.address, exc)
                failures += 1
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                log.debug("%s: cannot reach %s: %s", self.node, link.address, exc)
                failures += 1
            else:
                failures = 0
                remote = conn.remote
                name = remote.node if remote is not None else ""
                if link.node is None:
                    link.node = name
                    duplicate = self._duplicate_link(link)
                    if duplicate:
                        conn.close()
                        return
                conn.attach(_LinkReceiver(self, link))
                conn.send(encode_frame(Join(self.node, self.address, self.incarnation)))
                conn.send(encode_frame(self._heartbeat()))
                if link.queue:
                    conn.send_many(list(link.queue))
                    link.queue.clear()
                link.conn = conn
                closed = conn.closed
                if closed is not None:
                    await asyncio.shield(closed)
                link.conn = None
            # capped exponential backoff with full jitter (Brooker, AWS Architecture Blog)
            cap = min(2.0, 0.05 * 2 ** min(failures, 10))
            await asyncio.sleep(self._rng.uniform(0, cap) if failures else 0.05)

    def _duplicate_link(self, link: _Link) -> bool:
        """A seed turned out to be a node we already link to under another address."""
        for other in self._links.values():
            if other is not link and other.node == link.node and not other.closed:
                link.closed = True
                self._links.pop(link.address, None)
                return True
        return False

    def _accept(self, conn: FramedConnection, hello: Hello) -> _Inbound:
        if not hello.node or hello.node == self.node:
            raise HandshakeRefused(
                f"node {self.node!r} takes actor links from other named nodes, "
                f"not from {hello.node!r}"
            )
        inbound = _Inbound(self, conn)
        self._inbound.add(inbound)
        # We send (almost) nothing back on an inbound link, so a read on it need not
        # schedule a flush behind the tasks it wakes (their frames go out on our links).
        conn.write_next_at_once = True
        return inbound

    # ------------------------------------------------------------------ membership
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _joined(self, inbound: _Inbound, join: Join) -> Member | None:
        member = Member(join.node, join.address, join.incarnation)
        if self._leaving:  # our Leave reaches it over our own link
            inbound.conn.close()
            return None
        if (join.node, join.incarnation) in self._quarantine:
            with contextlib.suppress(ConnectionClosed):
                inbound.conn.send(
                    encode_frame(
                        Quarantined(
                            f"{self.node} declared {join.node} (incarnation "
                            f"{join.incarnation}) down; restart it to rejoin"
                        )
                    )
                )
            inbound.conn.close()
            return None
        old = self._up.get(join.node)
        if old is not None and old != member:
            if old.incarnation > member.incarnation:
                inbound.conn.close()  # an old incarnation's link: ignore it
                return None
            self._down(old, "restarted")
        self._last_heard[join.node] = self._now()
        if old != member:
            self._up[join.node] = member
            self._dial(member.address, member.node)
            log.info("%s: member up: %s at %s", self.node, member.node, member.address)
            self._emit(MemberUp(member))
        return self._up[join.node]  # the one object inbound links compare by identity

    def _gossip(self, members: tuple[MemberInfo, ...]) -> None:
        for info in members:
            if info.node == self.node or (info.node, info.incarnation) in self._quarantine:
                continue
            known = self._up.get(info.node)
            if known is not None and known.incarnation >= info.incarnation:
                continue
            if info.address not in self._links and not self._leaving:
                self._dial(info.address, info.node)

    def _heartbeat(self) -> Heartbeat:
        return Heartbeat(
            tuple(MemberInfo(m.node, m.address, m.incarnation) for m in self._up.values())
        )

    def _down(self, member: Member, reason: str) -> None:
        if self._up.get(member.node) != member:
            return
        del self._up[member.node]
        self._last_heard.pop(member.node, None)
        self._quarantine.add((member.node, member.incarnation))
        link = self._links.pop(member.address, None)
        if link is not None:
            self._close_link(link)
        log.info("%s: member down: %s (%s)", self.node, member.node, reason)
        self._emit(MemberDown(member, reason))

    def _quarantined_by(self, link: _Link) -> None:
        node = link.node
        member = self._up.get(node) if node is not None else None
        if member is not None:
            self._down(member, "lost")
        else:
            self._links.pop(link.address, None)
            self._close_link(link)

    def _emit(self, event: MemberEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("%s: membership listener raised on %s", self.node, event)

    async def _tick(self) -> None:
        config = self.config
        while True:
            await asyncio.sleep(config.heartbeat_s)
            now = self._now()
            for node, member in list(self._up.items()):
                if now - self._last_heard.get(node, now) > config.failure_timeout_s:
                    self._down(member, "lost")
            payload = encode_frame(self._heartbeat())
            for link in list(self._links.values()):
                if link.conn is not None and not link.conn.is_closing:
                    link.conn.send(payload)
