"""A framed, handshaken, back-pressured connection over an asyncio transport.

`FramedConnection` is an `asyncio.Protocol`: bytes in are cut into frames by a
`FrameDecoder` and handed to the attached `FrameReceiver` (one payload at a time, or all
the frames of one read in one list when the receiver has ``frames_received``); payloads
out are queued by `send` and written together once per event-loop iteration (write
coalescing: a burst of frames costs one system call, not one per frame).

When frames arrive, what the receiver queued while handling them is written at the end
of that read, and a flush is scheduled behind whatever the frames woke (the tasks whose
futures they completed), so that what those tasks send in the next loop iteration leaves
in that same iteration rather than one later: a request/response exchange costs one
loop iteration and one write per side.

Memory stays bounded in both directions:
- in: a frame larger than ``max_frame`` closes the connection before it is buffered;
- out: `buffered` counts queued plus transport-buffered bytes; above ``high_water`` the
  connection reports itself not `writable`, `drain()` waits, and the receiver's optional
  ``writing_paused``/``writing_resumed`` hooks let a server stop reading from a client that
  does not read its responses. Owners decide what to do with a full queue (the node mesh
  drops protocol messages, which protocols tolerate; RPC waits or fails the call).

A receiver with a fast path of its own for the common read may take reads over with
`divert` (the RPC server and client do): each read then goes to it first, and it hands
any read it does not handle entirely itself back to `FramedConnection.data_received`.

Every connection starts with the handshake from `tejido.net.handshake`: `connect()` sends
`Hello` and waits for `Welcome`; `serve()` checks the `Hello`, asks ``accept`` for a
receiver (``accept`` may raise `HandshakeRefused` to refuse), and answers. Frames that
arrive before a receiver is attached are kept and delivered, in order, on `attach`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import Protocol, cast

from tejido.core.errors import RemoteProtocolError, TejidoError
from tejido.net.frames import DEFAULT_MAX_FRAME, HEADER, FrameDecoder, FrameError, frame_header
from tejido.net.handshake import (
    HandshakeRefused,
    Hello,
    Refuse,
    Welcome,
    check_hello,
    decode_handshake,
    encode_handshake,
)

__all__ = [
    "DEFAULT_HIGH_WATER",
    "ConnectionClosed",
    "FrameReceiver",
    "FramedConnection",
    "connect",
    "serve",
]

#: Outgoing bytes (queued plus in the transport) above which a connection is not writable.
DEFAULT_HIGH_WATER = 4 * 1024 * 1024


class ConnectionClosed(TejidoError):
    """The connection is closed (or closing); nothing more can be sent on it."""


class FrameReceiver(Protocol):
    """Who gets a connection's frames once the handshake is done.

    A receiver may also define ``frames_received(payloads: list[bytes])``: it then gets
    every complete frame of one read in one call (saving a call per frame); it must
    handle them in order, exactly as successive ``frame_received`` calls would.
    """

    def frame_received(self, payload: bytes) -> None: ...

    def connection_lost(self, exc: BaseException | None) -> None: ...


class FramedConnection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying length-prefixed frames; see the module docstring."""

    def __init__(
        self,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self._decoder = FrameDecoder(max_frame)
        self.high_water = high_water
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receiver: FrameReceiver | None = None
        self._batch: Callable[[list[bytes]], None] | None = None
        self._early: list[bytes] = []
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_scheduled = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self._lost: BaseException | None = None
        self._gone = False
        self.closed: asyncio.Future[None] | None = None
        #: The other side's handshake (`Hello` on the accepting side, `Welcome` on the
        #: connecting side), set once the handshake is done.
        self.remote: Hello | Welcome | None = None
        # Hooks the handshake helpers install; None once the handshake is over.
        self._on_first_frame: Callable[[bytes], None] | None = None
        #: Called at the start of every flush, so that an owner that batches frames
        #: itself (RPC calls from many tasks) can `send` its batch just in time.
        self.before_flush: Callable[[], None] | None = None
        #: Set by the receiver while it handles a read when those frames can have woken
        #: at most one sender (an RPC client's last call in flight came back): the read
        #: then schedules no flush behind the wake-up, and that sender writes its next
        #: frame at once with `write_at_once` (nothing to coalesce it with). Cleared by
        #: `write_at_once`; a stale True costs at most a separate write, never order.
        self.write_next_at_once = False

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._fail(exc)
            return
        if not frames:
            return
        # The end of this read flushes what the receiver sends while handling it, so its
        # sends need not schedule a flush of their own (one loop callback less per read).
        scheduled = self._flush_scheduled
        self._flush_scheduled = True
        batch = self._batch
        try:
            if batch is not None:
                batch(frames)
            else:
                self._deliver(frames)
        except BaseException:
            self._flush_scheduled = scheduled
            if self._pending and not scheduled:
                self.flush_soon()
            raise
        if self.is_closing:  # the receiver may have closed us (mypy: not narrowed)
            return
        if self._pending:
            # Answers produced while handling this chunk leave now, in one write, rather
            # than one loop iteration later (saves a wake-up on request/response paths).
            self._flush()
        elif not scheduled:
            if self.write_next_at_once:
                self._flush_scheduled = False  # the one woken sender writes at once
                return
            # Tasks these frames woke run next iteration, queued before this flush: what
            # they send leaves in that iteration (see the module docstring).
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _deliver(self, frames: list[bytes]) -> None:
        receiver = self._receiver
        for payload in frames:
            if receiver is not None:
                receiver.frame_received(payload)
                if self._closing:
                    return
            elif self._on_first_frame is not None:
                hook = self._on_first_frame
                self._on_first_frame = None
                hook(payload)
                receiver = self._receiver
            else:
                self._early.append(payload)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._gone = True
        if exc is not None:
            self._lost = exc
        self._pending.clear()
        self._pending_bytes = 0
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionClosed("connection lost"))
        self._drain_waiters.clear()
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)
        receiver = self._receiver
        hook = self._on_first_frame
        self._on_first_frame = None
        if receiver is not None:
            receiver.connection_lost(exc)
        elif hook is not None:
            hook(b"")  # the handshake helpers treat an empty first frame as "gone"

    def pause_writing(self) -> None:
        self._paused = True
        hook = getattr(self._receiver, "writing_paused", None)
        if hook is not None:
            hook()

    def resume_writing(self) -> None:
        self._paused = False
        if self.writable:
            self._wake_drainers()
        hook = getattr(self._receiver, "writing_resumed", None)
        if hook is not None:
            hook()

    # ------------------------------------------------------------------ receiving
    def attach(self, receiver: FrameReceiver) -> None:
        """Deliver frames to `receiver` from now on (and the ones that arrived early)."""
        self._receiver = receiver
        self._batch = getattr(receiver, "frames_received", None)
        early, self._early = self._early, []
        for payload in early:
            if self._closing:
                break
            receiver.frame_received(payload)
        if self._gone:  # lost before anyone listened: still tell the receiver
            receiver.connection_lost(self._lost)

    def divert(self, data_received: Callable[[bytes], None]) -> None:
        """Hand every later read to `data_received` instead of this connection's framing.

        For a receiver with a fast path for the common read (one whole frame of a kind it
        knows): it handles such a read entirely itself and passes any other read on with
        ``FramedConnection.data_received(conn, data)``, which frames it and delivers it as
        usual (a read must go one way or the other, never half each). The transport's
        cached ``data_received`` is refreshed with `set_protocol`, so a read costs no call
        through this class at all.
        """
        self.data_received = data_received  # type: ignore[method-assign,assignment]
        refresh = getattr(self._transport, "set_protocol", None)  # (test doubles lack it)
        if refresh is not None and not self._closing:
            refresh(self)

    def pause_reading(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()

    # ------------------------------------------------------------------ sending
    @property
    def is_closing(self) -> bool:
        return self._closing

    @property
    def buffered(self) -> int:
        """Outgoing bytes not yet handed to the kernel (our queue plus the transport's)."""
        transport = self._transport
        in_transport = transport.get_write_buffer_size() if transport is not None else 0
        return self._pending_bytes + in_transport

    @property
    def writable(self) -> bool:
        """False while the outgoing buffer is above ``high_water`` or the socket pushes back."""
        if self._closing or self._paused:
            return False
        transport = self._transport
        in_transport = transport.get_write_buffer_size() if transport is not None else 0
        return self._pending_bytes + in_transport < self.high_water

    def send(self, payload: bytes) -> None:
        """Queue one frame; it is written with every other frame queued this loop iteration."""
        if self._closing:
            raise ConnectionClosed("cannot send: the connection is closed")
        size = len(payload)
        self._pending += (frame_header(size), payload)
        self._pending_bytes += size + 4
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def send_many(self, payloads: list[bytes]) -> None:
        """Queue several frames, in order (like `send` for each, for less)."""
        if self._closing:
            raise ConnectionClosed("cannot send: the connection is closed")
        pending = self._pending
        size = 0
        for payload in payloads:
            length = len(payload)
            pending += (frame_header(length), payload)
            size += length
        self._pending_bytes += size + HEADER * len(payloads)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def write_at_once(self, payload: bytes) -> None:
        """Write one frame now when nothing is queued before it, else queue it (`send`).

        For a sender that knows no other frame of this loop iteration will join it (see
        ``write_next_at_once``): it saves the flush callback of a request/response turn.
        """
        self.write_next_at_once = False
        transport = self._transport
        if self._pending or transport is None or self._closing or self._paused:
            self.send(payload)
            return
        transport.write(frame_header(len(payload)) + payload)

    def flush_soon(self) -> None:
        """Make sure a flush runs this loop iteration (or the next), sending or not."""
        if not self._flush_scheduled and not self._closing:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Write every queued frame now (normally done once per loop iteration)."""
        self._flush()

    def _flush(self) -> None:
        hook = self.before_flush
        if hook is not None and not self._closing:
            hook()  # may send: the flush is still marked scheduled, so no second one
        self._flush_scheduled = False
        pending = self._pending
        if not pending or self._transport is None or self._closing:
            return
        self._pending = []
        self._pending_bytes = 0
        self._transport.write(b"".join(pending))
        if self._drain_waiters and self.writable:
            self._wake_drainers()

    async def drain(self) -> None:
        """Wait until the connection is writable again; raises `ConnectionClosed` if it closes."""
        if self._closing:
            raise ConnectionClosed("connection closed")
        if self.writable:
            return
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Write what is queued, then close."""
        if self._transport is None or self._closing:
            return
        self._flush()
        self._closing = True
        self._transport.close()

    def abort(self) -> None:
        """Close at once, discarding anything queued."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: RemoteProtocolError) -> None:
        self._lost = exc
        self.abort()

    @property
    def error(self) -> BaseException | None:
        """Why the connection closed, when it closed on an error (e.g. `FrameTooLarge`)."""
        return self._lost

    @property
    def peername(self) -> object:
        if self._transport is None:
            return None
        return self._transport.get_extra_info("peername")

    @property
    def peercert(self) -> object:
        """The peer's TLS certificate (a dict) when the connection is TLS, else None."""
        if self._transport is None:
            return None
        return self._transport.get_extra_info("peercert")


def _split(address: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(address, tuple):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def connect(
    address: str | tuple[str, int],
    hello: Hello,
    *,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    expect_node: str | None = None,
    timeout: float = 5.0,
    max_frame: int = DEFAULT_MAX_FRAME,
    high_water: int = DEFAULT_HIGH_WATER,
) -> FramedConnection:
    """Open a connection to ``HOST:PORT`` and do the handshake; attach a receiver next.

    Raises `HandshakeRefused` when the server refuses us or answers for another cluster
    (or, with `expect_node`, another node); `OSError` / `TimeoutError` when it cannot be
    reached in `timeout` seconds.
    """
    host, port = _split(address)
    loop = asyncio.get_running_loop()
    if ssl is not None and server_hostname is None:
        server_hostname = host

    def factory() -> FramedConnection:
        return FramedConnection(max_frame=max_frame, high_water=high_water)

    async def open_and_greet() -> FramedConnection:
        _, conn = await loop.create_connection(
            factory, host, port, ssl=ssl, server_hostname=server_hostname
        )
        answer: asyncio.Future[bytes] = loop.create_future()

        def first(payload: bytes) -> None:
            if not answer.done():
                answer.set_result(payload)

        conn._on_first_frame = first
        conn.send(encode_handshake(hello))
        payload = await answer
        if not payload:
            hint = " (TLS: it may have refused our certificate)" if ssl is not None else ""
            raise ConnectionClosed(
                f"{host}:{port} closed the connection during the handshake"
                + (f" ({conn._lost})" if conn._lost else "")
                + hint
            )
        reply = decode_handshake(payload)
        if isinstance(reply, Refuse):
            conn.abort()
            raise HandshakeRefused(f"{host}:{port} refused the connection: {reply.reason}")
        if not isinstance(reply, Welcome):
            conn.abort()
            raise HandshakeRefused(f"{host}:{port} answered the handshake with a Hello")
        problem = None
        if reply.cluster != hello.cluster:
            problem = (
                f"cluster id mismatch: {host}:{port} (node {reply.node!r}) belongs to cluster "
                f"{reply.cluster!r}, we expected cluster {hello.cluster!r}"
            )
        elif expect_node is not None and reply.node != expect_node:
            problem = f"node id mismatch: {host}:{port} is node {reply.node!r}, not {expect_node!r}"
        if problem is not None:
            conn.abort()
            raise HandshakeRefused(problem)
        conn.remote = reply
        return conn

    return await asyncio.wait_for(open_and_greet(), timeout)


async def serve(
    address: str | tuple[str, int] | None,
    *,
    cluster: str,
    node: str,
    purposes: tuple[str, ...],
    accept: Callable[[FramedConnection, Hello], FrameReceiver],
    ssl: ssl_module.SSLContext | None = None,
    handshake_timeout: float = 5.0,
    max_frame: int = DEFAULT_MAX_FRAME,
    high_water: int = DEFAULT_HIGH_WATER,
    on_refused: Callable[[str], None] | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen on ``HOST:PORT`` (port 0 picks one); every connection is handshaken first.

    `accept(conn, hello)` returns the receiver for an accepted connection, or raises
    `HandshakeRefused` to refuse it with that reason. `on_refused` hears every refusal
    (for logs and tests). With `sock` (an already bound, listening socket, e.g. one
    inherited from a supervisor), `address` is ignored and may be None.
    """
    loop = asyncio.get_running_loop()

    def factory() -> FramedConnection:
        conn = FramedConnection(max_frame=max_frame, high_water=high_water)
        timer: asyncio.TimerHandle | None = None

        def refuse(reason: str) -> None:
            if on_refused is not None:
                on_refused(reason)
            with contextlib.suppress(ConnectionClosed):
                conn.send(encode_handshake(Refuse(reason)))
            conn.close()

        def first(payload: bytes) -> None:
            if timer is not None:
                timer.cancel()
            if not payload:
                return  # closed before saying hello
            try:
                hello = decode_handshake(payload)
                if not isinstance(hello, Hello):
                    raise HandshakeRefused("expected Hello as the first frame")
                check_hello(hello, cluster=cluster, purposes=purposes)
                receiver = accept(conn, hello)
            except HandshakeRefused as exc:
                refuse(str(exc))
                return
            conn.remote = hello
            conn.send(encode_handshake(Welcome(cluster=cluster, node=node)))
            conn.attach(receiver)

        def made(transport: asyncio.BaseTransport) -> None:
            nonlocal timer
            FramedConnection.connection_made(conn, transport)
            timer = loop.call_later(handshake_timeout, too_slow)

        def too_slow() -> None:
            if conn._on_first_frame is not None:
                conn._on_first_frame = None
                refuse(f"no handshake within {handshake_timeout} s")

        conn._on_first_frame = first
        conn.connection_made = made  # type: ignore[method-assign]
        return conn

    if sock is not None:
        return await loop.create_server(factory, sock=sock, ssl=ssl)
    if address is None:
        raise ValueError("serve() needs an address or a listening socket")
    host, port = _split(address)
    return await loop.create_server(factory, host, port, ssl=ssl)
