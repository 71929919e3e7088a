"""Serve tejido service implementations over gRPC, with grpcio's asyncio server.

`serve_grpc("127.0.0.1:0", (Shop, ShopImpl()))` builds each interface's proto3 schema at
run time (`tejido.rpc.proto`: no generated code), registers one generic handler per
service, and returns a started `GrpcServer`. Any gRPC client can call it with code
generated from the .proto that `tejido rpc proto MODULE:Service` writes.

Rules:

1. Status codes (meanings as in gRPC's doc/statuscodes.md,
   https://github.com/grpc/grpc/blob/master/doc/statuscodes.md):
   - a *declared* `ServiceError` -> the code its class names in ``grpc_status`` (a
     `grpc.StatusCode` member name such as ``"NOT_FOUND"``, or the member itself), else
     ``FAILED_PRECONDITION``; details ``"<ErrorClass>: <message>"`` and trailing metadata
     ``tejido-error-type: <ErrorClass>``, so a plain client can tell errors apart;
   - arguments that do not match the interface (a bad message, an enum number naming no
     member, a missing required field, a failed constraint) -> ``INVALID_ARGUMENT``;
   - the call's deadline passing -> ``DEADLINE_EXCEEDED``;
   - anything else the implementation raises, or a result that does not match the
     interface -> ``INTERNAL`` with ``"<Type>: <message>"`` (never a traceback);
   - an unknown service or method -> ``UNIMPLEMENTED`` (grpcio's own answer).
2. Deadlines: the client's deadline (``context.time_remaining()``) bounds the
   implementation, which is cancelled when it passes; while it runs, `current_call()` of
   `tejido.rpc.context` carries the deadline so tejido calls it makes inherit it.
3. A client cancelling (or disconnecting) cancels the implementation's task.
4. Streams: a server-streaming method's items are sent as the implementation yields
   them; for client streams see rule 5 of `tejido.rpc.proto`.
5. The standard health service (``grpc.health.v1.Health``, Check and Watch) is served
   unless ``health=False``: SERVING for ``""`` and every registered service, NOT_FOUND for
   others. It is declared as a tejido interface whose messages match health.proto's on the
   wire (same field numbers and types); grpcio-health-checking is not needed.
6. Oneway methods are plain unary rpcs with an empty response (gRPC has no oneway).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, NoReturn

import grpc
from grpc import aio

from tejido.core.errors import LocalProtocolError
from tejido.rpc.context import CallContext, Peer, _serving
from tejido.rpc.errors import BadArguments, DeadlineExceeded, ServiceError
from tejido.rpc.proto import ProtoMethod, ProtoSchema, proto_schema
from tejido.rpc.service import service

__all__ = [
    "ERROR_TYPE_KEY",
    "GrpcServer",
    "HealthStatus",
    "serve_grpc",
]

#: Trailing metadata key naming the declared error class.
ERROR_TYPE_KEY = "tejido-error-type"

_log = logging.getLogger(__name__)


class _Failure(Exception):
    """How a call ends when it does not return: a status, details and trailing metadata."""

    def __init__(self, code: Any, details: str, metadata: tuple[tuple[str, str], ...] = ()):
        super().__init__(details)
        self.code = code
        self.details = details
        self.metadata = metadata


def _status_of(error: type[ServiceError]) -> Any:
    declared = getattr(error, "grpc_status", "FAILED_PRECONDITION")
    if isinstance(declared, grpc.StatusCode):
        return declared
    try:
        return grpc.StatusCode[str(declared)]
    except KeyError:
        raise LocalProtocolError(
            f"{error.__name__}.grpc_status = {declared!r} is not a grpc.StatusCode name"
        ) from None


class _Call:
    """One method of one implementation, adapted to grpcio's handler signatures."""

    def __init__(self, schema: ProtoSchema, method: ProtoMethod, implementation: object):
        self.method = method
        self.service = schema.spec.name
        self.errors = tuple(schema.spec.errors.values())  # includes every method's raises=
        self.fn: Callable[..., Any] = getattr(implementation, method.spec.attr)

    def fail(self, exc: BaseException) -> _Failure:
        """The status for an exception raised while serving the call (rule 1)."""
        if isinstance(exc, _Failure):
            return exc
        name = type(exc).__name__
        if isinstance(exc, ServiceError):
            # A subclass of a declared error travels as the declared class.
            for klass in type(exc).__mro__:
                if klass in self.errors:
                    declared = klass.__name__
                    return _Failure(
                        _status_of(klass), f"{declared}: {exc}", ((ERROR_TYPE_KEY, declared),)
                    )
        if isinstance(exc, DeadlineExceeded):
            return _Failure(grpc.StatusCode.DEADLINE_EXCEEDED, f"{name}: {exc}")
        _log.error("%s raised %s: %s", self.method.path, name, exc, exc_info=exc)
        return _Failure(grpc.StatusCode.INTERNAL, f"{name}: {exc}")

    def parse(self, data: bytes) -> Any:
        message = self.method.request_class()
        try:
            message.ParseFromString(data)
        except Exception as exc:  # protobuf's DecodeError, whichever implementation
            raise _Failure(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid message ({exc})"
            ) from None
        return message

    def arguments(self, message: Any) -> dict[str, Any]:
        try:
            return self.method.decode_args(message)
        except BadArguments as exc:
            raise _Failure(grpc.StatusCode.INVALID_ARGUMENT, f"BadArguments: {exc}") from None

    def encode(self, value: Any) -> bytes:
        try:
            data: bytes = self.method.encode_result(value).SerializeToString()
        except BadArguments as exc:
            raise _Failure(
                grpc.StatusCode.INTERNAL, f"the result does not match the interface ({exc})"
            ) from None
        return data

    def items(self, requests: AsyncIterator[bytes], bad: list[_Failure]) -> AsyncIterator[Any]:
        """The streamed parameter: one decoded item per request message."""

        async def generate() -> AsyncIterator[Any]:
            async for data in requests:
                try:
                    yield self.method.decode_item(self.parse(data))
                except BadArguments as exc:
                    bad.append(_Failure(grpc.StatusCode.INVALID_ARGUMENT, f"BadArguments: {exc}"))
                    raise
                except _Failure as failure:
                    bad.append(failure)
                    raise

        return generate()

    async def opening(self, requests: AsyncIterator[bytes], bad: list[_Failure]) -> dict[str, Any]:
        """The arguments of a client-streaming call, with the streamed parameter last."""
        arguments: dict[str, Any] = {}
        if self.method.header_first:
            first = await anext(requests, None)
            if first is None:
                raise _Failure(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "the stream ended before its first message (the arguments)",
                )
            arguments = self.arguments(self.parse(first))
        stream_param = self.method.spec.stream_param
        if stream_param is not None:
            arguments[stream_param] = self.items(requests, bad)
        return arguments


