"""Batched frames (`tejido.rpc.wire`, rule 6): the client sends one iteration's unary calls
as one frame, in order with everything else it sends; calls still batched when the
connection breaks fail as never sent; batches of any size decode to their frames."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
import rpc_fixtures
from rpc_fixtures import CalcImpl, Calculator, run

import tejido.rpc as rpc
from tejido.net.connection import FramedConnection
from tejido.rpc import wire
from tejido.rpc.channel import PIPELINE_CALLS, SMALL_CALL, Channel, MethodCall, NotSent
from tejido.rpc.client import _method_call


class Recorder(rpc_fixtures.Recorder):
    """The shared recording transport, read back as client frames."""

    def frames(self) -> list[wire.ClientFrame | wire.ClientBatch]:
        return [wire.from_client.decode(p) for p in self.payloads()]


def channel_on_recorder() -> tuple[Channel, FramedConnection, Recorder]:
    conn = FramedConnection()
    recorder = Recorder()
    conn.connection_made(recorder)  # type: ignore[arg-type]
    return Channel(conn, "test:1", 1 << 20), conn, recorder


def calculator_call(name: str) -> MethodCall:
    """The client's call object for one of `Calculator`'s methods."""
    spec = rpc.describe_service(Calculator)
    return _method_call(spec, spec.methods[name], "")


def test_calls_of_one_iteration_leave_as_one_batch_in_order() -> None:
    async def main() -> None:
        channel, conn, recorder = channel_on_recorder()
        add = calculator_call("add")
        first_cid, _ = channel.start(add, (1, 1), None, None)  # binds the slot: sent alone
        cids = [channel.start(add, (i, i), None, None)[0] for i in range(3)]
        channel.cancel(cids[1])  # flushes the batch first: the order is kept
        later, _ = channel.start(add, (9, 9), None, None)
        conn.flush()
        first, batch, cancel, last = recorder.frames()
        assert isinstance(first, wire.Call)
        assert first.id == first_cid
        assert isinstance(first.target, wire.Target)
        assert isinstance(batch, wire.ClientBatch)
        assert [(c.id, c.target) for c in batch.frames if isinstance(c, wire.Call)] == [
            (cid, first.target.slot) for cid in cids
        ]
        assert isinstance(cancel, wire.Cancel)
        assert cancel.id == cids[1]
        assert isinstance(last, wire.Call)
        assert last.id == later  # a batch of one is sent as a plain frame
        channel.broken(rpc.Unavailable("test over"))

    run(main())


def test_calls_still_batched_when_the_connection_breaks_fail_as_not_sent() -> None:
    async def main() -> None:
        channel, conn, recorder = channel_on_recorder()
        add = calculator_call("add")
        _, written = channel.start(add, (1, 1), None, None)
        conn.flush()
        _, batched = channel.start(add, (2, 2), None, None)
        channel.broken(rpc.Unavailable("connection lost"))
        with pytest.raises(NotSent, match="not sent"):
            batched.result()
        with pytest.raises(rpc.Unavailable, match="connection lost") as lost:
            written.result()
        assert not isinstance(lost.value, NotSent)  # it may have run: not safe to retry
        assert len(recorder.frames()) == 1

    run(main())


def test_a_large_call_leaves_alone_between_batches_and_only_batched_calls_are_unsent() -> None:
    async def main() -> None:
        channel, conn, recorder = channel_on_recorder()
        lookup = calculator_call("lookup")
        channel.start(lookup, ("bind",), None, None)  # binds the slot: sent alone
        conn.flush()
        before = [channel.start(lookup, (f"a{i}",), None, None)[0] for i in range(3)]
        big_cid, big = channel.start(lookup, ("x" * (SMALL_CALL + 1),), None, None)
        after = [channel.start(lookup, (f"b{i}",), None, None) for i in range(2)]
        # The large call flushed the batch before it and was written alone; the two calls
        # after it are the batch now, and only they fail as never sent.
        channel.broken(rpc.Unavailable("connection lost"))
        with pytest.raises(rpc.Unavailable, match="connection lost") as lost:
            big.result()
        assert not isinstance(lost.value, NotSent)
        for _, future in after:
            with pytest.raises(NotSent, match="not sent"):
                future.result()
        _, batch, alone, *rest = recorder.frames()
        assert isinstance(batch, wire.ClientBatch)
        assert [c.id for c in batch.frames] == before
        assert isinstance(alone, wire.Call)
        assert alone.id == big_cid
        assert rest == []

    run(main())


def test_batches_of_small_calls_stay_within_the_batch_size() -> None:
    async def main() -> None:
        channel, conn, recorder = channel_on_recorder()
        lookup = calculator_call("lookup")
        channel.start(lookup, ("bind",), None, None)
        conn.flush()
        name = "y" * (SMALL_CALL - 32)  # each call just under the limit: batched
        cids = [channel.start(lookup, (name,), None, None)[0] for _ in range(3 * PIPELINE_CALLS)]
        conn.flush()
        _, *payloads = recorder.payloads()
        assert len(payloads) == 3
        assert all(len(p) <= wire.BATCH_BYTES for p in payloads)
        ids = [c.id for p in payloads for c in wire.from_client.decode(p).frames]
        assert ids == cids
        channel.broken(rpc.Unavailable("test over"))

    run(main())


@pytest.mark.parametrize("count", [1, 2, 15, 16, 65535, 65536])
def test_batches_of_any_count_decode_to_their_frames(count: int) -> None:
    frames = [wire.encoder.encode((wire.END, i)) for i in range(count)]
    decoded = wire.from_client.decode(wire.batch_frame(frames))
    assert isinstance(decoded, wire.ClientBatch)
    assert [f.id for f in decoded.frames] == list(range(count))


def test_batched_keeps_batches_near_the_size_limit_and_big_frames_alone() -> None:
    small = [wire.encoder.encode((wire.ITEM, i, b"x" * 1000)) for i in range(200)]
    big = wire.encoder.encode((wire.ITEM, 999, b"y" * (wire.BATCH_BYTES + 1)))
    payloads = wire.batched([*small[:100], big, *small[100:]])
    decoded = [wire.from_client.decode(p) for p in payloads]
    ids: list[int] = []
    for frame in decoded:
        if isinstance(frame, wire.ClientBatch):
            ids += [f.id for f in frame.frames if isinstance(f, wire.Item)]
        else:
            assert isinstance(frame, wire.Item)
            ids.append(frame.id)
    assert ids == [*range(100), 999, *range(100, 200)]
    assert big in payloads
    assert all(len(p) <= wire.BATCH_BYTES + 64 for p in payloads if p is not big)


def test_many_concurrent_calls_are_answered_through_batches() -> None:
    async def main() -> None:
        async with await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()}) as server:
            calc = await rpc.connect(Calculator, server.address)
            results = await asyncio.gather(*(calc.add(i, i) for i in range(500)))
            assert results == [2 * i for i in range(500)]
            await rpc.close(calc)

    run(main())


def test_concurrent_stub_calls_small_and_large_are_all_answered() -> None:
    async def main() -> None:
        async with await rpc.serve("127.0.0.1:0", {Calculator: CalcImpl()}) as server:
            calc = await rpc.connect(Calculator, server.address)
            sizes = [(i * 997) % (3 * SMALL_CALL) for i in range(200)]
            results = await asyncio.gather(*(calc.lookup("z" * size) for size in sizes))
            assert results == [float(size) for size in sizes]
            await rpc.close(calc)

    run(main())


def test_a_long_batch_is_written_every_pipeline_calls_without_waiting_for_the_flush() -> None:
    async def main() -> None:
        channel, conn, recorder = channel_on_recorder()
        add = calculator_call("add")
        channel.start(add, (0, 0), None, None)  # binds the slot
        conn.flush()
        assert len(recorder.frames()) == 1
        for i in range(PIPELINE_CALLS + 5):
            channel.start(add, (i, i), None, None)
        [_, early] = recorder.frames()  # written before any flush: the server can start
        assert isinstance(early, wire.ClientBatch)
        assert len(early.frames) == PIPELINE_CALLS
        conn.flush()
        [*_, rest] = recorder.frames()
        assert isinstance(rest, wire.ClientBatch)
        assert len(rest.frames) == 5
        channel.broken(rpc.Unavailable("test over"))

    run(main())


def reply_frame(cid: int, value: int) -> bytes:
    payload = wire.encoder.encode((wire.REPLY, cid, value))
    return len(payload).to_bytes(4, "big") + payload


def test_the_call_after_the_last_reply_is_written_at_once_and_later_ones_batched() -> None:
    async def main() -> None:
        channel, conn, recorder = channel_on_recorder()
        add = calculator_call("add")
        cid, future = channel.start(add, (1, 1), None, None)  # binds the slot
        conn.flush()
        conn.data_received(reply_frame(cid, 2))  # the last call in flight came back
        assert future.result() == wire.Reply(cid, msgspec.Raw(wire.encoder.encode(2)))
        assert conn.write_next_at_once
        second, _ = channel.start(add, (2, 2), None, None)
        assert [f.id for f in recorder.frames() if isinstance(f, wire.Call)] == [cid, second]
        assert not conn.write_next_at_once
        third, _ = channel.start(add, (3, 3), None, None)  # the same iteration: batched
        fourth, _ = channel.start(add, (4, 4), None, None)
        assert len(recorder.frames()) == 2
        conn.flush()
        last = recorder.frames()[-1]
        assert isinstance(last, wire.ClientBatch)
        assert [f.id for f in last.frames] == [third, fourth]
        channel.broken(rpc.Unavailable("test over"))

    run(main())


def test_a_reply_with_other_calls_in_flight_leaves_the_next_call_batched() -> None:
    async def main() -> None:
        channel, conn, recorder = channel_on_recorder()
        add = calculator_call("add")
        first, _ = channel.start(add, (1, 1), None, None)
        channel.start(add, (2, 2), None, None)
        conn.flush()
        written = len(recorder.frames())
        conn.data_received(reply_frame(first, 2))  # one call is still in flight
        assert not conn.write_next_at_once
        channel.start(add, (3, 3), None, None)
        assert len(recorder.frames()) == written  # waits for the flush behind the wake-ups
        await asyncio.sleep(0)  # the flush the read scheduled runs in this iteration
        assert len(recorder.frames()) == written + 1
        channel.broken(rpc.Unavailable("test over"))

    run(main())
