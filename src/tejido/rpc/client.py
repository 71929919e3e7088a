"""The RPC client: typed stubs over one or several endpoints, with retries and balancing.

``calc = await connect(Calculator, "127.0.0.1:7000")`` returns an object typed as
``Calculator`` whose methods make calls (type checkers see the interface's signatures).
Under it a `Client` owns one `Channel` per endpoint. Rules:

1. **Endpoint choice.** ``balance="round_robin"`` rotates over the endpoints;
   ``"least_outstanding"`` takes the one with the fewest calls in flight (ties rotate).
   Connections open lazily, one per endpoint. An endpoint that cannot be reached is
   marked down for ``down_backoff_s`` and the call fails over to the next one; with
   health checking on, endpoints that report ``NOT_SERVING`` are skipped while others
   are available. When no endpoint is reachable the call fails with `Unavailable`.
2. **Retries** (with a `RetryPolicy`): a call that never reached a server (`NotSent`) is
   retried for any method; a call lost with its connection (`Unavailable`) only for
   methods marked ``idempotent``, because the server may have run it. Attempts back off
   exponentially with jitter and all share the call's deadline. Streaming calls are not
   retried.
3. **Deadlines** come from `tejido.rpc.context.effective_timeout`: per-call
   `call_options`, else the client's ``timeout``, capped by the deadline of the call being
   served (propagation).
4. **Interceptors** wrap calls in order (the first is outermost):
   ``async def interceptor(call: ClientCall, proceed) -> result`` may change
   ``call.metadata`` (e.g. add a token), time or log ``await proceed(call)``. For
   streaming calls they wrap the opening of the call.
5. A stub can be bound to an object id (``client.stub(Iface, object_id="...")``): its
   calls go to the implementation the server registered under that id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import random
import ssl as ssl_module
import struct
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.net.connection import ConnectionClosed
from tejido.net.connection import connect as net_connect
from tejido.net.frames import DEFAULT_MAX_FRAME
from tejido.net.handshake import HandshakeRefused, Hello
from tejido.rpc.channel import (
    PIPELINE_CALLS,
    SMALL_CALL,
    Args,
    Channel,
    MethodCall,
    NotSent,
    ServerStream,
)
from tejido.rpc.context import _options, _serving, effective_timeout
from tejido.rpc.errors import BadArguments, DeadlineExceeded, Unavailable
from tejido.rpc.health import Health, ServingStatus
from tejido.rpc.service import MethodSpec, ServiceSpec, describe_service
from tejido.rpc.wire import CALL, Failure, Reply, encoder

__all__ = [
    "Balance",
    "Client",
    "ClientCall",
    "ClientInterceptor",
    "RetryPolicy",
    "client_of",
    "close",
    "connect",
]

T = TypeVar("T")
_Future = asyncio.Future  # made on the running loop, faster than loop.create_future()
_pack = struct.Struct(">I").pack
#: The context variables' getters, bound once: CPython 3.11 compiles ``name.get()`` on an
#: imported name as an attribute load that makes a bound method on every call.
_options_get = _options.get
_serving_get = _serving.get
_encode = encoder.encode
Balance = Literal["round_robin", "least_outstanding"]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry (see rule 2 of the module docstring)."""

    max_attempts: int = 3
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    multiplier: float = 2.0
    #: Each pause is scaled by a random factor in [1 - jitter, 1 + jitter].
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def backoff_s(self, attempt: int) -> float:
        """Pause before attempt ``attempt + 1`` (attempts count from 1)."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


@dataclasses.dataclass(slots=True)
class ClientCall:
    """A call as client interceptors see it (they may change ``metadata`` and ``timeout``)."""

    service: str
    method: str
    object_id: str
    args: Args
    metadata: dict[str, str]
    timeout: float | None
    idempotent: bool


#: ``async def interceptor(call, proceed) -> result``; ``proceed(call)`` runs the rest.
ClientInterceptor = Callable[[ClientCall, Callable[[ClientCall], Awaitable[Any]]], Awaitable[Any]]

_CONNECT_ERRORS = (OSError, TimeoutError, HandshakeRefused, ConnectionClosed)


class _Endpoint:
    __slots__ = ("address", "channel", "connecting", "down_until", "healthy", "last_error")

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel: Channel | None = None
        self.connecting: asyncio.Task[Channel] | None = None
        self.down_until = 0.0
        self.healthy = True
        self.last_error = ""


class Client:
    """Connections to one or more equivalent endpoints, shared by any number of stubs."""

    def __init__(
        self,
        addresses: str | Sequence[str],
        *,
        balance: Balance = "round_robin",
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        interceptors: Iterable[ClientInterceptor] = (),
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        cluster: str = "tejido",
        connect_timeout_s: float = 5.0,
        down_backoff_s: float = 1.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        health_check_interval_s: float | None = None,
        health_check_service: str = "",
    ) -> None:
        if isinstance(addresses, str):
            addresses = [addresses]
        if not addresses:
            raise LocalProtocolError("a client needs at least one address")
        if balance not in ("round_robin", "least_outstanding"):
            raise LocalProtocolError(
                f"balance must be 'round_robin' or 'least_outstanding', got {balance!r}"
            )
        if timeout is not None and timeout <= 0:
            raise LocalProtocolError(f"timeout must be positive seconds, got {timeout}")
        self.loop = asyncio.get_running_loop()
        self._endpoints = [_Endpoint(address) for address in addresses]
        self.balance = balance
        self.timeout = timeout
        self.retry = retry
        self._interceptors = tuple(interceptors)
        self._ssl = ssl
        self._server_hostname = server_hostname
        self.cluster = cluster
        self.connect_timeout_s = connect_timeout_s
        self.down_backoff_s = down_backoff_s
        self.max_frame = max_frame
        self._rotation = 0
        #: The channel calls may use without choosing (one endpoint, connected), else None.
        self._ready: Channel | None = None
        #: True when calls need neither interceptors nor retries (the fast path).
        self._plain = not self._interceptors and retry is None
        #: `_ready` when calls are `_plain` (the stubs' fast path), else None.
        self._fast: Channel | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._health_interval_s = health_check_interval_s
        self._health_service = health_check_service
        self._health_waiters: list[asyncio.Future[None]] = []
        #: Rounds of health checks done so far.
        self.health_rounds = 0
        self._closed = False

    # ------------------------------------------------------------------ endpoints
    @property
    def addresses(self) -> list[str]:
        return [endpoint.address for endpoint in self._endpoints]

    async def start(self) -> None:
        """Connect to one endpoint now (so a wrong address fails here) and start health checks.

        The rotation is left as it was, so the first call still goes to the first endpoint.
        """
        rotation = self._rotation
        await self.pick()
        self._rotation = rotation
        if self._health_interval_s is not None and self._health_task is None:
            self._health_task = self.loop.create_task(self._health_loop(self._health_interval_s))

    async def _connect(self, endpoint: _Endpoint) -> Channel:
        hello = Hello(cluster=self.cluster, node="", purpose="rpc")
        conn = await net_connect(
            endpoint.address,
            hello,
            ssl=self._ssl,
            server_hostname=self._server_hostname,
            timeout=self.connect_timeout_s,
            max_frame=self.max_frame,
        )
        channel = Channel(conn, endpoint.address, self.max_frame)
        channel.lost.append(functools.partial(self._lost, endpoint))
        if self._closed:
            conn.close()
            raise Unavailable("the client is closed")
        endpoint.channel = channel
        if len(self._endpoints) == 1:
            self._ready = channel
            if self._plain and channel.error is None:
                # (`_lost` clears it when the channel breaks: the stubs need not check.)
                self._fast = channel
        return channel

    def _lost(self, endpoint: _Endpoint, channel: Channel) -> None:
        if endpoint.channel is channel:
            endpoint.channel = None
            endpoint.last_error = str(channel.error)
        if self._ready is channel:
            self._ready = None
        if self._fast is channel:
            self._fast = None

    async def _channel(self, endpoint: _Endpoint) -> Channel:
        channel = endpoint.channel
        if channel is not None and channel.error is None:
            return channel
        task = endpoint.connecting
        if task is None:
            task = endpoint.connecting = self.loop.create_task(self._connect(endpoint))
            task.add_done_callback(functools.partial(self._connected, endpoint))
        return await asyncio.shield(task)

    def _connected(self, endpoint: _Endpoint, task: asyncio.Task[Channel]) -> None:
        endpoint.connecting = None
        if not task.cancelled() and task.exception() is not None:
            endpoint.down_until = self.loop.time() + self.down_backoff_s
            endpoint.last_error = str(task.exception()) or type(task.exception()).__name__

    def _order(self) -> list[_Endpoint]:
        endpoints = self._endpoints
        count = len(endpoints)
        if count == 1:
            return endpoints
        start = self._rotation % count
        self._rotation += 1
        rotated = endpoints[start:] + endpoints[:start]
        if self.balance == "least_outstanding":
            rotated.sort(key=lambda e: e.channel.outstanding if e.channel is not None else 0)
        return rotated

    async def pick(self) -> Channel:
        """A connected channel to the endpoint the balancing policy chooses (rule 1)."""
        ready = self._ready
        if ready is not None and ready.error is None:
            return ready
        if self._closed:
            raise NotSent("the client is closed")
        now = self.loop.time()
        later: list[_Endpoint] = []
        for endpoint in self._order():
            if endpoint.down_until > now or not endpoint.healthy:
                later.append(endpoint)
                continue
            try:
                return await self._channel(endpoint)
            except _CONNECT_ERRORS:
                continue
        for endpoint in later:  # every preferred endpoint failed: try the rest anyway
            try:
                return await self._channel(endpoint)
            except _CONNECT_ERRORS:
                continue
        problems = "; ".join(f"{e.address}: {e.last_error or 'down'}" for e in self._endpoints)
        raise NotSent(f"no endpoint reachable ({problems})")

    async def _health_loop(self, interval_s: float) -> None:
        spec = describe_service(Health).methods["check"]
        call = _method_call(describe_service(Health), spec, "")
        while not self._closed:
            for endpoint in self._endpoints:
                try:
                    channel = await self._channel(endpoint)
                    status = await channel.unary(
                        call, spec.args_type(self._health_service), interval_s, None
                    )
                    endpoint.healthy = status is ServingStatus.SERVING
                except Exception:
                    endpoint.healthy = False
            self.health_rounds += 1
            waiters, self._health_waiters = self._health_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            await asyncio.sleep(interval_s)

    async def health_checked(self) -> None:
        """Wait until the next round of health checks has finished (needs health checking)."""
        if self._health_task is None:
            raise LocalProtocolError("health checking is off (set health_check_interval_s)")
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._health_waiters.append(waiter)
        await waiter

    @property
    def healthy(self) -> dict[str, bool]:
        """The last health check's verdict per endpoint (all True without health checking)."""
        return {endpoint.address: endpoint.healthy for endpoint in self._endpoints}

    # ------------------------------------------------------------------ calls
    def _options(self) -> tuple[float | None, Mapping[str, str] | None]:
        timeout, options = effective_timeout(self.timeout, self.loop)
        return timeout, (options.metadata if options is not None else None)

    async def unary(self, call: MethodCall, args: Args) -> Any:
        timeout, metadata = self._options()
        if self._plain:
            ready = self._ready
            if ready is not None and ready.error is None:
                try:
                    return await ready.unary(call, args, timeout, metadata)
                except NotSent:
                    pass
        info = ClientCall(
            call.service,
            call.method,
            call.object_id,
            args,
            dict(metadata or {}),
            timeout,
            call.idempotent,
        )
        if self._interceptors:
            return await self._intercept(info, functools.partial(self._attempts, call))
        return await self._attempts(call, info)

    async def _attempts(self, call: MethodCall, info: ClientCall) -> Any:
        loop = self.loop
        deadline = None if info.timeout is None else loop.time() + info.timeout
        retry = self.retry
        attempt = 1
        unsent = 0
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            try:
                channel = await self.pick()
                return await channel.unary(call, info.args, remaining, info.metadata or None)
            except NotSent as exc:
                error: Unavailable = exc
                unsent += 1
                if unsent <= len(self._endpoints) and "no endpoint reachable" not in str(exc):
                    continue  # the channel closed under us: fail over at once
                retryable = True
            except Unavailable as exc:
                error = exc
                retryable = call.idempotent
            if retry is None or not retryable or attempt >= retry.max_attempts:
                raise error
            pause = retry.backoff_s(attempt)
            if deadline is not None and loop.time() + pause >= deadline:
                raise DeadlineExceeded(
                    f"{call.where}: deadline reached after {attempt} attempt(s); last: {error}"
                ) from error
            await asyncio.sleep(pause)
            attempt += 1

    def _intercept(
        self, info: ClientCall, proceed: Callable[[ClientCall], Awaitable[Any]]
    ) -> Awaitable[Any]:
        call = proceed
        for interceptor in reversed(self._interceptors):
            call = _chain(interceptor, call)
        return call(info)

    async def oneway(self, call: MethodCall, args: Args) -> None:
        timeout, metadata = self._options()
        info = ClientCall(
            call.service, call.method, call.object_id, args, dict(metadata or {}), timeout, False
        )

        async def send(info: ClientCall) -> None:
            channel = await self.pick()
            channel.oneway(call, info.args, info.metadata or None)

        if self._interceptors:
            await self._intercept(info, send)
        else:
            await send(info)

    async def client_stream(self, call: MethodCall, args: Args, items: AsyncIterable[Any]) -> Any:
        timeout, metadata = self._options()
        info = ClientCall(
            call.service, call.method, call.object_id, args, dict(metadata or {}), timeout, False
        )

        async def run(info: ClientCall) -> Any:
            channel = await self.pick()
            return await channel.client_stream(
                call, info.args, items, info.timeout, info.metadata or None
            )

        if self._interceptors:
            return await self._intercept(info, run)
        return await run(info)

    def server_stream(
        self, call: MethodCall, args: Args, items: AsyncIterable[Any] | None
    ) -> ServerStream[Any]:
        timeout, metadata = self._options()
        info = ClientCall(
            call.service, call.method, call.object_id, args, dict(metadata or {}), timeout, False
        )

        async def opener(stream: ServerStream[Any]) -> None:
            async def open_call(info: ClientCall) -> None:
                channel = await self.pick()
                state = channel.open_stream(
                    call, stream._inbound, info.args, items, info.timeout, info.metadata or None
                )
                stream._attach(state)

            if self._interceptors:
                await self._intercept(info, open_call)
            else:
                await open_call(info)

        return ServerStream(call, opener)

    # ------------------------------------------------------------------ stubs
    def stub(self, interface: type[T], *, object_id: str = "") -> T:
        """A stub of `interface` making calls through this client (to `object_id` if given)."""
        return cast(T, _Stub(self, describe_service(interface), object_id))

    async def close(self) -> None:
        """Close every connection; calls in flight fail with `Unavailable`."""
        self._closed = True
        if self._health_task is not None:
            self._health_task.cancel()
            self._health_task = None
        for endpoint in self._endpoints:
            if endpoint.connecting is not None:
                endpoint.connecting.cancel()
            channel = endpoint.channel
            if channel is not None:
                channel.broken(Unavailable("the client was closed"))
        self._ready = None
        self._fast = None


