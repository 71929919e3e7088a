"""One client connection to one server: calls in flight by id, streams, cancellation.

A `Channel` is the `FrameReceiver` of a handshaken `FramedConnection`. Each call gets the
next id and a future in ``calls``; the reply frame completes the future and the awaiting
coroutine decodes the result with the method's result type (so a server that sends the
wrong type is a `BadArguments` at the caller, never a silently wrong value). Rules:

1. A call whose caller is cancelled, or whose deadline passes, is removed at once and a
   `Cancel` frame tells the server to stop; a reply that still arrives is dropped.
2. When the connection is lost every call in flight fails with `Unavailable`; a frame the
   client cannot decode is a `ProtocolViolation` that fails every call and closes.
3. A call that was never written (the channel was already closed) fails with `NotSent`, a
   `Unavailable` that the client may safely retry on another endpoint whatever the
   method's idempotency.
4. Streams: a `ServerStream` (server and bidi streaming) receives items through a
   credit-flow-controlled `Inbound`; client-side items are sent by `send_items` as the
   server grants credit.
5. The connection hands every read to `Channel.data_received` first: a read that is
   exactly one `Reply` completes its future there; any other read is framed by the
   connection and handled by `frames_received`, which treats that same frame alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
from collections.abc import AsyncIterable, Awaitable, Callable, Generator, Mapping
from typing import Any, Generic, TypeVar

import msgspec

from tejido.net.connection import ConnectionClosed, FramedConnection
from tejido.rpc.errors import (
    BadArguments,
    DeadlineExceeded,
    ProtocolViolation,
    ServiceError,
    Unavailable,
    error_from_wire,
)
from tejido.rpc.streams import Inbound, Outbound
from tejido.rpc.wire import (
    BATCH_BYTES,
    CALL,
    CANCEL,
    CLIENT_STREAM_WINDOW,
    CREDIT,
    END,
    ITEM,
    MAX_SLOTS,
    REPLY,
    SERVER_STREAM_WINDOW,
    Credit,
    End,
    Failure,
    Goaway,
    Item,
    Reply,
    ServerBatch,
    Target,
    batch_frame,
    encoder,
    from_server,
)

__all__ = ["Channel", "MethodCall", "NotSent", "OpenStream", "ServerStream"]

T = TypeVar("T")
_encode = encoder.encode
_decode_reply = msgspec.msgpack.Decoder(Reply).decode
#: How every `Reply` payload starts: a msgpack array of 3, then the tag.
_REPLY_HEAD = bytes([0x93, REPLY])
_unpack_from = struct.Struct(">I").unpack_from
#: Futures are made on the running loop (the channel's): ``Future()`` finds it faster than
#: ``loop.create_future()`` on uvloop.
_Future = asyncio.Future
#: Calls batched in one loop iteration are written as soon as this many are queued,
#: rather than all at the end of the iteration, so that the server works on them while
#: the client makes the next ones (pipelining instead of taking turns).
PIPELINE_CALLS = 32
#: A call encoded to at most this many bytes may join the iteration's batch; a larger one
#: is written as a frame of its own. A batch holds at most `PIPELINE_CALLS` calls, so it
#: stays within `BATCH_BYTES` without counting its bytes.
SMALL_CALL = BATCH_BYTES // PIPELINE_CALLS
#: A call's arguments: the args Struct, or the plain tuple of every parameter's value
#: (both encode to the same msgpack array).
Args = msgspec.Struct | tuple[Any, ...]


class NotSent(Unavailable):
    """The call was never written to the server (safe to retry anywhere)."""


class MethodCall:
    """What a channel needs to know about one method (built once per stub method).

    ``channel`` and ``slot`` remember the method slot (`tejido.rpc.wire`, rule 1) last
    bound for it, on that channel, so the next call there sends just the number.
    """

    __slots__ = (
        "channel",
        "declared",
        "decode_result",
        "idempotent",
        "item_decoder",
        "key",
        "kind",
        "method",
        "object_id",
        "service",
        "slot",
        "where",
    )

    def __init__(
        self,
        service: str,
        method: str,
        object_id: str,
        kind: str,
        result: Any,
        stream_item: Any,
        idempotent: bool,
        declared: Mapping[str, type[ServiceError]],
    ) -> None:
        self.service = service
        self.method = method
        self.object_id = object_id
        self.kind = kind
        self.where = f"{service}.{method}"
        decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(result)
        self.decode_result = decoder.decode
        self.item_decoder = decoder
        self.idempotent = idempotent
        self.declared = declared
        self.key = (service, method, object_id)
        self.channel: Channel | None = None
        self.slot = 0
        del stream_item

    def result(self, frame: Reply | Failure) -> Any:
        """The call's outcome: the decoded result, or the error it failed with (raised)."""
        if frame.__class__ is Reply:
            try:
                return self.decode_result(frame.value)
            except msgspec.MsgspecError as exc:
                raise BadArguments(
                    f"{self.where}: the server returned a result that does not match the "
                    f"interface: {exc}"
                ) from None
        raise self.failure(frame)  # type: ignore[arg-type]

    def failure(self, frame: Failure) -> Exception:
        """The error a `Failure` frame stands for."""
        return error_from_wire(
            frame.code, frame.error_type, frame.message, frame.traceback, self.declared
        )


