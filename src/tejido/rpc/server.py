"""The RPC server: implementations registered under (service, object id), served over frames.

Rules it implements (the wire itself is described in `tejido.rpc.wire`):

1. **Dispatch.** A `Call` names a service, an object id (``""`` for a plain service) and a
   method. An unknown one gets an ``unknown`` `Failure` naming what was not found;
   arguments are validated by decoding them with the method's ``args_type`` and a
   mismatch gets a ``bad_arguments`` `Failure` naming the parameter. Registrations can
   change at runtime (`Server.add` / `Server.remove`), which is how remote objects are
   exported under object ids.
2. **Eager start.** The implementation's coroutine is stepped once right away, in a
   `contextvars.Context` of the call's own (a copy of the connection's, with
   `current_call()` set). If it finishes without suspending, the reply is queued at once
   and no task is created; otherwise the rest runs in a task given that same context
   (see `tejido.rpc.inline`). So context variables the implementation sets (its own,
   `call_options`) never reach the next call on the connection, and a ``with
   call_options(...)`` around an await that suspends resets in the context it set in. Cheap
   methods therefore cost no task, and replies of one loop iteration leave in one write
   (the `FramedConnection` coalesces them). The frames of one read are handled in one
   pass; a plain unary call (no interceptors, deadline or metadata) is dispatched inline
   there, its reply queued with the others of that read. A read that is exactly one such
   call takes the fast path (`_Connection.data_received`, which the connection hands
   every read first): decoded, stepped and answered with one write in that one function,
   in a copy of a per-route context in which `current_call()` is set; whatever it cannot
   finish itself goes to the general methods with the frame already decoded, so the
   answers are the same either way.
3. **Deadlines and cancellation.** ``Call.timeout`` becomes a deadline on the loop clock,
   visible to the implementation through `current_call()` and inherited by the calls it
   makes; a task still running at the deadline is cancelled and the caller gets
   ``deadline``. A `Cancel` frame, or the connection closing, cancels the task (the
   implementation sees `asyncio.CancelledError`) and nothing more is sent for that call.
4. **Errors.** Declared `ServiceError`s travel by name; anything else as ``remote`` with
   its type, message and traceback text (see `tejido.rpc.errors.describe_error`).
5. **Bounded memory, other clients unaffected.** A connection whose client does not read
   its replies (the transport pushes back) stops being read until its replies drain, and
   so does one with more than ``max_calls_per_connection`` calls running; streams are
   credit-flow-controlled. A frame that cannot be decoded closes that connection with a
   `Goaway` naming the problem, and an oversized frame closes it before it is buffered;
   either is logged and nothing else is disturbed.
6. **Interceptors** wrap every call in order (the first is outermost):
   ``async def interceptor(ctx: CallContext, proceed) -> result`` may inspect
   ``ctx.metadata``, raise (e.g. `PermissionDenied`) or time ``await proceed()``.
7. **gRPC beside it.** ``serve(..., grpc="HOST:PORT")`` (or `Server.serve_grpc`) also
   serves the same implementation objects over grpcio (`tejido.rpc.grpc`, imported only
   then): every plain service registered at that moment (not object ids, which gRPC
   cannot address, nor tejido's own health service: gRPC gets the standard one). Health
   follows `Server.set_serving`; `Server.close` stops both. Services added later are
   served by tejido RPC only, since a started grpcio server takes no new services.
   Interceptors are tejido-only (gRPC has its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import ssl as ssl_module
import struct
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.net.connection import ConnectionClosed, FramedConnection
from tejido.net.connection import serve as net_serve
from tejido.net.frames import DEFAULT_MAX_FRAME
from tejido.net.handshake import Hello
from tejido.rpc.context import CallContext, Peer, _serving
from tejido.rpc.errors import ProtocolViolation, describe_error
from tejido.rpc.health import HEALTH_SERVICE, Health, HealthImpl, ServingStatus
from tejido.rpc.inline import DONE, InlineRunner, resume
from tejido.rpc.routes import Bound, Handler, Registry, Routes
from tejido.rpc.service import describe_service
from tejido.rpc.streams import Inbound, Outbound
from tejido.rpc.wire import (
    CALL,
    CLIENT_STREAM_WINDOW,
    END,
    FAILURE,
    GOAWAY,
    ITEM,
    REPLY,
    Call,
    Cancel,
    ClientBatch,
    Code,
    Credit,
    End,
    Item,
    batched,
    encoder,
    from_client,
)

if TYPE_CHECKING:
    from tejido.rpc.grpc import GrpcServer

__all__ = ["ServerInterceptor", "Server", "serve"]

_log = logging.getLogger("tejido.rpc")

#: ``async def interceptor(ctx, proceed) -> result``; ``proceed()`` runs the rest of the chain.
ServerInterceptor = Callable[[CallContext, Callable[[], Awaitable[Any]]], Awaitable[Any]]

_encode = encoder.encode
_decode_call = msgspec.msgpack.Decoder(Call).decode
#: How every `Call` payload starts: a msgpack array of 7, then the tag.
_CALL_HEAD = bytes([0x97, CALL])
_unpack_from = struct.Struct(">I").unpack_from
_pack = struct.Struct(">I").pack
_EMPTY: Mapping[str, str] = {}
_STREAMED = object()  # what a stream pump returns: End already sent


class _Active:
    """A call whose implementation is running in a task (or streaming)."""

    __slots__ = ("ctx", "handler", "inbound", "outbound", "quiet", "task", "timer")

    def __init__(self, handler: Handler, ctx: CallContext) -> None:
        self.handler = handler
        self.ctx = ctx
        self.task: asyncio.Task[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.inbound: Inbound[Any] | None = None
        self.outbound: Outbound | None = None
        #: Set when the caller no longer wants an answer (cancelled, or the connection went).
        self.quiet = False


class _Connection:
    """The server's side of one client connection (a `FrameReceiver`)."""

    def __init__(self, server: Server, conn: FramedConnection, hello: Hello) -> None:
        self.server = server
        self.conn = conn
        self.peer = Peer(conn.peername, hello.node)
        self.calls: dict[int, _Active] = {}
        self.oneway: set[asyncio.Task[Any]] = set()
        self.loop = asyncio.get_running_loop()
        self.write_blocked = False
        self.reading_paused = False
        #: Frames received while paused, replayed on resume (None while reading).
        self.backlog: list[bytes] | None = None
        self.drainer: asyncio.Task[None] | None = None
        self.routes = Routes(server._registry, inline=not server._interceptors)
        self.inline = InlineRunner()
        self.slots = self.routes.slots  # (the fast path's lookups, one attribute each)
        self.registry = self.routes.registry
        conn.divert(self.data_received)

    # ------------------------------------------------------------------ the fast path
    def data_received(self, data: bytes) -> None:
        """A read from the client: one plain unary call handled right here (rule 2).

        The connection hands every read here first (`FramedConnection.divert`). A read
        that is exactly one `Call` frame, on a bound slot of an inline method, without
        deadline or metadata, while nothing is queued for this client, is decoded,
        stepped and answered (one write) in this one function: no frame list, no send
        queue, no flush. Anything else goes the general way (the connection frames it and
        calls `frames_received`), and so does a call this path cannot finish itself
        (bad arguments, an error, a result that does not encode): those are handed to the
        general methods with the frame already decoded, so every answer is the same.
        """
        conn = self.conn
        size = len(data)
        if (
            size < 6
            or not data.startswith(_CALL_HEAD, 4)
            or conn._pending
            or conn._paused
            or conn._closing
            or self.backlog is not None
            or conn._decoder._buffer
            or _unpack_from(data, 0)[0] != size - 4
        ):
            FramedConnection.data_received(conn, data)
            return
        try:
            frame = _decode_call(data[4:])
        except msgspec.MsgspecError:
            FramedConnection.data_received(conn, data)  # reports the violation
            return
        route = self.slots.get(frame.target)  # type: ignore[arg-type]
        cid = frame.id
        handler = route.inline if route is not None else None
        if (
            handler is None
            or route is None
            or route.generation != self.registry.generation
            or cid <= 0
            or frame.timeout is not None
            or frame.metadata is not None
            or cid in self.calls
        ):
            self.general(frame)
            return
        try:
            values = handler.decode_args(frame.args)  # validates
        except msgspec.MsgspecError:
            self.general(frame)  # says what is wrong with them
            return
        if handler.struct_args:
            values = msgspec.structs.astuple(values)
        own = route.base
        if own is None:
            own = route.serving_context(self.peer)
        own = own.copy()  # the call's own (rule 2): current_call() is set in it
        runner = self.inline
        try:
            yielded = own.run(runner.driver.send, (handler.fn, values))
        except BaseException:
            runner.restart()
            raise
        if yielded is not DONE:  # suspended: the rest runs in a task
            ctx = route.ctx
            assert ctx is not None
            route.forget()  # the task keeps the context
            task = self.loop.create_task(resume(runner.detach(), yielded), context=own)
            self.track(cid, handler, ctx, task, None)
            return
        outcome = runner.outcome
        value = outcome.value
        outcome.value = None
        ctx = route.ctx
        if outcome.failed or (ctx is not None and ctx._extra is not None):
            route.forget()  # marked: not shared with later calls
        if outcome.failed:
            self.answer(self.fail_with, cid, handler, value)
            return
        try:
            payload = _encode((REPLY, cid, value))
        except (TypeError, ValueError, OverflowError):
            self.answer(self.reply, cid, handler, value)  # says why it is not encodable
            return
        transport = conn._transport
        assert transport is not None
        # (Cheaper than encoding into a buffer behind the prefix: that buffer must grow.)
        transport.write(_pack(len(payload)) + payload)

    def general(self, frame: Call) -> None:
        """A call the fast path does not take, already decoded: the general way."""
        self.answer(self.call, frame)

    def answer(self, method: Callable[..., None], *args: Any) -> None:
        """Run `method` (which may send) and write what it queued at once, in one write."""
        conn = self.conn
        scheduled = conn._flush_scheduled
        conn._flush_scheduled = True  # what it sends waits for the flush below
        try:
            method(*args)
        finally:
            conn._flush_scheduled = scheduled
        if conn._pending and not conn._closing:
            conn.flush()

    # ------------------------------------------------------------------ frames in
    def frame_received(self, payload: bytes) -> None:
        self.frames_received([payload])

    def frames_received(self, payloads: list[bytes]) -> None:
        """Handle the frames of one read, in order (the hot path, rule 2, is inlined).

        The hot path is written out here, not in helper methods, because a Python call
        costs as much as a good part of it. Consecutive inline calls that share one
        context (`tejido.rpc.routes`, rule 4) set the call context variable once; the
        inline calls' replies are collected and leave together, as one batch frame when
        there are several, when the read is done.
        """
        if self.backlog is not None:
            self.backlog.extend(payloads)  # paused (rule 5): replayed once replies drain
            return
        conn = self.conn
        if not conn.writable:
            self.backlog = list(payloads)
            self.block_on_writes()
            return
        replies: list[bytes] = []
        token: contextvars.Token[CallContext | None] | None = None
        current: CallContext | None = None
        try:
            decode = from_client.decode
            routes = self.routes
            slots = routes.slots
            registry = routes.registry
            calls = self.calls
            runner = self.inline
            for index, payload in enumerate(payloads):
                try:
                    decoded = decode(payload)
                except msgspec.DecodeError as exc:
                    self.violation(f"undecodable frame of {len(payload)} bytes ({exc})")
                    return
                frames = decoded.frames if decoded.__class__ is ClientBatch else (decoded,)
                for position, frame in enumerate(frames):
                    if frame.__class__ is Call:
                        route = slots.get(frame.target)  # type: ignore[arg-type]
                        cid = frame.id
                        handler = route.inline if route is not None else None
                        if (
                            handler is not None
                            and route is not None
                            and route.generation == registry.generation
                            and cid > 0
                            and frame.timeout is None
                            and frame.metadata is None
                            and cid not in calls
                        ):
                            # A unary call without deadline or metadata, stepped right here.
                            try:
                                values = handler.decode_args(frame.args)  # validates
                            except msgspec.MsgspecError as exc:
                                self.fail(
                                    cid,
                                    Code.BAD_ARGUMENTS,
                                    "BadArguments",
                                    handler.bad_arguments(exc),
                                )
                                continue
                            if handler.struct_args:
                                values = msgspec.structs.astuple(values)
                            ctx = route.ctx or route.context(None, None, self.peer)
                            if ctx is not current:
                                if token is not None:
                                    _serving.reset(token)
                                token = _serving.set(ctx)
                                current = ctx
                            own = copy_context()  # the call's own (rule 2)
                            try:
                                yielded = own.run(runner.driver.send, (handler.fn, values))
                            except BaseException:
                                runner.restart()
                                raise
                            if yielded is not DONE:  # suspended: the rest runs in a task
                                route.forget()  # the task keeps it
                                task = self.loop.create_task(
                                    resume(runner.detach(), yielded), context=own
                                )
                                self.track(cid, handler, ctx, task, None)
                            else:
                                outcome = runner.outcome
                                value = outcome.value
                                outcome.value = None
                                if ctx._extra is not None or outcome.failed:
                                    route.forget()  # marked: not shared with later calls
                                if outcome.failed:
                                    self.fail_with(cid, handler, value)
                                    continue
                                try:
                                    replies.append(_encode((REPLY, cid, value)))
                                except (TypeError, ValueError, OverflowError):
                                    self.reply(cid, handler, value)  # says why it is not encodable
                                continue
                        else:
                            if token is not None:
                                _serving.reset(token)
                                token = current = None
                            self.call(frame)
                    else:
                        if token is not None:
                            _serving.reset(token)
                            token = current = None
                        self.dispatch(frame)
                    if conn._closing:
                        return
                    # Reading may have paused meanwhile (rule 5); the declared type keeps
                    # mypy from narrowing it to the None checked on entry.
                    backlog: list[bytes] | None = self.backlog
                    if backlog is not None:
                        left = list(frames[position + 1 :])
                        if left:  # the rest of this batch, as one frame again
                            backlog.append(_encode(ClientBatch(left)))
                        backlog.extend(payloads[index + 1 :])
                        return
        finally:
            if token is not None:
                _serving.reset(token)
            if replies and not conn._closing:
                if len(replies) == 1:
                    conn.send(replies[0])
                else:
                    conn.send_many(batched(replies))  # the inline calls' replies

    def dispatch(self, frame: Cancel | Item | End | Credit) -> None:
        if isinstance(frame, Cancel):
            self.cancel(frame.id)
        elif isinstance(frame, Item):
            self.item(frame)
        elif isinstance(frame, Credit):
            active = self.calls.get(frame.id)
            if active is not None and active.outbound is not None:
                active.outbound.grant(frame.count)
        else:
            active = self.calls.get(frame.id)
            if active is not None and active.inbound is not None:
                active.inbound.finish()

    def connection_lost(self, exc: BaseException | None) -> None:
        exc = exc or self.conn.error
        if exc is not None:
            _log.warning("rpc: connection from %s closed: %s", self.peer.address, exc)
        self.drop_calls()
        self.server._connections.discard(self)
        self.peer._close()
        for callback in self.server._on_disconnect:
            callback(self.peer)

    def writing_paused(self) -> None:
        self.block_on_writes()

    def writing_resumed(self) -> None:
        self.write_blocked = False
        self.update_reading()

    def block_on_writes(self) -> None:
        """Replies are backed up: stop taking requests until they drain (rule 5)."""
        self.write_blocked = True
        self.update_reading()
        if self.drainer is None and not self.conn.is_closing:
            self.drainer = self.loop.create_task(self.wait_writable())

    async def wait_writable(self) -> None:
        try:
            await self.conn.drain()
        except ConnectionClosed:
            return
        finally:
            self.drainer = None
        self.write_blocked = False
        self.update_reading()

    def update_reading(self) -> None:
        """Pause or resume reading this client's requests (rule 5).

        Frames of a chunk already read while paused wait in ``backlog`` (bounded by one
        read's worth of bytes) and are replayed, in order, when reading resumes.
        """
        pause = self.write_blocked or len(self.calls) >= self.server.max_calls_per_connection
        if pause == self.reading_paused or self.conn.is_closing:
            return
        self.reading_paused = pause
        if pause:
            if self.backlog is None:
                self.backlog = []
            self.conn.pause_reading()
            return
        self.conn.resume_reading()
        backlog, self.backlog = self.backlog, None
        if not backlog:
            return
        for index, payload in enumerate(backlog):
            again = self.paused_backlog()
            if again is not None:  # paused again while replaying
                again.extend(backlog[index:])
                return
            self.frame_received(payload)

    def paused_backlog(self) -> list[bytes] | None:
        return self.backlog

    # ------------------------------------------------------------------ calls
    def call(self, frame: Call) -> None:
        """Any call the inlined hot path of `frames_received` does not take."""
        cid = frame.id
        if cid < 0 or cid in self.calls:
            self.fail(cid, Code.PROTOCOL, "ProtocolViolation", f"call id {cid} is already in use")
            return
        route = self.routes.route(frame.target)
        if isinstance(route, str):
            self.fail(cid, Code.PROTOCOL, "ProtocolViolation", route)
            return
        handler = route.handler
        if isinstance(handler, str):
            self.fail(cid, Code.UNKNOWN, "UnknownMethod", handler)
            return
        try:
            values = handler.args(frame.args)
        except msgspec.MsgspecError as exc:
            self.fail(cid, Code.BAD_ARGUMENTS, "BadArguments", handler.bad_arguments(exc))
            return
        timeout = frame.timeout
        deadline = None
        if timeout is not None:
            if timeout <= 0:
                self.fail(cid, Code.DEADLINE, "DeadlineExceeded", "deadline already passed")
                return
            deadline = self.loop.time() + timeout
        ctx = route.context(frame.metadata, deadline, self.peer)
        if ctx is route.ctx:
            route.forget()  # this call keeps it (rule 4 of tejido.rpc.routes)
        kind = handler.kind
        if kind in ("server_stream", "bidi_stream") and frame.window <= 0:
            self.fail(cid, Code.PROTOCOL, "ProtocolViolation", "a stream window must be positive")
            return
        active: _Active | None = None
        if kind == "unary" or kind == "oneway":
            fn = handler.fn
            if self.server._interceptors:
                coro = self.server._intercept(ctx, functools.partial(fn, *values))
            else:
                coro = fn(*values)
        else:
            active = _Active(handler, ctx)
            coro = self.open_stream(cid, active, values, frame.window)
        self.start(cid, handler, ctx, coro, active)

    def start(
        self,
        cid: int,
        handler: Handler,
        ctx: CallContext,
        coro: Coroutine[Any, Any, Any],
        active: _Active | None,
    ) -> None:
        """Step the coroutine once (rule 2); reply at once or continue it in a task."""
        own = copy_context()  # the call's own: what it sets stays with it (rule 2)
        own.run(_serving.set, ctx)
        try:
            waiting = own.run(coro.send, None)
        except StopIteration as stop:
            if cid:
                self.reply(cid, handler, stop.value)
            return
        except Exception as exc:
            if cid:
                self.fail_with(cid, handler, exc)
            else:
                _log.warning("rpc: oneway %s failed: %r", handler.where, exc)
            return
        task = self.loop.create_task(resume(coro, waiting), context=own)
        self.track(cid, handler, ctx, task, active)

    def track(
        self,
        cid: int,
        handler: Handler,
        ctx: CallContext,
        task: asyncio.Task[Any],
        active: _Active | None,
    ) -> None:
        """Remember a call that continues in `task` (for cancel, deadline and its reply)."""
        if not cid:
            self.oneway.add(task)
            task.add_done_callback(functools.partial(self.oneway_done, handler))
            return
        if active is None:
            active = _Active(handler, ctx)
        active.task = task
        self.calls[cid] = active
        if ctx.deadline is not None:
            active.timer = self.loop.call_at(ctx.deadline, self.expire, cid)
        task.add_done_callback(functools.partial(self.finished, cid, active))
        if len(self.calls) >= self.server.max_calls_per_connection:
            self.update_reading()

    def open_stream(
        self, cid: int, active: _Active, values: tuple[Any, ...], window: int
    ) -> Coroutine[Any, Any, Any]:
        handler = active.handler
        spec = handler.spec
        kwargs: dict[str, Any] = {}
        if spec.stream_param is not None:
            assert handler.item_decoder is not None
            active.inbound = Inbound(
                handler.item_decoder,
                CLIENT_STREAM_WINDOW,
                functools.partial(self.grant, cid),
                f"{handler.where} argument {spec.stream_param!r}",
            )
            kwargs[spec.stream_param] = active.inbound
        fn = handler.fn

        async def opener() -> Any:
            opened = fn(*values, **kwargs)
            if inspect.isawaitable(opened):
                opened = await opened
            return opened

        if spec.kind == "client_stream":
            body: Callable[[], Awaitable[Any]] = opener
        else:
            active.outbound = Outbound(window)
            body = functools.partial(self.pump, cid, active, opener)
        if self.server._interceptors:
            return self.server._intercept(active.ctx, body)
        return body()  # type: ignore[return-value]

    async def pump(self, cid: int, active: _Active, opener: Callable[[], Awaitable[Any]]) -> object:
        """Send a server stream's items as credit allows; End when it is exhausted."""
        iterator = await opener()
        outbound = active.outbound
        assert outbound is not None
        conn = self.conn
        try:
            async for item in iterator:
                await outbound.acquire()
                conn.send(_encode((ITEM, cid, item)))
                if not conn.writable:
                    await conn.drain()
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        conn.send(_encode((END, cid)))
        return _STREAMED

    def item(self, frame: Item) -> None:
        active = self.calls.get(frame.id)
        if active is None or active.inbound is None:
            return  # the call already ended; late items are dropped
        try:
            active.inbound.push(frame.value)
        except ProtocolViolation as exc:
            self.cancel(frame.id)
            self.fail(frame.id, Code.PROTOCOL, "ProtocolViolation", str(exc))

    def grant(self, cid: int, count: int) -> None:
        if not self.conn.is_closing:
            self.conn.send(_encode((4, cid, count)))

    def cancel(self, cid: int) -> None:
        active = self.calls.pop(cid, None)
        if active is None:
            return
        active.quiet = True
        if active.task is not None:
            active.task.cancel()
        if active.outbound is not None:
            active.outbound.close(ProtocolViolation("call cancelled"))
        self.update_reading()

    def expire(self, cid: int) -> None:
        active = self.calls.get(cid)
        if active is not None and active.task is not None:
            active.timer = None
            active.task.cancel("deadline")

    def finished(self, cid: int, active: _Active, task: asyncio.Task[Any]) -> None:
        if self.calls.get(cid) is active:
            del self.calls[cid]
            if self.reading_paused:
                self.update_reading()
        if active.timer is not None:
            active.timer.cancel()
        if active.quiet or self.conn.is_closing:
            if not task.cancelled():
                task.exception()  # retrieved: nobody is waiting for it
            return
        handler = active.handler
        if task.cancelled():
            deadline = active.ctx.deadline
            if deadline is not None and self.loop.time() >= deadline:
                self.fail(
                    cid, Code.DEADLINE, "DeadlineExceeded", f"{handler.where}: deadline exceeded"
                )
            else:
                self.fail(cid, Code.CANCELLED, "Cancelled", f"{handler.where} was cancelled")
            return
        exc = task.exception()
        if exc is not None:
            self.fail_with(cid, handler, exc)
            return
        result = task.result()
        if result is not _STREAMED:
            self.reply(cid, handler, result)

    def oneway_done(self, handler: Handler, task: asyncio.Task[Any]) -> None:
        self.oneway.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("rpc: oneway %s failed: %r", handler.where, task.exception())

    # ------------------------------------------------------------------ frames out
    def reply(self, cid: int, handler: Handler, value: Any) -> None:
        try:
            payload = _encode((REPLY, cid, value))
        except (TypeError, ValueError, OverflowError) as exc:
            self.fail(
                cid,
                Code.BAD_ARGUMENTS,
                "BadArguments",
                f"{handler.where}: the result cannot be encoded ({exc})",
            )
            return
        if not self.conn.is_closing:
            self.conn.send(payload)

    def fail_with(self, cid: int, handler: Handler, exc: BaseException) -> None:
        code, type_name, message, text = describe_error(exc, handler.declared)
        if code == Code.REMOTE:
            _log.info("rpc: %s raised %s: %s", handler.where, type_name, message)
        self.fail(cid, code, type_name, message, text)

    def fail(self, cid: int, code: str, type_name: str, message: str, text: str = "") -> None:
        if cid and not self.conn.is_closing:
            self.conn.send(_encode((FAILURE, cid, code, type_name, message, text)))

    def violation(self, reason: str) -> None:
        """The client broke the protocol: say why, close this connection only."""
        _log.warning("rpc: protocol violation by %s: %s; closing it", self.peer.address, reason)
        self.drop_calls()
        if not self.conn.is_closing:
            with contextlib.suppress(ConnectionClosed):
                self.conn.send(_encode((GOAWAY, f"protocol violation: {reason}")))
            self.conn.close()

    def drop_calls(self) -> None:
        calls, self.calls = self.calls, {}
        for active in calls.values():
            active.quiet = True
            if active.task is not None:
                active.task.cancel()
            if active.inbound is not None:
                active.inbound.abort(ProtocolViolation("the connection closed"))
            if active.outbound is not None:
                active.outbound.close(ProtocolViolation("the connection closed"))
        for task in list(self.oneway):
            task.cancel()