def _encode_call(cid: int, slot: int, payload: Args, where: str) -> bytes:
    """A plain call's frame (no deadline, no metadata), as the fast paths write it; an
    argument msgspec cannot encode is `BadArguments` naming the method."""
    try:
        return _encode((CALL, cid, slot, None, None, 0, payload))
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadArguments(f"{where}: the arguments cannot be encoded ({exc})") from None


def _chain(
    interceptor: ClientInterceptor, proceed: Callable[[ClientCall], Awaitable[Any]]
) -> Callable[[ClientCall], Awaitable[Any]]:
    def step(info: ClientCall) -> Awaitable[Any]:
        return interceptor(info, proceed)

    return step


def _method_call(spec: ServiceSpec, method: MethodSpec, object_id: str) -> MethodCall:
    return MethodCall(
        spec.name,
        method.name,
        object_id,
        method.kind,
        method.result,
        method.stream_item,
        method.idempotent,
        spec.errors,
    )


def _signature(spec: ServiceSpec, method: MethodSpec) -> inspect.Signature:
    fn = getattr(spec.interface, method.attr)
    signature = inspect.signature(fn)
    return signature.replace(parameters=list(signature.parameters.values())[1:])


def _make_method(client: Client, spec: ServiceSpec, method: MethodSpec, object_id: str) -> Any:
    call = _method_call(spec, method, object_id)
    args_type = method.args_type
    where = call.where
    kind = method.kind
    arity = len(method.params)

    def pack(args: tuple[Any, ...], kwargs: dict[str, Any]) -> msgspec.Struct:
        try:
            return args_type(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(f"{where}: {exc}") from None

    if kind == "unary":
        default_timeout = client.timeout
        loop = client.loop
        decode_result = call.decode_result

        async def unary(*args: Any, **kwargs: Any) -> Any:
            ready = client._fast
            if ready is None:  # (a broken channel is never `_fast`)
                return await client.unary(call, pack(args, kwargs))
            # Without interceptors nobody sees the arguments but the encoder, and a tuple
            # naming every parameter encodes exactly like the args Struct.
            payload: Args = args if not kwargs and len(args) == arity else pack(args, kwargs)
            if (
                default_timeout is not None
                or _options_get() is not None
                or _serving_get() is not None
            ):
                timeout, options = effective_timeout(default_timeout, loop)
                if timeout is not None:
                    return await client.unary(call, payload)
                metadata = options.metadata if options is not None else None
                cid = ready.next_id
                ready.next_id = cid + 1
                try:
                    ready.send_call(call, cid, payload, metadata)
                except NotSent:
                    return await client.unary(call, payload)
            else:
                # The hot path: no deadline, no metadata; await the reply future directly
                # (no nested coroutine).
                cid = ready.next_id
                ready.next_id = cid + 1
                conn = ready.conn
                if call.channel is not ready or conn._closing:
                    try:
                        ready.send_call(call, cid, payload, None)
                    except NotSent:
                        return await client.unary(call, payload)
                elif not conn.write_next_at_once:
                    # Calls from many tasks: this one joins the iteration's batch (wire
                    # rule 6), as `send_call` would add it, without the call to it.
                    try:
                        encoded = _encode((CALL, cid, call.slot, None, None, 0, payload))
                    except (TypeError, ValueError, OverflowError) as exc:
                        raise BadArguments(
                            f"{where}: the arguments cannot be encoded ({exc})"
                        ) from None
                    if len(encoded) > SMALL_CALL:
                        ready.queue_call(encoded, cid, where)  # alone, with its checks
                    else:
                        batch = ready.batch
                        if not batch:
                            conn.flush_soon()
                            ready.batch_first = cid
                        batch.append(encoded)
                        if len(batch) >= PIPELINE_CALLS:
                            # Write now: the server starts on these while we make more.
                            ready.flush_batch()
                            conn.flush()
                elif not ready.batch and not conn._pending and not conn._paused:
                    # A caller making one call at a time: this call is all that will be
                    # sent this iteration, so it leaves now in one write (`send_call`
                    # would do the same through three more functions).
                    encoded = _encode_call(cid, call.slot, payload, where)
                    size = len(encoded)
                    if size > SMALL_CALL:
                        ready.queue_call(encoded, cid, where)  # with its checks
                    else:
                        conn.write_next_at_once = False
                        transport = conn._transport
                        assert transport is not None
                        transport.write(_pack(size) + encoded)
                else:
                    try:
                        ready.send_call(call, cid, payload, None)
                    except NotSent:
                        return await client.unary(call, payload)
            future: asyncio.Future[Reply | Failure] = _Future()
            ready.calls[cid] = future
            try:
                frame = await future
            except asyncio.CancelledError:
                ready.abandon(cid)
                raise
            if frame.__class__ is Reply:
                try:
                    return decode_result(frame.value)
                except msgspec.MsgspecError:
                    pass  # MethodCall.result says what is wrong
            return call.result(frame)

        return unary

    if kind == "oneway":

        async def oneway(*args: Any, **kwargs: Any) -> None:
            await client.oneway(call, pack(args, kwargs))

        return oneway

    signature = _signature(spec, method)
    stream_param = method.stream_param

    def split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(f"{where}: {exc}") from None
        items = bound.arguments.pop(stream_param) if stream_param is not None else None
        if stream_param is not None and not isinstance(items, AsyncIterable):
            raise BadArguments(
                f"{where}: parameter {stream_param!r} must be an async iterable, got "
                f"{type(items).__name__}"
            )
        return args_type(**bound.arguments), items

    if kind == "client_stream":

        async def client_stream(*args: Any, **kwargs: Any) -> Any:
            payload, items = split(args, kwargs)
            return await client.client_stream(call, payload, items)

        return client_stream

    def server_stream(*args: Any, **kwargs: Any) -> ServerStream[Any]:
        payload, items = split(args, kwargs)
        return client.server_stream(call, payload, items)

    return server_stream


class _Stub:
    """Holds one callable per interface method (set per instance, invisible to mypy)."""

    def __init__(self, client: Client, spec: ServiceSpec, object_id: str) -> None:
        self._tejido_client = client
        self._tejido_spec = spec
        self._tejido_object_id = object_id
        for method in spec.methods.values():
            setattr(self, method.attr, _make_method(client, spec, method, object_id))

    def __repr__(self) -> str:
        target = f" object {self._tejido_object_id!r}" if self._tejido_object_id else ""
        return (
            f"<{self._tejido_spec.name} stub{target} -> {', '.join(self._tejido_client.addresses)}>"
        )

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._tejido_client.close()


def client_of(stub: object) -> Client:
    """The `Client` behind a stub (to make more stubs on its connections, or close it)."""
    if not isinstance(stub, _Stub):
        raise LocalProtocolError(f"{stub!r} is not a tejido RPC stub")
    return stub._tejido_client


async def close(stub: object) -> None:
    """Close the client behind `stub` (and so every stub sharing it)."""
    await client_of(stub).close()


async def connect(
    interface: type[T],
    address: str | Sequence[str],
    *,
    balance: Balance = "round_robin",
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    interceptors: Iterable[ClientInterceptor] = (),
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    cluster: str = "tejido",
    object_id: str = "",
    connect_timeout_s: float = 5.0,
    health_check_interval_s: float | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> T:
    """Connect to ``HOST:PORT`` (or a list of equivalent endpoints); return a typed stub.

    Raises `Unavailable` when no endpoint can be reached.
    """
    client = Client(
        address,
        balance=balance,
        timeout=timeout,
        retry=retry,
        interceptors=interceptors,
        ssl=ssl,
        server_hostname=server_hostname,
        cluster=cluster,
        connect_timeout_s=connect_timeout_s,
        max_frame=max_frame,
        health_check_interval_s=health_check_interval_s,
    )
    try:
        await client.start()
    except Unavailable as exc:
        await client.close()
        raise Unavailable(str(exc)) from None
    return client.stub(interface, object_id=object_id)
