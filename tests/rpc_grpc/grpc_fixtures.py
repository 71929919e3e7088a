"""A test service for the gRPC bridge and a client that uses only the runtime message
classes (no generated code), so the server tests need no protoc run."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from grpc import aio

from tejido.rpc import ServiceError, method, service
from tejido.rpc.context import current_call
from tejido.rpc.proto import ProtoSchema, proto_schema


class Mood(enum.Enum):
    HAPPY = 1
    SAD = 2


class Refused(ServiceError):
    grpc_status = "PERMISSION_DENIED"


class Missing(ServiceError):  # no grpc_status: FAILED_PRECONDITION
    pass


class VeryMissing(Missing):  # a subclass of a declared error travels as the declared one
    pass


class Undeclared(ServiceError):
    pass


@dataclasses.dataclass(frozen=True)
class CallInfo:
    """What `current_call()` showed the implementation."""

    service: str
    method: str
    remaining_s: float | None
    user: str


@service(name="lab.v1.Lab")
class Lab:
    errors = (Refused, Missing)

    async def mood(self, mood: Mood) -> Mood: ...

    async def fail(self, kind: str) -> int: ...

    async def bad_result(self) -> int: ...

    async def block(self, name: str) -> int: ...

    async def count(self, upto: int, hang_after: int | None = None) -> AsyncIterator[int]: ...

    async def total(self, scale: int, values: AsyncIterator[float]) -> float: ...

    async def shout(self, words: AsyncIterator[str]) -> AsyncIterator[str]: ...

    @method(oneway=True)
    async def note(self, line: str) -> None: ...

    async def call_info(self) -> CallInfo: ...


class LabImpl(Lab):
    """Records what happened so tests can wait on it (events, not sleeps)."""

    def __init__(self) -> None:
        self.started: dict[str, asyncio.Event] = {}
        self.cancelled: dict[str, asyncio.Event] = {}
        self.notes: list[str] = []

    def event(self, table: dict[str, asyncio.Event], name: str) -> asyncio.Event:
        return table.setdefault(name, asyncio.Event())

    async def mood(self, mood: Mood) -> Mood:
        return Mood.SAD if mood is Mood.HAPPY else Mood.HAPPY

    async def fail(self, kind: str) -> int:
        errors: dict[str, Exception] = {
            "refused": Refused("not you"),
            "missing": Missing("gone"),
            "very": VeryMissing("really gone"),
            "undeclared": Undeclared("secret"),
            "value": ValueError("boom"),
        }
        raise errors[kind]

    async def bad_result(self) -> int:
        return "not an int"  # type: ignore[return-value]

    async def block(self, name: str) -> int:
        self.event(self.started, name).set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.event(self.cancelled, name).set()
            raise
        return 0

    async def count(self, upto: int, hang_after: int | None = None) -> AsyncIterator[int]:
        for i in range(upto):
            if i == hang_after:
                await self.block(f"count-{upto}")
            yield i

    async def total(self, scale: int, values: AsyncIterator[float]) -> float:
        return scale * sum([value async for value in values])

    async def shout(self, words: AsyncIterator[str]) -> AsyncIterator[str]:
        async for word in words:
            yield word.upper()

    async def note(self, line: str) -> None:
        self.notes.append(line)

    async def call_info(self) -> CallInfo:
        call = current_call()
        if call is None:
            raise RuntimeError("current_call() is None inside a gRPC call")
        return CallInfo(call.service, call.method, call.time_remaining(), call.metadata["x-user"])


class RawClient:
    """Calls a served interface through a grpcio channel with the runtime message classes."""

    def __init__(self, channel: aio.Channel, schema: ProtoSchema) -> None:
        self.channel = channel
        self.schema = schema

    def _callable(self, rpc: str, kind: str) -> Any:
        method = self.schema.methods[rpc]
        return getattr(self.channel, kind)(
            method.path,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=method.response_class.FromString,
        )

    async def unary(
        self,
        rpc: str,
        timeout: float | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
        **arguments: Any,
    ) -> Any:
        method = self.schema.methods[rpc]
        call = self._callable(rpc, "unary_unary")
        response = await call(method.encode_args(arguments), timeout=timeout, metadata=metadata)
        return method.decode_result(response)

    def server_stream(self, rpc: str, timeout: float | None = None, **arguments: Any) -> Any:
        method = self.schema.methods[rpc]
        return self._callable(rpc, "unary_stream")(method.encode_args(arguments), timeout=timeout)

    async def client_stream(self, rpc: str, items: list[Any], **arguments: Any) -> Any:
        method = self.schema.methods[rpc]

        async def requests() -> AsyncIterator[Any]:
            if method.header_first:
                yield method.encode_args(arguments)
            for item in items:
                yield method.encode_item(item)

        response = await self._callable(rpc, "stream_unary")(requests())
        return method.decode_result(response)


async def with_lab(
    body: Callable[[RawClient, LabImpl, Any], Awaitable[Any]], **server_options: Any
) -> Any:
    """Serve a fresh `LabImpl` on an ephemeral port and run `body(client, impl, server)`."""
    from tejido.rpc.grpc import serve_grpc

    impl = LabImpl()
    server = await serve_grpc("127.0.0.1:0", (Lab, impl), **server_options)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            return await body(RawClient(channel, proto_schema(Lab)), impl, server)
    finally:
        await server.stop(grace_s=None)


@service(name="lab.v1.Dated")
class Dated:
    """msgspec carries datetimes, proto3 (without well-known types) does not."""

    async def at(self, when: datetime) -> int: ...
