"""tejido.rpc.grpc in one process: status codes for every kind of failure, deadlines and
cancellation reaching the implementation, every streaming shape, and the health service."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_fixtures import Lab, LabImpl, Mood, RawClient, with_lab

from tejido.core.errors import LocalProtocolError
from tejido.rpc.grpc import ERROR_TYPE_KEY, GrpcHealth, GrpcServer, HealthStatus
from tejido.rpc.proto import proto_schema

WAIT_S = 10.0  # upper bound on waiting for an event that must happen


async def rpc_error(awaitable: Any) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as raised:
        await awaitable
    return raised.value


def test_unary_call_with_an_enum() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> Any:
        return await client.unary("Mood", mood=Mood.HAPPY)

    assert asyncio.run(with_lab(body)) is Mood.SAD


@pytest.mark.parametrize(
    ("kind", "code", "details", "error_type"),
    [
        ("refused", grpc.StatusCode.PERMISSION_DENIED, "Refused: not you", "Refused"),
        ("missing", grpc.StatusCode.FAILED_PRECONDITION, "Missing: gone", "Missing"),
        ("very", grpc.StatusCode.FAILED_PRECONDITION, "Missing: really gone", "Missing"),
        ("undeclared", grpc.StatusCode.INTERNAL, "Undeclared: secret", None),
        ("value", grpc.StatusCode.INTERNAL, "ValueError: boom", None),
    ],
)
def test_errors_map_to_status_codes(
    kind: str, code: grpc.StatusCode, details: str, error_type: str | None
) -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> aio.AioRpcError:
        return await rpc_error(client.unary("Fail", kind=kind))

    error = asyncio.run(with_lab(body))
    assert error.code() == code
    assert error.details() == details
    assert dict(error.trailing_metadata() or ()).get(ERROR_TYPE_KEY) == error_type


def test_bad_input_is_invalid_argument_and_the_server_keeps_serving() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> Any:
        method = client.schema.methods["Mood"]
        garbage = client.channel.unary_unary(method.path)
        corrupt = await rpc_error(garbage(b"\xff\xff\xff"))
        unspecified = await rpc_error(garbage(method.request_class(mood=0).SerializeToString()))
        unknown = await rpc_error(client.channel.unary_unary("/lab.v1.Lab/Nope")(b""))
        still = await client.unary("Mood", mood=Mood.SAD)
        return corrupt, unspecified, unknown, still

    corrupt, unspecified, unknown, still = asyncio.run(with_lab(body))
    assert corrupt.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in corrupt.details()
    assert unspecified.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "argument 'mood'" in unspecified.details()
    assert unknown.code() == grpc.StatusCode.UNIMPLEMENTED
    assert still is Mood.HAPPY


def test_a_result_that_breaks_the_interface_is_internal() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> aio.AioRpcError:
        return await rpc_error(client.unary("BadResult"))

    error = asyncio.run(with_lab(body))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "result does not match the interface" in error.details()


def test_the_deadline_cancels_the_implementation() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> Any:
        error = await rpc_error(client.unary("Block", timeout=0.2, name="d"))
        await asyncio.wait_for(impl.event(impl.cancelled, "d").wait(), WAIT_S)
        return error

    error = asyncio.run(with_lab(body))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_current_call_carries_the_grpc_deadline_and_metadata() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> Any:
        user = (("x-user", "ada"),)
        bounded = await client.unary("CallInfo", timeout=30.0, metadata=user)
        unbounded = await client.unary("CallInfo", metadata=user)
        return bounded, unbounded

    bounded, unbounded = asyncio.run(with_lab(body))
    assert (bounded.service, bounded.method, bounded.user) == ("lab.v1.Lab", "call_info", "ada")
    assert bounded.remaining_s is not None
    # gRPC's wire format rounds a timeout up (grpc-core's timeout encoding keeps three
    # significant figures: 30,001 ms goes out as 30,100 ms), so the server may
    # see slightly more than the client asked for, never much more.
    assert 0 < bounded.remaining_s <= 30.2
    assert unbounded.remaining_s is None


def test_client_cancellation_cancels_the_implementation() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> bool:
        method = client.schema.methods["Block"]
        call = client._callable("Block", "unary_unary")(method.encode_args({"name": "c"}))
        await asyncio.wait_for(impl.event(impl.started, "c").wait(), WAIT_S)
        call.cancel()
        await asyncio.wait_for(impl.event(impl.cancelled, "c").wait(), WAIT_S)
        return call.cancelled()

    assert asyncio.run(with_lab(body))


def test_server_stream_items_then_a_deadline_mid_stream() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> Any:
        method = client.schema.methods["Count"]
        items = [method.decode_result(r) async for r in client.server_stream("Count", upto=4)]
        got: list[int] = []
        call = client.server_stream("Count", timeout=0.3, upto=5, hang_after=2)

        async def drain() -> None:
            async for response in call:
                got.append(method.decode_result(response))

        error = await rpc_error(drain())
        await asyncio.wait_for(impl.event(impl.cancelled, "count-5").wait(), WAIT_S)
        return items, got, error.code()

    items, got, code = asyncio.run(with_lab(body))
    assert items == [0, 1, 2, 3]
    assert got == [0, 1]
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_stream_takes_arguments_first_then_items() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> Any:
        total = await client.client_stream("Total", [1.5, 2.5], scale=10)
        empty = await client.client_stream("Total", [], scale=3)
        method = client.schema.methods["Total"]
        no_header = client.channel.stream_unary(method.path)

        async def nothing() -> Any:
            for _ in ():
                yield b""

        error = await rpc_error(no_header(nothing()))
        return total, empty, error

    total, empty, error = asyncio.run(with_lab(body))
    assert total == 40.0
    assert empty == 0.0
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "before its first message" in error.details()


def test_a_corrupt_stream_item_is_invalid_argument() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> aio.AioRpcError:
        method = client.schema.methods["Total"]
        raw = client.channel.stream_unary(method.path)

        async def requests() -> Any:
            yield method.encode_args({"scale": 2}).SerializeToString()
            yield method.encode_item(1.0).SerializeToString()
            yield b"\xff\xff\xff"

        return await rpc_error(raw(requests()))

    error = asyncio.run(with_lab(body))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in error.details()


def test_bidi_stream_answers_each_message() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> list[str]:
        method = client.schema.methods["Shout"]
        call = client._callable("Shout", "stream_stream")()
        replies: list[str] = []
        for word in ("a", "bc"):
            await call.write(method.encode_item(word))
            replies.append(method.decode_result(await call.read()))
        await call.done_writing()
        assert await call.read() is aio.EOF
        return replies

    assert asyncio.run(with_lab(body)) == ["A", "BC"]


def test_oneway_is_a_unary_call_with_an_empty_response() -> None:
    async def body(client: RawClient, impl: LabImpl, server: Any) -> Any:
        return await client.unary("Note", line="hello"), impl.notes

    result, notes = asyncio.run(with_lab(body))
    assert result is None
    assert notes == ["hello"]


def test_health_check_and_watch() -> None:
    async def body(client: RawClient, impl: LabImpl, server: GrpcServer) -> Any:
        health = RawClient(client.channel, proto_schema(GrpcHealth))
        whole = await health.unary("Check", service="")
        lab = await health.unary("Check", service="lab.v1.Lab")
        unknown = await rpc_error(health.unary("Check", service="nope"))
        method = health.schema.methods["Watch"]
        watch = health.server_stream("Watch", service="lab.v1.Lab")
        first = method.decode_result(await watch.read())
        server.set_status("lab.v1.Lab", HealthStatus.NOT_SERVING)
        second = method.decode_result(await watch.read())
        watch.cancel()
        return whole, lab, unknown.code(), first, second

    whole, lab, unknown, first, second = asyncio.run(with_lab(body))
    assert whole is lab is HealthStatus.SERVING
    assert unknown == grpc.StatusCode.NOT_FOUND
    assert (first, second) == (HealthStatus.SERVING, HealthStatus.NOT_SERVING)


def test_health_can_be_left_out() -> None:
    async def body(client: RawClient, impl: LabImpl, server: GrpcServer) -> Any:
        health = RawClient(client.channel, proto_schema(GrpcHealth))
        return await rpc_error(health.unary("Check", service=""))

    error = asyncio.run(with_lab(body, health=False))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_an_implementation_missing_a_method_is_refused() -> None:
    class Partial:
        async def mood(self, mood: Mood) -> Mood:
            return mood

    with pytest.raises(LocalProtocolError, match=r"Partial does not implement lab\.v1\.Lab\."):
        GrpcServer((Lab, Partial()))
    with pytest.raises(LocalProtocolError, match="given twice"):
        GrpcServer((Lab, LabImpl()), (Lab, LabImpl()))
