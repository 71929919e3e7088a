"""The peer mesh: one connection per pair of nodes, carrying protocol messages.

A node's `Mesh` listens on its address and keeps a link to every peer. Rules:

1. **One connection per pair, no races.** The node with the smaller id dials, the larger
   one accepts (and refuses a dial from a larger id). Both directions of traffic share that
   connection, so there is never a simultaneous-open to break a tie on. The cost: a pair
   whose lower node cannot reach the higher one's port has no link even if the other way
   round would work; run the mesh where every node can reach every listening port.
2. **The handshake names the node.** Purpose ``peer``; the `Hello` carries the cluster id
   and the dialler's node id (decimal). An unknown node id, a wrong cluster or a wrong wire
   version is refused with a reason naming both values. The dialler checks that the
   `Welcome` comes from the node it meant to reach. With TLS, each side's certificate must
   also name the node it claims to be (``n<ID>``), so a client certificate cannot join the
   mesh as a node.
3. **Reconnect with capped exponential backoff and full jitter.** After the n-th failed
   attempt in a row the dialler waits ``uniform(0, min(cap, base * 2**n))`` seconds (the
   "full jitter" policy of Brooker, "Exponential Backoff And Jitter", AWS Architecture
   Blog, 2015): restarted nodes are not hit by every peer in the same millisecond. A
   connection that was up and drops is redialled after one jittered base delay.
4. **Memory stays bounded.** A message goes straight into the connection (which coalesces
   every frame of a loop iteration into one write) while it is writable; otherwise into the
   link's queue, bounded in messages and bytes. Beyond the bound, or while a peer is gone
   and its queue is full, messages are dropped and counted: protocols tolerate loss (they
   retry), and a slow or dead peer can never make a node run out of memory. The queue is
   kept while a peer reconnects and sent first when it is back.
5. **Messages are `tejido.core.messages.Message` values**, one per frame, encoded with
   msgspec msgpack and decoded against the protocol's message union (`MessageCodec`). A
   frame that does not decode is dropped and counted (the peer is misbehaving; the rest of
   its traffic still flows).
6. **Tracing** (optional, `tejido.net.trace`): with a ``tracer`` every message, to a peer
   or to ourselves, is stamped with the node's clocks and recorded when sent and when
   handed to ``on_message``; peer frames are then `Stamped` wrappers, so either every node
   of a cluster traces or none does.
7. **Peers learned at run time.** `add_peer(node, address)` adds a link (a member added to
   the cluster, its address carried by the membership change) under rule 1 like the
   others: dialled at once when this node has the smaller id, accepted otherwise. Known
   peers keep their link; a new address for one is used from its next dial.
8. **Peers removed at run time.** `remove_peer(node)` forgets a peer (a member removed
   from the cluster): its connection is closed, its dialler and queue dropped, its address
   forgotten. From then on messages to it are dropped (counted in `removed_drops`), and
   its dials are refused naming the removal, until `add_peer` brings it back.
9. **Writing at once.** `send_now` hands a batch of messages to the kernel before it
   returns, rather than at the end of the loop iteration: the node host sends a step's
   messages this way before it starts the step's fsync round, so an AppendEntries leaves
   before the (slower) hand-off to the fsync thread, not after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import operator
import random
import socket
import ssl as ssl_module
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.net.connection import (
    DEFAULT_HIGH_WATER,
    ConnectionClosed,
    FramedConnection,
    FrameReceiver,
    connect,
    serve,
)
from tejido.net.frames import DEFAULT_MAX_FRAME
from tejido.net.handshake import HandshakeRefused, Hello
from tejido.net.tls import peer_names
from tejido.net.trace import Stamped, TraceRecorder

__all__ = ["Backoff", "Mesh", "MessageCodec", "PeerLink", "node_cert_name"]

log = logging.getLogger("tejido.net.mesh")

PEER = "peer"


def node_cert_name(node: NodeId) -> str:
    """The name a node's certificate carries (``tejido certs issue DIR n1``)."""
    return f"n{node}"