class Server:
    """Serves registered implementations; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        cluster: str = "tejido",
        node: str = "",
        interceptors: Iterable[ServerInterceptor] = (),
        max_calls_per_connection: int = 1024,
    ) -> None:
        self.cluster = cluster
        self.node = node
        self._interceptors = tuple(interceptors)
        self.max_calls_per_connection = max_calls_per_connection
        self._registry = Registry()
        self._statuses: dict[str, ServingStatus] = {"": ServingStatus.SERVING}
        self._connections: set[_Connection] = set()
        self._on_disconnect: list[Callable[[Peer], None]] = []
        self._listener: asyncio.Server | None = None
        self._grpc: GrpcServer | None = None
        #: Service name -> its full gRPC name, for the services the gRPC side serves.
        self._grpc_names: dict[str, str] = {}
        self.add(Health, HealthImpl(self._statuses))

    # ------------------------------------------------------------------ registry
    def add(self, interface: type, impl: object, *, object_id: str = "") -> None:
        """Serve `impl` as `interface` (under `object_id`, for remote objects)."""
        spec = describe_service(interface)
        key = (spec.name, object_id)
        if key in self._registry:
            where = f" object {object_id!r}" if object_id else ""
            raise LocalProtocolError(f"{spec.name}{where} is already registered")
        self._registry.add(key, Bound(spec, impl))
        if not object_id:
            self._statuses.setdefault(spec.name, ServingStatus.SERVING)

    def remove(self, interface: type | str, *, object_id: str = "") -> None:
        """Stop serving a registration; calls to it get ``unknown`` from now on."""
        name = interface if isinstance(interface, str) else describe_service(interface).name
        self._registry.remove((name, object_id))
        if not object_id:
            self._statuses.pop(name, None)

    def set_serving(self, interface: type | str, serving: bool) -> None:
        """Set the health status of one service (``""`` for the whole server)."""
        name = interface if isinstance(interface, str) else describe_service(interface).name
        if name == HEALTH_SERVICE:
            raise LocalProtocolError("the health service is always serving")
        status = ServingStatus.SERVING if serving else ServingStatus.NOT_SERVING
        self._statuses[name] = status
        if self._grpc is not None:
            self._grpc_status(name, serving)

    def _grpc_status(self, name: str, serving: bool) -> None:
        """Mirror a health change on the gRPC side (rule 7), for the names it serves."""
        from tejido.rpc.grpc import HealthStatus

        assert self._grpc is not None
        full = {"": "", **self._grpc_names}
        if name in full:
            status = HealthStatus.SERVING if serving else HealthStatus.NOT_SERVING
            self._grpc.set_status(full[name], status)

    def on_disconnect(self, callback: Callable[[Peer], None]) -> None:
        """Call `callback(peer)` whenever a client connection closes."""
        self._on_disconnect.append(callback)

    def _intercept(
        self, ctx: CallContext, proceed: Callable[[], Awaitable[Any]]
    ) -> Coroutine[Any, Any, Any]:
        call = proceed
        for interceptor in reversed(self._interceptors):
            call = functools.partial(interceptor, ctx, call)
        return call()  # type: ignore[return-value]

    # ------------------------------------------------------------------ network
    def _accept(self, conn: FramedConnection, hello: Hello) -> _Connection:
        receiver = _Connection(self, conn, hello)
        self._connections.add(receiver)
        return receiver

    async def listen(
        self,
        address: str | tuple[str, int],
        *,
        ssl: ssl_module.SSLContext | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._listener = await net_serve(
            address,
            cluster=self.cluster,
            node=self.node,
            purposes=("rpc",),
            accept=self._accept,
            ssl=ssl,
            max_frame=max_frame,
            on_refused=lambda reason: _log.warning("rpc: refused a connection: %s", reason),
        )

    @property
    def port(self) -> int:
        """The TCP port it listens on (useful after binding port 0)."""
        if self._listener is None or not self._listener.sockets:
            raise LocalProtocolError("the server is not listening")
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        if self._listener is None or not self._listener.sockets:
            raise LocalProtocolError("the server is not listening")
        host, port = self._listener.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def grpc_port(self) -> int:
        """The TCP port the gRPC side listens on (rule 7)."""
        if self._grpc is None:
            raise LocalProtocolError("this server does not serve gRPC (serve(..., grpc=...))")
        return self._grpc.port

    async def serve_grpc(
        self,
        address: str,
        *,
        credentials: Any = None,
        options: Iterable[tuple[str, Any]] = (),
    ) -> int:
        """Also serve the plain services registered now over gRPC (rule 7); the port.

        `credentials` (``grpc.ssl_server_credentials(...)``) serves TLS; `options` go to
        ``grpc.aio.server``.
        """
        from tejido.rpc.grpc import GrpcServer

        if self._grpc is not None:
            raise LocalProtocolError("this server already serves gRPC")
        served = [
            bound
            for (name, object_id), bound in self._registry.entries.items()
            if not object_id and name != HEALTH_SERVICE
        ]
        grpc_server = GrpcServer(
            *((bound.spec.interface, bound.impl) for bound in served), options=tuple(options)
        )
        await grpc_server.start(address, credentials)
        self._grpc = grpc_server
        names = grpc_server.services  # in the order given, then the health service
        self._grpc_names = {bound.spec.name: names[i] for i, bound in enumerate(served)}
        for name, status in self._statuses.items():
            if status is not ServingStatus.SERVING:
                self._grpc_status(name, False)
        return grpc_server.port

    @property
    def peers(self) -> list[Peer]:
        """The connections currently open."""
        return [connection.peer for connection in self._connections]

    async def close(self, *, grpc_grace_s: float | None = None) -> None:
        """Stop listening, mark everything not serving, close every connection.

        A gRPC side (rule 7) stops too; its running calls get `grpc_grace_s` to finish
        (None: cancelled at once, like the tejido calls).
        """
        for name in self._statuses:
            self._statuses[name] = ServingStatus.NOT_SERVING
        if self._listener is not None:
            self._listener.close()
        for connection in list(self._connections):
            connection.drop_calls()
            connection.conn.close()
        grpc_server, self._grpc = self._grpc, None
        if grpc_server is not None:
            await grpc_server.stop(grpc_grace_s)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def serve(
    address: str | tuple[str, int],
    services: Mapping[type, object] | None = None,
    *,
    interceptors: Iterable[ServerInterceptor] = (),
    ssl: ssl_module.SSLContext | None = None,
    cluster: str = "tejido",
    node: str = "",
    max_frame: int = DEFAULT_MAX_FRAME,
    max_calls_per_connection: int = 1024,
    grpc: str | None = None,
    grpc_credentials: Any = None,
    grpc_options: Iterable[tuple[str, Any]] = (),
) -> Server:
    """Serve ``{Interface: implementation}`` on ``HOST:PORT`` (port 0 picks a free one).

    With ``grpc="HOST:PORT"`` the same implementations are served over gRPC as well
    (rule 7; ``server.grpc_port``), with `grpc_credentials` for TLS
    (``grpc.ssl_server_credentials(...)``) and `grpc_options` for ``grpc.aio.server``.
    """
    server = Server(
        cluster=cluster,
        node=node,
        interceptors=interceptors,
        max_calls_per_connection=max_calls_per_connection,
    )
    for interface, impl in (services or {}).items():
        server.add(interface, impl)
    await server.listen(address, ssl=ssl, max_frame=max_frame)
    if grpc is not None:
        try:
            await server.serve_grpc(grpc, credentials=grpc_credentials, options=grpc_options)
        except BaseException:
            await server.close()
            raise
    return server
