"""Bad input against a real server, over raw sockets: each gets a clear error, the server
keeps serving its other clients, and memory stays bounded. Plus a hypothesis test of the
frame decoder and the frame codec on random bytes and random splits of valid frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rpc_fixtures import CalcImpl, Calculator, run

import tejido.rpc as rpc
from tejido.net.connection import DEFAULT_HIGH_WATER
from tejido.net.frames import FrameDecoder, FrameError, encode_frame
from tejido.net.handshake import Hello, Welcome, decode_handshake, encode_handshake
from tejido.rpc import wire
from tejido.rpc.wire import Call, Failure, Goaway, Reply


@rpc.service
class Blob:
    async def get(self, size: int, pad: bytes) -> bytes: ...


class BlobImpl(Blob):
    async def get(self, size: int, pad: bytes) -> bytes:
        return b"b" * size


class Raw:
    """A hand-driven client: handshake, then whatever bytes a test wants to send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: str, buffer_bytes: int | None = None) -> Raw:
        host, port = address.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if buffer_bytes is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_bytes)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        raw = cls(reader, writer)
        raw.send(encode_handshake(Hello(cluster="tejido", node="", purpose="rpc")))
        assert isinstance(decode_handshake(await raw.frame()), Welcome)
        return raw

    def send(self, payload: bytes) -> None:
        self.writer.write(encode_frame(payload))

    async def frame(self) -> bytes:
        header = await self.reader.readexactly(4)
        return await self.reader.readexactly(int.from_bytes(header, "big"))

    async def answer(self) -> wire.ServerFrame | wire.ServerBatch:
        return wire.from_server.decode(await self.frame())

    async def answers(self, count: int) -> dict[int, Failure | Reply]:
        """The next `count` replies and failures by call id (batches unpacked)."""
        found: dict[int, Failure | Reply] = {}
        while len(found) < count:
            frame = await self.answer()
            for one in frame.frames if isinstance(frame, wire.ServerBatch) else [frame]:
                assert isinstance(one, Failure | Reply)
                found[one.id] = one
        assert len(found) == count
        return found

    async def closed(self) -> bool:
        """True once the server has closed the connection (EOF or reset)."""
        try:
            async with asyncio.timeout(5):
                while await self.reader.read(65536):
                    pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.writer.transport.abort()


def call_frame(cid: int, service: str, method: str, args: object, slot: int = 0) -> bytes:
    target = wire.Target(slot, service, method, "")
    return wire.encoder.encode((wire.CALL, cid, target, None, None, 0, args))


@contextlib.asynccontextmanager
async def served(**options: object) -> AsyncIterator[tuple[rpc.Server, Calculator]]:
    server = await rpc.serve(
        "127.0.0.1:0",
        {Calculator: CalcImpl(), Blob: BlobImpl()},
        **options,  # type: ignore[arg-type]
    )
    calc = await rpc.connect(Calculator, server.address)
    try:
        yield server, calc
    finally:
        await rpc.close(calc)
        await server.close()


def test_garbage_after_the_handshake_closes_that_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with served() as (server, calc):
            raw = await Raw.open(server.address)
            raw.send(b"\xc1 not msgpack")
            goaway = await raw.answer()
            assert isinstance(goaway, Goaway)
            assert "protocol violation" in goaway.reason
            assert "undecodable frame" in goaway.reason
            assert await raw.closed()
            assert await calc.add(1, 2) == 3

    with caplog.at_level(logging.WARNING, logger="tejido.rpc"):
        run(main())
    assert any("protocol violation" in r.getMessage() for r in caplog.records)


def test_unframed_garbage_and_oversized_frames_close_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with served(max_frame=1024) as (server, calc):
            raw = await Raw.open(server.address)
            raw.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # a 1.1 GB "length"
            assert await raw.closed()
            raw = await Raw.open(server.address)
            raw.writer.write((10**6).to_bytes(4, "big") + b"x" * 2000)
            assert await raw.closed()
            assert await calc.add(2, 2) == 4

    with caplog.at_level(logging.WARNING, logger="tejido.rpc"):
        run(main())
    assert any("exceeds the maximum frame size" in r.getMessage() for r in caplog.records)