class Channel:
    """Calls multiplexed over one connection (see the module docstring)."""

    def __init__(self, conn: FramedConnection, address: str, max_frame: int) -> None:
        self.conn = conn
        self.address = address
        self.max_frame = max_frame
        self.loop = asyncio.get_running_loop()
        self.calls: dict[int, asyncio.Future[Reply | Failure]] = {}
        self.streams: dict[int, OpenStream] = {}
        self.senders: dict[int, Outbound] = {}
        self.error: Unavailable | ProtocolViolation | None = None
        #: The id the next call gets (ids are never reused on a connection).
        self.next_id = 1
        #: Method slots bound on this connection, by (service, method, object id).
        self.slots: dict[tuple[str, str, str], int] = {}
        self.lost: list[Callable[[Channel], None]] = []
        #: Encoded unary calls of this loop iteration (each at most `SMALL_CALL` bytes, at
        #: most `PIPELINE_CALLS` of them), written as one `ClientBatch` when the connection
        #: flushes (wire rule 6).
        self.batch: list[bytes] = []
        #: The id of the first call in `batch`. Nothing is written while a batch waits
        #: (every other send flushes it first), so the calls in flight with this id or a
        #: later one are exactly the batched ones (rule 3: never sent if it closes).
        self.batch_first = 0
        conn.before_flush = self.flush_batch
        conn.attach(self)
        conn.divert(self.data_received)

    @property
    def alive(self) -> bool:
        return self.error is None

    @property
    def outstanding(self) -> int:
        return len(self.calls) + len(self.streams)

    # ------------------------------------------------------------------ frames in
    def data_received(self, data: bytes) -> None:
        """A read from the server: one `Reply` frame completes its call right here.

        The connection hands every read here first (`FramedConnection.divert`); a read
        that is exactly one `Reply` frame is decoded and completes its future without a
        frame list; anything else goes the general way (`frames_received`), which handles
        that same frame the same way.
        """
        conn = self.conn
        size = len(data)
        if (
            size < 6
            or not data.startswith(_REPLY_HEAD, 4)
            or conn._closing
            or conn._decoder._buffer
            or _unpack_from(data, 0)[0] != size - 4
        ):
            FramedConnection.data_received(conn, data)
            return
        try:
            frame = _decode_reply(data[4:])
        except msgspec.MsgspecError:
            FramedConnection.data_received(conn, data)  # reports the violation
            return
        calls = self.calls
        # The last call in flight came back: its caller writes its next call at once.
        at_once = len(calls) == 1 and not self.streams
        future = calls.pop(frame.id, None)
        if future is not None:
            try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                future.set_result(frame)
            except asyncio.InvalidStateError:
                pass  # cancelled by its caller meanwhile (rule 1)
        else:
            self.dispatch(frame)  # a stream's, or a late one: as `frames_received` does
            if self.error is not None:
                return
        if calls or future is not None:
            conn.write_next_at_once = at_once
        if not at_once:
            conn.flush_soon()  # behind the task this woke (see `FramedConnection`)

    def frames_received(self, payloads: list[bytes]) -> None:
        """The frames of one read: replies complete their calls' futures in one pass.

        When the read completed the last call in flight, at most one task was woken to
        send (a caller making one call at a time): its next call is written at once
        instead of behind a flush callback (`FramedConnection.write_next_at_once`).
        """
        decode = from_server.decode
        calls = self.calls
        if calls:
            self.conn.write_next_at_once = len(calls) == 1 and not self.streams
        for payload in payloads:
            try:
                decoded = decode(payload)
            except msgspec.DecodeError as exc:
                self.broken(ProtocolViolation(f"{self.address} sent an undecodable frame ({exc})"))
                return
            frames = decoded.frames if decoded.__class__ is ServerBatch else (decoded,)
            for frame in frames:
                if frame.__class__ is Reply:
                    future = calls.pop(frame.id, None)
                    if future is not None:
                        try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
                            future.set_result(frame)
                        except asyncio.InvalidStateError:
                            pass  # cancelled by its caller meanwhile (rule 1)
                        continue
                self.dispatch(frame)
                if self.error is not None:
                    return

    def frame_received(self, payload: bytes) -> None:
        self.frames_received([payload])

    def dispatch(self, frame: Reply | Failure | Item | End | Credit | Goaway) -> None:
        """Any frame but a reply to a unary call (handled inline by `frames_received`)."""
        if isinstance(frame, Reply | Failure):
            cid = frame.id
            future = self.calls.pop(cid, None)
            if future is not None:
                if not future.done():
                    future.set_result(frame)
            else:
                stream = self.streams.pop(cid, None)
                if stream is not None:
                    stream.failed(frame)
        elif isinstance(frame, Item):
            stream = self.streams.get(frame.id)
            if stream is not None:
                try:
                    stream.inbound.push(frame.value)
                except ProtocolViolation as exc:
                    self.broken(exc)
        elif isinstance(frame, End):
            stream = self.streams.pop(frame.id, None)
            if stream is not None:
                stream.ended()
        elif isinstance(frame, Credit):
            sender = self.senders.get(frame.id)
            if sender is not None:
                sender.grant(frame.count)
        else:
            reason = frame.reason
            if reason.startswith("protocol violation"):
                self.broken(ProtocolViolation(f"{self.address}: {reason}"))
            else:
                self.broken(Unavailable(f"{self.address} closed the connection: {reason}"))

    def connection_lost(self, exc: BaseException | None) -> None:
        detail = f": {exc}" if exc is not None else ""
        self.broken(Unavailable(f"connection to {self.address} lost{detail}"))

    def broken(self, error: Unavailable | ProtocolViolation) -> None:
        """Fail everything in flight with `error` and close (idempotent)."""
        if self.error is None:
            self.error = error
        first = self.batch_first
        unsent = [cid for cid in self.calls if cid >= first] if self.batch else []
        self.batch = []
        for cid in unsent:  # batched, never written: safe to retry anywhere (rule 3)
            future = self.calls.pop(cid, None)
            if future is not None and not future.done():
                future.set_exception(NotSent(f"{self.address}: the call was not sent ({error})"))
        calls, self.calls = self.calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(error)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.inbound.finish(error)
            stream.cleanup()
        senders, self.senders = self.senders, {}
        for sender in senders.values():
            sender.close(error)
        self.conn.close()
        callbacks, self.lost = self.lost, []
        for callback in callbacks:
            callback(self)

    # ------------------------------------------------------------------ frames out
    def flush_batch(self) -> None:
        """Hand the batched calls to the connection, as one frame (wire rule 6)."""
        batch = self.batch
        if not batch or self.conn.is_closing:
            return  # (closing: `broken` fails the batched calls as never sent)
        self.batch = []
        self.conn.send(batch[0] if len(batch) == 1 else batch_frame(batch))

    def _send(self, payload: bytes, where: str) -> None:
        if self.error is not None:
            raise NotSent(f"{where}: {self.error}")
        if self.batch:
            self.flush_batch()  # frames leave in the order they were sent
        if len(payload) > self.max_frame:
            raise BadArguments(
                f"{where}: the call encodes to {len(payload)} bytes, above the maximum frame "
                f"size of {self.max_frame} bytes"
            )
        try:
            self.conn.send(payload)
        except ConnectionClosed:
            raise NotSent(f"{where}: connection to {self.address} closed") from None

    def _send_call(
        self,
        call: MethodCall,
        cid: int,
        args: Args,
        timeout: float | None,
        metadata: Mapping[str, str] | None,
        window: int,
    ) -> None:
        """Encode and queue a `Call`, naming its target by slot once one is bound."""
        target: int | Target
        new_slot = 0
        if call.channel is self:
            target = call.slot
        else:
            slot = self.slots.get(call.key)
            if slot is not None:
                target = slot
            else:
                if len(self.slots) < MAX_SLOTS:
                    new_slot = len(self.slots) + 1
                target = Target(new_slot, call.service, call.method, call.object_id)
        try:
            payload = _encode((CALL, cid, target, timeout, metadata, window, args))
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadArguments(f"{call.where}: the arguments cannot be encoded ({exc})") from None
        self._send(payload, call.where)
        # Sent: the server binds the slot before it reads any later frame of ours.
        if new_slot:
            self.slots[call.key] = new_slot
            target = new_slot
        if isinstance(target, int):
            call.channel = self
            call.slot = target

    def cancel(self, cid: int) -> None:
        if self.error is None and not self.conn.is_closing:
            if self.batch:
                self.flush_batch()
            self.conn.send(_encode((CANCEL, cid)))

    def _expire(self, cid: int, where: str, timeout: float) -> None:
        future = self.calls.pop(cid, None)
        if future is not None and not future.done():
            self.cancel(cid)
            future.set_exception(DeadlineExceeded(f"{where}: no reply within {timeout:g} s"))

    def start(
        self,
        call: MethodCall,
        args: Args,
        timeout: float | None,
        metadata: Mapping[str, str] | None,
    ) -> tuple[int, asyncio.Future[Reply | Failure]]:
        """Send a unary call; return its id and the future its reply frame completes.

        The caller awaits the future, calls `abandon(cid)` if it is cancelled, and turns
        the frame into the outcome with `MethodCall.result`. (The stub's hot path does the
        same inline, with `send_call`, to await the future without a call in between.)
        """
        cid = self.next_id
        self.next_id = cid + 1
        if timeout is None:
            self.send_call(call, cid, args, metadata)
        else:
            self._send_call(call, cid, args, timeout, metadata, 0)
        future: asyncio.Future[Reply | Failure] = _Future()
        self.calls[cid] = future
        return cid, future

    def send_call(
        self, call: MethodCall, cid: int, args: Args, metadata: Mapping[str, str] | None
    ) -> None:
        """Send unary call `cid` without deadline (`_send_call`, faster once slot-bound)."""
        if call.channel is not self or self.error is not None:
            self._send_call(call, cid, args, None, metadata, 0)
            return
        try:
            payload = _encode((CALL, cid, call.slot, None, metadata, 0, args))
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadArguments(f"{call.where}: the arguments cannot be encoded ({exc})") from None
        self.queue_call(payload, cid, call.where)

    def queue_call(self, payload: bytes, cid: int, where: str) -> None:
        """Send encoded call `cid`: in the iteration's batch when small, else alone."""
        size = len(payload)
        if size > SMALL_CALL:
            conn = self.conn
            if conn.write_next_at_once and not self.batch and size <= self.max_frame:
                conn.write_at_once(payload)
            else:
                self._send(payload, where)  # alone (and BadArguments above max_frame)
            return
        # (A connection closing under us is not checked here: `flush_batch` then writes
        # nothing and `broken` fails the batched calls as never sent, rule 3.)
        batch = self.batch
        if not batch:
            conn = self.conn
            if conn.write_next_at_once:  # nothing else will be sent this iteration
                conn.write_at_once(payload)
                return
            conn.flush_soon()
            self.batch_first = cid
        batch.append(payload)
        if len(batch) >= PIPELINE_CALLS:
            # Write now: the server starts on these while the next ones are made.
            self.flush_batch()
            self.conn.flush()

    def abandon(self, cid: int) -> None:
        """The caller of `cid` was cancelled: forget the call and cancel it at the server."""
        if self.calls.pop(cid, None) is not None:
            self.cancel(cid)

    async def unary(
        self,
        call: MethodCall,
        args: Args,
        timeout: float | None,
        metadata: Mapping[str, str] | None,
    ) -> Any:
        """Make one unary call and return its decoded result (or raise its error)."""
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded(f"{call.where}: the deadline passed before the call started")
        cid, future = self.start(call, args, timeout, metadata)
        if timeout is None:
            try:
                frame = await future
            except asyncio.CancelledError:
                self.abandon(cid)
                raise
            return call.result(frame)
        timer = self.loop.call_later(timeout, self._expire, cid, call.where, timeout)
        try:
            frame = await future
        except asyncio.CancelledError:
            if self.calls.pop(cid, None) is not None:
                self.cancel(cid)
            raise
        finally:
            timer.cancel()
        return call.result(frame)

    def oneway(self, call: MethodCall, args: Args, metadata: Mapping[str, str] | None) -> None:
        """Send a oneway call (id 0: the server sends nothing back)."""
        self._send_call(call, 0, args, None, metadata, 0)

    async def client_stream(
        self,
        call: MethodCall,
        args: Args,
        items: AsyncIterable[Any],
        timeout: float | None,
        metadata: Mapping[str, str] | None,
    ) -> Any:
        """Open a client-streaming call, send `items` as credit allows, return the result."""
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded(f"{call.where}: the deadline passed before the call started")
        cid = self.next_id
        self.next_id = cid + 1
        self._send_call(call, cid, args, timeout, metadata, 0)
        future: asyncio.Future[Reply | Failure] = self.loop.create_future()
        self.calls[cid] = future
        outbound = Outbound(CLIENT_STREAM_WINDOW)
        self.senders[cid] = outbound
        sender = self.loop.create_task(self.send_items(cid, call.where, items, outbound, future))
        try:
            async with asyncio.timeout(timeout):
                frame = await future
        except (asyncio.CancelledError, TimeoutError) as exc:
            if self.calls.pop(cid, None) is not None:
                self.cancel(cid)
            if isinstance(exc, TimeoutError):
                raise DeadlineExceeded(f"{call.where}: no reply within {timeout:g} s") from None
            raise
        finally:
            self.senders.pop(cid, None)
            sender.cancel()
        return call.result(frame)

    async def send_items(
        self,
        cid: int,
        where: str,
        items: AsyncIterable[Any],
        outbound: Outbound,
        outcome: asyncio.Future[Any] | None,
    ) -> None:
        """Send a client-side stream; a failure while producing items fails the call."""
        conn = self.conn
        try:
            async for item in items:
                await outbound.acquire()
                try:
                    payload = _encode((ITEM, cid, item))
                except (TypeError, ValueError, OverflowError) as exc:
                    raise BadArguments(
                        f"{where}: a streamed item cannot be encoded ({exc})"
                    ) from None
                self._send(payload, where)
                if not conn.writable:
                    await conn.drain()
            self._send(_encode((END, cid)), where)
        except asyncio.CancelledError:
            raise
        except (Unavailable, ProtocolViolation, ConnectionClosed):
            return  # the call itself fails with the connection's error
        except Exception as exc:
            # The caller's iterator (or encoding) failed: abandon the call with that error.
            self.cancel(cid)
            self.calls.pop(cid, None)
            self.senders.pop(cid, None)
            if outcome is not None and not outcome.done():
                outcome.set_exception(exc)
            stream = self.streams.pop(cid, None)
            if stream is not None:
                stream.inbound.abort(exc)

    def open_stream(
        self,
        call: MethodCall,
        inbound: Inbound[Any],
        args: Args,
        items: AsyncIterable[Any] | None,
        timeout: float | None,
        metadata: Mapping[str, str] | None,
    ) -> OpenStream:
        """Open a server- or bidi-streaming call whose items go to `inbound`."""
        cid = self.next_id
        self.next_id = cid + 1
        window = inbound.window
        self._send_call(call, cid, args, timeout, metadata, window)
        state = OpenStream(call, self, cid, inbound)
        inbound.set_grant(functools.partial(self.grant, cid))
        self.streams[cid] = state
        if items is not None:
            outbound = Outbound(CLIENT_STREAM_WINDOW)
            self.senders[cid] = outbound
            state.sender = self.loop.create_task(
                self.send_items(cid, call.where, items, outbound, None)
            )
        if timeout is not None:
            state.timer = self.loop.call_later(timeout, state.expire, timeout)
        return state

    def grant(self, cid: int, count: int) -> None:
        if cid in self.streams and not self.conn.is_closing:
            if self.batch:
                self.flush_batch()
            self.conn.send(_encode((CREDIT, cid, count)))

    def close_stream(self, cid: int) -> None:
        """The consumer stopped early: forget the stream and cancel it at the server."""
        if self.streams.pop(cid, None) is not None:
            self.cancel(cid)
        self.senders.pop(cid, None)