class MessageCodec:
    """Encodes any `Message`; decodes exactly the protocol's message kinds (by tag)."""

    def __init__(self, types: Iterable[type[Message]]) -> None:
        kinds = tuple(dict.fromkeys(types))
        self.types = kinds
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode: Callable[[bytes], Message]
        if kinds:
            union: object = functools.reduce(operator.or_, kinds)
            self.decode = msgspec.msgpack.Decoder(union).decode
        else:
            self.decode = self._no_messages

    @staticmethod
    def _no_messages(payload: bytes) -> Message:
        raise msgspec.DecodeError("this protocol takes no messages")


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with full jitter (rule 3)."""

    base_s: float = 0.05
    cap_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failed attempts in a row (0 = the first retry)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(failures, 32))
        return self.rng.uniform(0.0, ceiling)


@dataclass(slots=True, eq=False)
class PeerLink:
    """Our side of the link to one peer: its connection, its queue, its counters."""

    node: NodeId
    address: str
    dials: bool
    """True when this node dials the peer (our id is smaller)."""
    conn: FramedConnection | None = None
    queue: deque[bytes] = field(default_factory=deque)
    queued_bytes: int = 0
    sent: int = 0
    received: int = 0
    dropped: int = 0
    bad_frames: int = 0
    connects: int = 0
    failures: int = 0
    last_error: str | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever an attempt to connect fails or a dial from this peer is refused."""
    flusher: asyncio.Task[None] | None = None
    dialer: asyncio.Task[None] | None = None

    def stats(self) -> dict[str, object]:
        return {
            "node": self.node,
            "up": self.conn is not None,
            "sent": self.sent,
            "received": self.received,
            "queued": len(self.queue),
            "queued_bytes": self.queued_bytes,
            "dropped": self.dropped,
            "bad_frames": self.bad_frames,
            "connects": self.connects,
            "failures": self.failures,
            "last_error": self.last_error,
        }


class _PeerReceiver:
    __slots__ = ("conn", "link", "mesh")

    def __init__(self, mesh: Mesh, link: PeerLink, conn: FramedConnection) -> None:
        self.mesh = mesh
        self.link = link
        self.conn = conn

    def frame_received(self, payload: bytes) -> None:
        self.mesh._deliver(self.link, payload)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.mesh._lost(self.link, self.conn, exc)


