"""The fast paths answer exactly as the general path does.

The server handles a read that is one plain unary call in `_Connection.data_received`
(`FramedConnection.divert`) and the client a read that is one reply in
`Channel.data_received`; the stub writes a sequential call itself and adds a concurrent one
to the batch itself. Each case here is run twice on fresh connections, once through the
fast path and once through the general one (`FramedConnection.data_received`, which frames
the read and calls ``frames_received``), and the answers must be the same: results,
declared and undeclared errors, bad arguments, unknown slots, results that cannot be
encoded, implementations that suspend, `current_call()` and context isolation, reads split
in two. The fast path must also really be taken for the plain calls.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import msgspec
import pytest
from rpc_fixtures import CalcImpl, Calculator, Recorder, run

import tejido.rpc as rpc
from tejido.net.connection import FramedConnection
from tejido.net.handshake import Hello
from tejido.rpc import wire
from tejido.rpc.channel import Channel
from tejido.rpc.client import _method_call
from tejido.rpc.streams import Inbound

_seen: contextvars.ContextVar[int] = contextvars.ContextVar("fast_path_seen", default=0)


@rpc.service
class Probe:
    async def echo(self, data: bytes) -> bytes: ...

    async def unencodable(self) -> int: ...

    async def later(self, value: int) -> int: ...

    async def who(self) -> str: ...

    async def mark(self, value: int) -> int: ...

    async def fail(self, message: str) -> int: ...


class ProbeImpl(Probe):
    async def echo(self, data: bytes) -> bytes:
        return data

    async def unencodable(self) -> int:
        return object()  # type: ignore[return-value]

    async def later(self, value: int) -> int:
        await asyncio.sleep(0)  # suspends: the rest runs in a task
        return value + 1

    async def who(self) -> str:
        call = rpc.current_call()
        assert call is not None
        return f"{call.service}.{call.method}"

    async def mark(self, value: int) -> int:
        before = _seen.get()  # what an earlier call set must not be visible
        _seen.set(value)
        return before

    async def fail(self, message: str) -> int:
        raise KeyError(message)


def framed(obj: object) -> bytes:
    payload = wire.encoder.encode(obj)
    return len(payload).to_bytes(4, "big") + payload


def call_frame(cid: int, target: int | wire.Target, *args: Any, metadata: Any = None) -> bytes:
    return framed((wire.CALL, cid, target, None, metadata, 0, args))


SLOTS = {"echo": 1, "unencodable": 2, "later": 3, "who": 4, "mark": 5, "fail": 6}
BIND = [
    call_frame(100 + slot, wire.Target(slot, "Probe", name, ""), *args)
    for (name, slot), args in zip(SLOTS.items(), [(b"",), (), (0,), (), (0,), ("x",)], strict=True)
]


async def answers(path: str, reads: list[bytes]) -> tuple[list[object], int]:
    """Feed `reads` to a fresh server connection; its decoded answers, and how many of
    the reads after the binding ones went the general way."""
    server = rpc.Server()
    server.add(Probe, ProbeImpl())
    conn = FramedConnection()
    recorder = Recorder()
    conn.connection_made(recorder)  # type: ignore[arg-type]
    receiver = server._accept(conn, Hello(cluster="tejido", node="", purpose="rpc"))
    conn.attach(receiver)
    for read in BIND:  # the first call of each method binds its slot (general in both)
        await answered(conn.data_received, read, recorder)
    general = 0
    batch = conn._batch
    assert batch is not None

    def counting(payloads: list[bytes]) -> None:
        nonlocal general
        general += 1
        batch(payloads)

    conn._batch = counting
    for read in reads:
        if path == "fast":  # diverted: the receiver's fast path first
            await answered(conn.data_received, read, recorder)
        else:
            await answered(FramedConnection.data_received.__get__(conn), read, recorder)
    decoded = [wire.from_server.decode(p) for p in recorder.payloads()[len(BIND) :]]
    return [without_traceback(frame) for frame in decoded], general


async def answered(deliver: Any, read: bytes, recorder: Recorder) -> None:
    """Deliver one read; wait for an answer unless it held only part of a frame."""
    recorder.wrote.clear()
    deliver(read)
    if len(read) < 4 or int.from_bytes(read[:4], "big") > len(read) - 4:
        return  # part of a frame: nothing to answer yet
    if not recorder.wrote.is_set():  # an implementation that suspended
        async with asyncio.timeout(5.0):
            await recorder.wrote.wait()


def without_traceback(frame: object) -> object:
    if isinstance(frame, wire.Failure):
        assert frame.code != wire.Code.REMOTE or "KeyError" in frame.traceback
        return msgspec.structs.replace(frame, traceback="")
    return frame


CASES = {
    "result": [call_frame(1, SLOTS["echo"], b"hello"), call_frame(2, SLOTS["echo"], b"")],
    "bad arguments": [call_frame(1, SLOTS["echo"], 42)],
    "missing argument": [call_frame(1, SLOTS["echo"])],
    "undeclared error": [call_frame(1, SLOTS["fail"], "boom")],
    "unencodable result": [call_frame(1, SLOTS["unencodable"])],
    "suspends": [call_frame(1, SLOTS["later"], 41), call_frame(2, SLOTS["echo"], b"after")],
    "current call": [call_frame(1, SLOTS["who"])],
    "context isolation": [call_frame(1, SLOTS["mark"], 7), call_frame(2, SLOTS["mark"], 8)],
    "unknown slot": [call_frame(1, 99, b"x")],
    "metadata": [call_frame(1, SLOTS["who"], metadata={"k": "v"})],
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_server_fast_path_answers_as_the_general_path(case: str) -> None:
    async def main() -> None:
        fast, fast_general = await answers("fast", CASES[case])
        slow, slow_general = await answers("general", CASES[case])
        assert fast == slow
        assert slow_general == len(CASES[case])
        if case in ("result", "context isolation", "current call"):
            assert fast_general == 0  # really taken
        assert fast  # every call was answered

    run(main())


def test_what_the_fast_path_answers() -> None:
    async def main() -> None:
        frames = {case: (await answers("fast", reads))[0] for case, reads in CASES.items()}
        assert frames["result"] == [
            wire.Reply(1, msgspec.Raw(wire.encoder.encode(b"hello"))),
            wire.Reply(2, msgspec.Raw(wire.encoder.encode(b""))),
        ]
        [bad] = frames["bad arguments"]
        assert isinstance(bad, wire.Failure)
        assert bad.code == wire.Code.BAD_ARGUMENTS
        assert "parameter 'data'" in bad.message
        [failed] = frames["undeclared error"]
        assert isinstance(failed, wire.Failure)
        assert (failed.code, failed.error_type) == (wire.Code.REMOTE, "KeyError")
        [unencodable] = frames["unencodable result"]
        assert isinstance(unencodable, wire.Failure)
        assert "cannot be encoded" in unencodable.message
        later, after = frames["suspends"]
        assert isinstance(later, wire.Reply)
        assert isinstance(after, wire.Reply)
        assert (msgspec.msgpack.decode(later.value), later.id) == (42, 1)
        assert after.id == 2
        [who] = frames["current call"]
        assert isinstance(who, wire.Reply)
        assert msgspec.msgpack.decode(who.value) == "Probe.who"
        first, second = frames["context isolation"]
        assert isinstance(first, wire.Reply)
        assert isinstance(second, wire.Reply)
        assert msgspec.msgpack.decode(first.value) == 0
        assert msgspec.msgpack.decode(second.value) == 0  # not the 7 the first call set
        [unknown] = frames["unknown slot"]
        assert isinstance(unknown, wire.Failure)
        assert unknown.code == wire.Code.PROTOCOL

    run(main())


def test_a_call_split_over_two_reads_is_answered_once() -> None:
    async def main() -> None:
        read = call_frame(1, SLOTS["echo"], b"split")
        fast, general = await answers("fast", [read[:7], read[7:]])
        assert fast == [wire.Reply(1, msgspec.Raw(wire.encoder.encode(b"split")))]
        assert general == 1  # the part with the whole frame went the general way

    run(main())


# ---------------------------------------------------------------------- client side
def client_channel() -> tuple[Channel, FramedConnection]:
    conn = FramedConnection()
    conn.connection_made(Recorder())  # type: ignore[arg-type]
    return Channel(conn, "test:1", 1 << 20), conn


@pytest.mark.parametrize("path", ["fast", "general"])
def test_the_client_fast_path_completes_calls_as_the_general_path(path: str) -> None:
    async def main() -> None:
        channel, conn = client_channel()
        spec = rpc.describe_service(Calculator)
        add = _method_call(spec, spec.methods["add"], "")
        deliver = (
            conn.data_received if path == "fast" else FramedConnection.data_received.__get__(conn)
        )
        cid, future = channel.start(add, (1, 1), None, None)
        other, pending = channel.start(add, (2, 2), None, None)
        deliver(framed((wire.REPLY, 999, 5)))  # nobody waits for it: ignored
        deliver(framed((wire.REPLY, cid, 2)))
        assert future.result() == wire.Reply(cid, msgspec.Raw(wire.encoder.encode(2)))
        assert not conn.write_next_at_once  # another call is still in flight
        failure = framed((wire.FAILURE, other, "remote", "KeyError", "k", "tb"))
        deliver(failure[:5])
        deliver(failure[5:])
        with pytest.raises(rpc.RemoteError):
            add.result(pending.result())
        third, last = channel.start(add, (3, 3), None, None)
        deliver(framed((wire.REPLY, third, 6)))
        assert add.result(last.result()) == 6
        assert conn.write_next_at_once  # the last call in flight came back
        count = _method_call(spec, spec.methods["count"], "")
        inbound: Inbound[int] = Inbound(count.item_decoder, 4, lambda n: None, "count")
        stream = channel.open_stream(count, inbound, (3,), None, None, None)
        deliver(framed((wire.REPLY, stream.cid, 1)))  # a stream does not get a reply
        assert inbound.done
        with pytest.raises(rpc.ProtocolViolation, match="a stream got a reply"):
            await inbound.__anext__()
        assert channel.alive
        channel.broken(rpc.Unavailable("test over"))

    run(main())


def test_stub_fast_paths_keep_errors_and_large_calls_as_the_general_path() -> None:
    async def main() -> None:
        async with await rpc.serve(
            "127.0.0.1:0", {Calculator: CalcImpl(), Probe: ProbeImpl()}
        ) as server:
            calc = await rpc.connect(Calculator, server.address)
            probe = rpc.client_of(calc).stub(Probe)
            assert await calc.add(1, 1) == 2  # binds the slot; the next call is written at once
            with pytest.raises(rpc.BadArguments, match="cannot be encoded"):
                await calc.add(object(), 1)  # type: ignore[arg-type]
            with pytest.raises(rpc.BadArguments, match="parameter 'a'"):
                await calc.add("one", 1)  # type: ignore[arg-type]
            big = b"x" * 200_000  # above a batch: sent alone, both ways
            assert await probe.echo(b"") == b""
            assert await probe.echo(big) == big
            many = await asyncio.gather(
                *(calc.add(i, i) for i in range(40)),
                probe.echo(big),
                calc.add(object(), 2),  # type: ignore[arg-type]
                return_exceptions=True,
            )
            assert many[:40] == [2 * i for i in range(40)]
            assert many[40] == big
            assert isinstance(many[41], rpc.BadArguments)
            assert await calc.add(20, 22) == 42  # the connection is still fine
            await rpc.close(calc)

    run(main())


def test_the_stub_fast_path_channel_is_set_only_for_plain_clients_and_dropped_when_it_breaks() -> (
    None
):
    async def passthrough(call: rpc.ClientCall, proceed: Any) -> Any:
        return await proceed(call)

    async def main() -> None:
        server = await rpc.serve("127.0.0.1:0", {Probe: ProbeImpl()})
        plain = await rpc.connect(Probe, server.address)
        wrapped = await rpc.connect(Probe, server.address, interceptors=[passthrough])
        client = rpc.client_of(plain)
        assert client._fast is not None
        assert client._fast is client._ready
        assert rpc.client_of(wrapped)._fast is None  # interceptors: never the fast path
        assert await plain.echo(b"a") == b"a"
        assert await wrapped.echo(b"b") == b"b"
        channel = client._fast
        channel.broken(rpc.Unavailable("test: the connection broke"))
        assert client._fast is None  # the stub takes the general way, which reconnects
        assert await plain.echo(b"c") == b"c"
        assert client._fast is not None
        assert client._fast is not channel
        await rpc.close(plain)
        assert client._fast is None
        with pytest.raises(rpc.Unavailable):
            await plain.echo(b"d")
        await rpc.close(wrapped)
        await server.close()

    run(main())