def _deadline(context: Any) -> float | None:
    """The call's deadline on the event loop's clock, None without one."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return asyncio.get_running_loop().time() + max(float(remaining), 0.0)


async def _bounded(deadline: float | None, awaitable: Awaitable[Any]) -> Any:
    """Await `awaitable` in this task, cancelling it if `deadline` passes first."""
    if deadline is None:
        return await awaitable
    timeout = asyncio.timeout_at(deadline)
    try:
        async with timeout:
            return await awaitable
    except TimeoutError:
        if timeout.expired():
            raise _Failure(
                grpc.StatusCode.DEADLINE_EXCEEDED, "DeadlineExceeded: the call's deadline passed"
            ) from None
        raise


async def _abort(context: Any, failure: _Failure) -> NoReturn:
    await context.abort(failure.code, failure.details, failure.metadata)
    raise failure  # abort raises; this line only satisfies the type checker


async def _started(value: Any) -> Any:
    """An implementation's stream: an async generator, or a coroutine returning an iterator."""
    if inspect.isawaitable(value):
        value = await value
    return value.__aiter__()


def _handler(call: _Call) -> Any:
    """grpcio's method handler for one method (requests and responses as raw bytes)."""
    method = call.method

    async def unary(request: bytes, context: Any) -> bytes:
        try:
            with _serving_call(call, context) as deadline:
                arguments = call.arguments(call.parse(request))
                return call.encode(await _bounded(deadline, call.fn(**arguments)))
        except Exception as exc:
            await _abort(context, call.fail(exc))

    async def client_stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
        bad: list[_Failure] = []
        try:
            with _serving_call(call, context) as deadline:
                arguments = await _bounded(deadline, call.opening(requests, bad))
                return call.encode(await _bounded(deadline, call.fn(**arguments)))
        except Exception as exc:
            await _abort(context, bad[0] if bad else call.fail(exc))

    async def server_stream(request: Any, context: Any) -> AsyncIterator[bytes]:
        bad: list[_Failure] = []
        iterator: Any = None
        try:
            with _serving_call(call, context) as deadline:
                if method.client_streaming:
                    arguments = await _bounded(deadline, call.opening(request, bad))
                else:
                    arguments = call.arguments(call.parse(request))
                iterator = await _bounded(deadline, _started(call.fn(**arguments)))
                while True:
                    try:
                        item = await _bounded(deadline, anext(iterator))
                    except StopAsyncIteration:
                        break
                    yield call.encode(item)
        except Exception as exc:
            await _abort(context, bad[0] if bad else call.fail(exc))
        finally:
            if iterator is not None and hasattr(iterator, "aclose"):
                await iterator.aclose()

    if method.spec.kind in ("unary", "oneway"):
        return grpc.unary_unary_rpc_method_handler(unary)
    if method.spec.kind == "client_stream":
        return grpc.stream_unary_rpc_method_handler(client_stream)
    if method.spec.kind == "server_stream":
        return grpc.unary_stream_rpc_method_handler(server_stream)
    return grpc.stream_stream_rpc_method_handler(server_stream)