def test_a_truncated_frame_then_hanging_up_leaves_the_server_serving() -> None:
    async def main() -> None:
        async with served() as (server, calc):
            lost = asyncio.Event()
            server.on_disconnect(lambda peer: lost.set())
            raw = await Raw.open(server.address)
            frame = encode_frame(call_frame(1, "Calculator", "add", (1, 2)))
            raw.writer.write(frame[: len(frame) // 2])
            await raw.writer.drain()
            raw.close()
            async with asyncio.timeout(5):
                await lost.wait()
            assert await calc.add(3, 4) == 7

    run(main())


def test_raw_calls_get_clear_failures_and_the_connection_stays_open() -> None:
    async def main() -> None:
        async with served() as (server, _):
            raw = await Raw.open(server.address)
            raw.send(call_frame(1, "Nope", "add", (1, 2)))
            raw.send(call_frame(2, "Calculator", "nope", (1, 2)))
            raw.send(call_frame(3, "Calculator", "add", (1, "x")))
            raw.send(call_frame(4, "Calculator", "add", {"a": 1}))
            raw.send(call_frame(5, "Calculator", "add", (1, 2)))
            answers = await raw.answers(5)
            assert isinstance(answers[1], Failure)
            assert answers[1].code == "unknown"
            assert "unknown service 'Nope'" in answers[1].message
            assert isinstance(answers[2], Failure)
            assert answers[2].code == "unknown"
            assert "no method 'nope'" in answers[2].message
            assert isinstance(answers[3], Failure)
            assert answers[3].code == "bad_arguments"
            assert "parameter 'b'" in answers[3].message
            assert isinstance(answers[4], Failure)
            assert answers[4].code == "bad_arguments"
            assert isinstance(answers[5], Reply)
            assert msgspec.msgpack.decode(answers[5].value) == 3
            raw.close()

    run(main())


def slot_call(cid: int, slot: int, args: object) -> bytes:
    return wire.encoder.encode((wire.CALL, cid, slot, None, None, 0, args))


def test_method_slots_bind_once_and_follow_registry_changes() -> None:
    async def main() -> None:
        async with served() as (server, calc):
            raw = await Raw.open(server.address)

            async def ask(*payloads: bytes) -> dict[int, Failure | Reply]:
                for payload in payloads:
                    raw.send(payload)
                return await raw.answers(len(payloads))

            answers = await ask(
                call_frame(1, "Calculator", "add", (1, 2), slot=7),  # binds slot 7
                slot_call(2, 7, (3, 4)),
                slot_call(3, 8, (3, 4)),  # never bound
                call_frame(4, "Calculator", "add", (1, 2), slot=wire.MAX_SLOTS + 1),
                call_frame(5, "Calculator", "divide", (1, 2), slot=7),  # rebinds slot 7
                slot_call(6, 7, (1, 4)),
            )
            values = {cid: a for cid, a in answers.items() if isinstance(a, Reply)}
            assert {cid: msgspec.msgpack.decode(a.value) for cid, a in values.items()} == {
                1: 3,
                2: 7,
                5: 0.5,
                6: 0.25,
            }
            for cid, text in ((3, "slot 8, which this connection never bound"), (4, "range")):
                failure = answers[cid]
                assert isinstance(failure, Failure)
                assert failure.code == "protocol"
                assert text in failure.message
            server.remove(Calculator)
            [gone] = (await ask(slot_call(7, 7, (1, 1)))).values()
            assert isinstance(gone, Failure)
            assert gone.code == "unknown"
            server.add(Calculator, CalcImpl())
            [back] = (await ask(slot_call(8, 7, (1, 1)))).values()
            assert isinstance(back, Reply)
            assert msgspec.msgpack.decode(back.value) == 1.0
            assert await calc.add(2, 2) == 4  # the typed client re-resolves its slot too
            raw.close()

    run(main())


def test_a_client_that_does_not_read_its_replies_is_paused_not_buffered() -> None:
    """The server stops reading a client whose replies back up; others are unaffected."""

    async def main() -> None:
        async with served() as (server, calc):
            raw = await Raw.open(server.address, buffer_bytes=4096)
            pad = b"p" * 4096
            blocked = False
            for batch in range(10_000):
                for i in range(16):
                    raw.send(call_frame(batch * 16 + i + 1, "Blob", "get", (65536, pad)))
                try:
                    await asyncio.wait_for(raw.writer.drain(), 0.5)
                except TimeoutError:
                    blocked = True  # the server stopped reading us
                    break
            assert blocked
            [stuck] = [c for c in server._connections if c.reading_paused]
            assert stuck.conn.buffered <= DEFAULT_HIGH_WATER + 2 * 65536
            assert await calc.add(5, 5) == 10  # another client is still served
            lost = asyncio.Event()
            server.on_disconnect(lambda peer: lost.set())
            raw.close()
            async with asyncio.timeout(5):
                await lost.wait()
            assert await calc.add(6, 6) == 12

    run(main())


def test_too_many_concurrent_calls_pause_reading_until_some_finish() -> None:
    async def main() -> None:
        impl = CalcImpl()
        async with await rpc.serve(
            "127.0.0.1:0", {Calculator: impl}, max_calls_per_connection=4
        ) as server:
            calc = await rpc.connect(Calculator, server.address)
            with rpc.call_options(timeout=10):
                slow = [asyncio.ensure_future(calc.sleep(0.05)) for _ in range(12)]
                results = await asyncio.gather(*slow)
            assert results == ["slept"] * 12
            await rpc.close(calc)

    run(main())


# ---------------------------------------------------------------------- decoder properties

VALID = [
    wire.encoder.encode(frame)
    for frame in (
        (wire.CALL, 1, (0, "Calculator", "add", ""), None, None, 0, (1, 2)),
        (wire.CALL, 2, (3, "S", "m", "obj"), 1.5, {"k": "v"}, 64, []),
        (wire.CALL, 3, 3, None, None, 0, []),
        (wire.CANCEL, 7),
        (wire.ITEM, 3, b"payload"),
        (wire.END, 3),
        (wire.CREDIT, 3, 32),
    )
]


def decode_stream(chunks: list[bytes]) -> list[wire.ClientFrame]:
    """What a server would do with these chunks: frames decoded, or a protocol error."""
    decoder = FrameDecoder(max_frame=4096)
    out: list[wire.ClientFrame] = []
    for chunk in chunks:
        for payload in decoder.feed(chunk):
            out.append(wire.from_client.decode(payload))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_only_yield_frames_or_a_protocol_error(chunks: list[bytes]) -> None:
    try:
        frames = decode_stream(chunks)
    except (FrameError, msgspec.DecodeError):
        return  # a protocol error: the server closes that connection
    assert all(isinstance(frame, wire.ClientFrame) for frame in frames)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=6), st.data())
def test_random_splits_of_valid_frames_decode_to_the_same_frames(
    payloads: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    frames = decode_stream(chunks)
    assert [wire.encoder.encode(f) for f in frames] == payloads
    assert all(isinstance(f, wire.ClientFrame) for f in frames)
    assert isinstance(frames[0], Call | wire.Cancel | wire.Item | wire.End | wire.Credit)