class Mesh:
    """Connections to every peer of one node; see the module docstring for the rules."""

    def __init__(
        self,
        node_id: NodeId,
        peers: Mapping[NodeId, str],
        *,
        cluster: str,
        codec: MessageCodec,
        on_message: Callable[[NodeId, Message], None],
        server_ssl: ssl_module.SSLContext | None = None,
        client_ssl: ssl_module.SSLContext | None = None,
        queue_limit_messages: int = 10_000,
        queue_limit_bytes: int = 8 * 1024 * 1024,
        high_water: int = DEFAULT_HIGH_WATER,
        max_frame: int = DEFAULT_MAX_FRAME,
        backoff: Backoff | None = None,
        connect_timeout_s: float = 2.0,
        tracer: TraceRecorder | None = None,
    ) -> None:
        if node_id in peers:
            raise LocalProtocolError(f"node {node_id} lists itself among its peers")
        self.node_id = node_id
        self.cluster = cluster
        self.codec = codec
        self.on_message = on_message
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.queue_limit_messages = queue_limit_messages
        self.queue_limit_bytes = queue_limit_bytes
        self.high_water = high_water
        self.max_frame = max_frame
        self.backoff = backoff or Backoff()
        self.connect_timeout_s = connect_timeout_s
        self.tracer = tracer
        self.links: dict[NodeId, PeerLink] = {
            n: PeerLink(n, address, dials=node_id < n) for n, address in sorted(peers.items())
        }
        self.refusals: list[str] = []
        self.removed: set[NodeId] = set()
        """Peers forgotten by `remove_peer` (rule 8)."""
        self.removed_drops = 0
        self._forgotten: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None
        self._closing = False
        self._started = False
        self._last_message: Message | None = None
        self._last_payload = b""

    # ------------------------------------------------------------------ lifecycle
    async def listen(
        self,
        address: str | None = None,
        *,
        sock: socket.socket | None = None,
        others: Mapping[str, Callable[[FramedConnection, Hello], FrameReceiver]] | None = None,
    ) -> str:
        """Accept peers (and the `others` purposes, e.g. clients); returns ``HOST:PORT``."""
        accept_others = dict(others or {})

        def accept(conn: FramedConnection, hello: Hello) -> FrameReceiver:
            if hello.purpose == PEER:
                return self.accept_peer(conn, hello)
            return accept_others[hello.purpose](conn, hello)

        self._server = await serve(
            address,
            sock=sock,
            cluster=self.cluster,
            node=str(self.node_id),
            purposes=(PEER, *accept_others),
            accept=accept,
            ssl=self.server_ssl,
            max_frame=self.max_frame,
            high_water=self.high_water,
            on_refused=self._refused,
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    def add_peer(self, node: NodeId, address: str) -> None:
        """Rule 7: learn a peer at run time."""
        if node == self.node_id:
            return
        self.removed.discard(node)
        link = self.links.get(node)
        if link is not None:
            link.address = address
            return
        link = self.links[node] = PeerLink(node, address, dials=self.node_id < node)
        if self._started and link.dials and not self._closing:
            link.dialer = asyncio.get_running_loop().create_task(self._dial(link))

    def remove_peer(self, node: NodeId) -> None:
        """Rule 8: forget a peer removed from the cluster."""
        link = self.links.pop(node, None)
        if link is None:
            return
        self.removed.add(node)
        for task in (link.dialer, link.flusher):
            if task is not None:
                task.cancel()
                self._forgotten.append(task)
        link.dialer = link.flusher = None
        link.queue.clear()
        link.queued_bytes = 0
        conn, link.conn = link.conn, None
        link.up.clear()
        if conn is not None:
            conn.close()

    def start(self) -> None:
        """Start dialling every peer with a larger id (rule 1)."""
        self._started = True
        for link in self.links.values():
            if link.dials and link.dialer is None:
                link.dialer = asyncio.get_running_loop().create_task(self._dial(link))

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks, self._forgotten = self._forgotten, []
        for link in self.links.values():
            for task in (link.dialer, link.flusher):
                if task is not None:
                    task.cancel()
                    tasks.append(task)
            if link.conn is not None:
                link.conn.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def wait_connected(
        self, peers: Iterable[NodeId] | None = None, timeout: float = 10.0
    ) -> None:
        """Wait until the links to `peers` (default: all) are up."""
        links = [self.links[p] for p in peers] if peers is not None else list(self.links.values())
        async with asyncio.timeout(timeout):
            for link in links:
                await link.up.wait()

    def stats(self) -> list[dict[str, object]]:
        return [link.stats() for link in self.links.values()]

    # ------------------------------------------------------------------ sending
    def send_now(self, messages: Iterable[tuple[NodeId, Message]]) -> None:
        """`send` each message, then write what went into the connections to the sockets
        at once (rule 9) instead of at the end of the loop iteration."""
        written: list[FramedConnection] = []
        send = self.send
        links = self.links
        for dst, message in messages:
            send(dst, message)
            link = links.get(dst)
            conn = None if link is None else link.conn
            if conn is not None and conn not in written:
                written.append(conn)
        for conn in written:
            if not conn.is_closing:
                conn.flush()

    def send(self, dst: NodeId, message: Message) -> None:
        """Send one message, best effort (rule 4); to ourselves it is delivered next iteration."""
        tracer = self.tracer
        if dst == self.node_id:
            if tracer is not None:
                stamp = tracer.unwrap(tracer.wrap(dst, message, b""))
                asyncio.get_running_loop().call_soon(self._deliver_own, stamp, message)
                return
            asyncio.get_running_loop().call_soon(self.on_message, dst, message)
            return
        link = self.links.get(dst)
        if link is None:
            if dst in self.removed:  # rule 8
                self.removed_drops += 1
                return
            raise LocalProtocolError(f"node {self.node_id} has no peer {dst}")
        if message is self._last_message:  # a broadcast: encode once
            payload = self._last_payload
        else:
            payload = self.codec.encode(message)
            self._last_message, self._last_payload = message, payload
        if tracer is not None:
            payload = tracer.wrap(dst, message, payload)
        conn = link.conn
        if conn is not None and not link.queue and conn.writable:
            conn.send(payload)
            link.sent += 1
            return
        if (
            len(link.queue) >= self.queue_limit_messages
            or link.queued_bytes + len(payload) > self.queue_limit_bytes
        ):
            link.dropped += 1
            return
        link.queue.append(payload)
        link.queued_bytes += len(payload)
        if conn is not None and link.flusher is None:
            link.flusher = asyncio.get_running_loop().create_task(self._flush_queue(link, conn))

    async def _flush_queue(self, link: PeerLink, conn: FramedConnection) -> None:
        try:
            while link.queue and link.conn is conn:
                await conn.drain()
                while link.queue and conn.writable:
                    payload = link.queue.popleft()
                    link.queued_bytes -= len(payload)
                    conn.send(payload)
                    link.sent += 1
        except ConnectionClosed:
            pass
        finally:
            if link.flusher is asyncio.current_task():
                link.flusher = None

    # ------------------------------------------------------------------ receiving
    def _deliver_own(self, stamp: Stamped, message: Message) -> None:
        if self.tracer is not None:
            self.tracer.received(self.node_id, stamp)
        self.on_message(self.node_id, message)

    def _deliver(self, link: PeerLink, payload: bytes) -> None:
        stamp: Stamped | None = None
        try:
            if self.tracer is not None:
                stamp = self.tracer.unwrap(payload)
                payload = stamp.payload
            message = self.codec.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            link.bad_frames += 1
            if link.bad_frames == 1 or link.bad_frames % 1000 == 0:
                log.warning(
                    "node %s: undecodable message from %s: %s", self.node_id, link.node, exc
                )
            return
        link.received += 1
        if stamp is not None and self.tracer is not None:
            self.tracer.received(link.node, stamp)
        self.on_message(link.node, message)

    def _lost(self, link: PeerLink, conn: FramedConnection, exc: BaseException | None) -> None:
        if link.conn is conn:
            link.conn = None
            link.up.clear()
            if exc is not None:
                link.last_error = f"connection lost: {exc}"

    # ------------------------------------------------------------------ connecting
    def _adopt(self, link: PeerLink, conn: FramedConnection) -> _PeerReceiver:
        """Make `conn` the link's connection; the caller attaches the returned receiver.

        Queued messages go out from a task, so on the accepting side they follow the
        `Welcome` that `serve` sends after `accept_peer` returns.
        """
        old = link.conn
        link.conn = conn
        link.connects += 1
        link.up.set()
        if old is not None and old is not conn:
            old.abort()  # the peer restarted (or redialled): the new connection wins
        if link.queue and link.flusher is None and not conn.is_closing:
            link.flusher = asyncio.get_running_loop().create_task(self._flush_queue(link, conn))
        return _PeerReceiver(self, link, conn)

    def _check_cert(self, conn: FramedConnection, node: NodeId) -> None:
        if self.server_ssl is None and self.client_ssl is None:
            return
        names = peer_names(conn.peercert)
        expected = node_cert_name(node)
        if expected not in names:
            raise HandshakeRefused(
                f"node {node}'s TLS certificate names {names or 'nobody'}, not {expected!r}"
            )

    def accept_peer(self, conn: FramedConnection, hello: Hello) -> FrameReceiver:
        """The accepting side of rule 1 and 2: who may dial us, and with which id."""
        try:
            node = NodeId(int(hello.node))
        except ValueError:
            raise HandshakeRefused(f"peer node id {hello.node!r} is not a number") from None
        link = self.links.get(node)
        if link is None and node in self.removed:
            raise self._refuse_from(None, f"node {node} was removed from this node's peers")
        if link is None:
            known = ", ".join(str(n) for n in self.links) or "none"
            raise self._refuse_from(None, f"unknown node id {node}: this node's peers are {known}")
        if link.dials:
            raise self._refuse_from(
                link, f"node {node} must not dial node {self.node_id}: the smaller id dials"
            )
        try:
            self._check_cert(conn, node)
        except HandshakeRefused as exc:
            raise self._refuse_from(link, str(exc)) from None
        return self._adopt(link, conn)

    def _refuse_from(self, link: PeerLink | None, reason: str) -> HandshakeRefused:
        if link is not None:
            link.failures += 1
            link.last_error = reason
            link.failed.set()
        return HandshakeRefused(reason)

    def _refused(self, reason: str) -> None:
        self.refusals.append(reason)
        log.warning("node %s refused a connection: %s", self.node_id, reason)

    async def _dial(self, link: PeerLink) -> None:
        hello = Hello(cluster=self.cluster, node=str(self.node_id), purpose=PEER)
        failures = 0
        while not self._closing:
            try:
                conn = await connect(
                    link.address,
                    hello,
                    ssl=self.client_ssl,
                    expect_node=str(link.node),
                    timeout=self.connect_timeout_s,
                    max_frame=self.max_frame,
                    high_water=self.high_water,
                )
            except Exception as exc:  # any failure: log it, back off, try again
                self._refuse_from(
                    link, f"cannot connect to node {link.node} at {link.address}: {exc}"
                )
                await asyncio.sleep(self.backoff.delay(failures))
                failures += 1
                continue
            try:
                self._check_cert(conn, link.node)
            except HandshakeRefused as exc:
                conn.abort()
                self._refuse_from(link, str(exc))
                await asyncio.sleep(self.backoff.delay(failures))
                failures += 1
                continue
            failures = 0
            conn.attach(self._adopt(link, conn))
            assert conn.closed is not None
            await asyncio.shield(conn.closed)
            await asyncio.sleep(self.backoff.delay(0))