@contextlib.contextmanager
def _serving_call(call: _Call, context: Any) -> Iterator[float | None]:
    """Yields the call's deadline; inside, `current_call()` describes this call (rule 2).

    gRPC hides connections, so the `Peer` stands for the call: it closes when the call ends.
    """
    deadline = _deadline(context)
    metadata = {
        key: value
        for key, value in (context.invocation_metadata() or ())
        if isinstance(value, str)  # binary ("-bin") values stay out of a str mapping
    }
    peer = Peer(context.peer(), "")
    served = CallContext(call.service, call.method.spec.name, "", metadata, deadline, peer)
    token = _serving.set(served)
    try:
        yield deadline
    finally:
        with contextlib.suppress(ValueError):  # a stream closed from another context
            _serving.reset(token)
        peer._close()


# ---------------------------------------------------------------- health (grpc.health.v1)


class HealthStatus(enum.Enum):
    """`HealthCheckResponse.ServingStatus` of gRPC's health.proto (same numbers)."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3  #: only sent by Watch


class UnknownService(ServiceError):
    """Check asked about a service this server does not serve."""

    grpc_status = "NOT_FOUND"


@service(name="grpc.health.v1.Health")
class GrpcHealth:
    """gRPC's health service. Wire-compatible with health.proto: `HealthCheckRequest` has
    ``string service = 1`` and `HealthCheckResponse` ``ServingStatus status = 1``, which is
    what field 1 of CheckRequest and of CheckResponse (``value``) carry here."""

    errors = (UnknownService,)

    def __init__(self, services: Sequence[str]) -> None:
        self.statuses = dict.fromkeys(["", *services], HealthStatus.SERVING)
        self.changed = asyncio.Event()

    def set(self, name: str, status: HealthStatus) -> None:
        self.statuses[name] = status
        self.changed.set()
        self.changed = asyncio.Event()

    async def check(self, service: str = "") -> HealthStatus:
        if service not in self.statuses:
            raise UnknownService(f"not serving {service!r}")
        return self.statuses[service]

    async def watch(self, service: str = "") -> AsyncIterator[HealthStatus]:
        last: HealthStatus | None = None
        while True:
            changed = self.changed
            status = self.statuses.get(service, HealthStatus.SERVICE_UNKNOWN)
            if status is not last:
                yield status
                last = status
            await changed.wait()


# ---------------------------------------------------------------- the server


class GrpcServer:
    """A grpcio asyncio server serving tejido implementations (see the module rules)."""

    def __init__(
        self,
        *services: tuple[type, object],
        health: bool = True,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._served: list[tuple[ProtoSchema, object]] = []
        for interface, implementation in services:
            self._served.append(_checked(interface, implementation))
        names = [schema.full_name for schema, _ in self._served]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise LocalProtocolError(f"serve_grpc: {', '.join(duplicates)} given twice")
        self._health: GrpcHealth | None = None
        if health:
            self._health = GrpcHealth(names)
            self._served.append((proto_schema(GrpcHealth), self._health))
        self._options = list(options)
        self._server: Any = None
        self.port = 0

    @property
    def services(self) -> list[str]:
        """Full gRPC names of the services served (``package.Service``)."""
        return [schema.full_name for schema, _ in self._served]

    async def start(self, address: str = "127.0.0.1:0", credentials: Any = None) -> int:
        """Bind `address` (``host:port``; port 0 picks one) and start; returns the port.

        `credentials` (``grpc.ssl_server_credentials(...)``) serves TLS instead of plaintext.
        """
        if self._server is not None:
            raise LocalProtocolError("this GrpcServer was already started")
        handlers = [
            grpc.method_handlers_generic_handler(
                schema.full_name,
                {
                    rpc: _handler(_Call(schema, method, implementation))
                    for rpc, method in schema.methods.items()
                },
            )
            for schema, implementation in self._served
        ]
        self._server = aio.server(handlers=handlers, options=self._options)
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"gRPC server cannot bind {address!r} ({exc})") from None
        await self._server.start()
        return self.port

    def set_status(self, service_name: str, status: HealthStatus) -> None:
        """Change what the health service reports for a service (``""``: the server)."""
        if self._health is None:
            raise LocalProtocolError("this server was built with health=False")
        self._health.set(service_name, status)

    async def stop(self, grace_s: float | None = None) -> None:
        """Report NOT_SERVING, then stop; calls still running get `grace_s` to finish."""
        if self._health is not None:
            for name in list(self._health.statuses):
                self._health.set(name, HealthStatus.NOT_SERVING)
        if self._server is not None:
            await self._server.stop(grace_s)

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> GrpcServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _checked(interface: type, implementation: object) -> tuple[ProtoSchema, object]:
    schema = proto_schema(interface)
    for method in schema.methods.values():
        fn = getattr(implementation, method.spec.attr, None)
        if not callable(fn):
            raise LocalProtocolError(
                f"{type(implementation).__name__} does not implement "
                f"{schema.spec.name}.{method.spec.attr}"
            )
    return schema, implementation


async def serve_grpc(
    address: str,
    *services: tuple[type, object],
    credentials: Any = None,
    health: bool = True,
    options: Sequence[tuple[str, Any]] = (),
) -> GrpcServer:
    """Start a gRPC server for ``(Interface, implementation)`` pairs; returns it started.

    ``server.port`` is the bound port (useful with port 0); ``await server.stop()`` ends it.
    """
    server = GrpcServer(*services, health=health, options=options)
    await server.start(address, credentials)
    return server