class OpenStream:
    """A streaming call in flight, as its channel tracks it.

    It never refers to the `ServerStream` the caller iterates, so a caller that drops the
    iterator lets it be collected, which cancels the call (`ServerStream.__del__`).
    """

    __slots__ = ("call", "channel", "cid", "inbound", "sender", "timer")

    def __init__(self, call: MethodCall, channel: Channel, cid: int, inbound: Inbound[Any]) -> None:
        self.call = call
        self.channel = channel
        self.cid = cid
        self.inbound = inbound
        self.sender: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def failed(self, frame: Reply | Failure) -> None:
        try:
            self.call.result(frame)
        except Exception as exc:
            self.inbound.finish(exc)
        else:
            self.inbound.finish(ProtocolViolation(f"{self.call.where}: a stream got a reply"))
        self.cleanup()

    def ended(self) -> None:
        self.inbound.finish()
        self.cleanup()

    def expire(self, timeout: float) -> None:
        self.timer = None
        if not self.inbound.done:
            self.stop()
            self.inbound.abort(
                DeadlineExceeded(f"{self.call.where}: the stream did not end within {timeout:g} s")
            )

    def cleanup(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.sender is not None:
            self.sender.cancel()
            self.sender = None

    def stop(self) -> None:
        """The caller stopped early: cancel the call at the server."""
        if self.channel.streams.get(self.cid) is self:
            self.channel.close_stream(self.cid)
        self.cleanup()


class ServerStream(Generic[T]):
    """The caller's end of a server-streaming (or bidi) call: an async iterator of items.

    The call opens on first use (``async for``, ``await``, ``async with``). Leaving the
    loop early and dropping the iterator, `aclose()`, or cancelling the consuming task
    cancels the call at the server. A deadline bounds the whole stream.
    """

    def __init__(
        self,
        call: MethodCall,
        opener: Callable[[ServerStream[T]], Awaitable[None]],
        window: int = SERVER_STREAM_WINDOW,
    ) -> None:
        self._call = call
        self._opener = opener
        self._opened = False
        self._state: OpenStream | None = None
        self._inbound: Inbound[T] = Inbound(call.item_decoder, window, _no_grant, call.where)

    def _attach(self, state: OpenStream) -> None:
        self._state = state

    def _stop(self) -> None:
        if self._state is not None:
            self._state.stop()

    async def _open(self) -> None:
        if not self._opened:
            self._opened = True
            await self._opener(self)

    def __aiter__(self) -> ServerStream[T]:
        return self

    async def __anext__(self) -> T:
        if not self._opened:
            await self._open()
        try:
            return await self._inbound.__anext__()
        except StopAsyncIteration:
            raise
        except asyncio.CancelledError:
            self._stop()
            self._inbound.abort(asyncio.CancelledError())
            raise
        except BaseException:
            self._stop()
            raise

    def __await__(self) -> Generator[Any, None, ServerStream[T]]:
        """``await stub.stream(...)`` opens the call and returns the iterator itself."""
        yield from self._open().__await__()
        return self

    async def aclose(self) -> None:
        """Stop early: the server's implementation is cancelled."""
        if not self._inbound.done:
            self._stop()
            self._inbound.abort(StopAsyncIteration())

    async def __aenter__(self) -> ServerStream[T]:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if self._state is not None and not self._inbound.done:
            with contextlib.suppress(Exception):
                self._state.stop()


def _no_grant(count: int) -> None:
    del count
