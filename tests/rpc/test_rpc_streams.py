"""Streaming calls: server, client and bidi streams, credit flow control, early exit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from rpc_fixtures import LOOPS, CalcImpl, calculator, run, wait_until

import tejido.rpc as rpc
from tejido.rpc.wire import SERVER_STREAM_WINDOW


@pytest.mark.parametrize("loop", LOOPS)
def test_server_stream_yields_every_item_in_order(loop: str) -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            assert [x async for x in calc.count(1000)] == list(range(1000))
            assert [x async for x in calc.count(0)] == []
            stream = await calc.count(3)  # awaiting the stream opens it and returns it
            assert [x async for x in stream] == [0, 1, 2]

    run(main(), loop)


def test_server_stream_does_not_run_ahead_of_a_slow_consumer() -> None:
    async def main() -> None:
        impl = CalcImpl()
        async with calculator(impl) as (_, calc, _):
            stream = calc.count(10_000)
            assert await anext(stream) == 0
            # The producer stops once its window of credit is spent...
            await wait_until(lambda: impl.produced >= SERVER_STREAM_WINDOW, impl.produced_event)
            ping = await calc.add(0, 0)  # a round trip: anything in flight has arrived
            assert ping == 0
            assert impl.produced <= SERVER_STREAM_WINDOW + 1
            # ...and goes on as the consumer takes items.
            taken = [await anext(stream) for _ in range(3 * SERVER_STREAM_WINDOW)]
            assert taken == list(range(1, 3 * SERVER_STREAM_WINDOW + 1))
            assert impl.produced <= 5 * SERVER_STREAM_WINDOW
            await stream.aclose()

    run(main())


def test_leaving_a_server_stream_early_cancels_the_producer() -> None:
    async def main() -> None:
        impl = CalcImpl()
        async with calculator(impl) as (_, calc, _):
            async for x in calc.count(1_000_000):
                if x == 5:
                    break
            async with asyncio.timeout(5):
                await impl.stream_closed.wait()
            assert impl.produced < 1_000
            # an explicit aclose does the same
            impl.stream_closed.clear()
            async with contextlib.aclosing(calc.count(1_000_000)) as stream:
                assert await anext(stream) == 0
            async with asyncio.timeout(5):
                await impl.stream_closed.wait()
            assert await calc.add(1, 1) == 2

    run(main())


def test_client_stream_sends_every_item() -> None:
    async def values(n: int) -> AsyncIterator[float]:
        for i in range(n):
            yield float(i)

    async def main() -> None:
        async with calculator() as (_, calc, _):
            assert await calc.total(values(1000)) == sum(range(1000))
            assert await calc.total(values(0)) == 0.0
            assert await calc.total(values=values(3)) == 3.0

    run(main())


def test_client_stream_item_of_the_wrong_type_fails_the_call() -> None:
    async def bad() -> AsyncIterator[object]:
        yield 1.0
        yield "two"

    async def unencodable() -> AsyncIterator[object]:
        yield object()

    async def main() -> None:
        async with calculator() as (_, calc, _):
            with pytest.raises(rpc.BadArguments, match="does not match its type"):
                await calc.total(bad())  # type: ignore[arg-type]
            with pytest.raises(rpc.BadArguments, match="cannot be encoded"):
                await calc.total(unencodable())  # type: ignore[arg-type]
            with pytest.raises(rpc.BadArguments, match="async iterable"):
                await calc.total([1.0])  # type: ignore[arg-type]
            assert await calc.add(2, 2) == 4

    run(main())


def test_a_failing_client_iterator_fails_the_call_with_its_error() -> None:
    async def broken() -> AsyncIterator[float]:
        yield 1.0
        raise RuntimeError("producer broke")

    async def main() -> None:
        async with calculator() as (_, calc, _):
            with pytest.raises(RuntimeError, match="producer broke"):
                await calc.total(broken())

    run(main())


def test_bidi_stream_answers_each_item() -> None:
    async def numbers(n: int) -> AsyncIterator[int]:
        for i in range(1, n + 1):
            yield i

    async def main() -> None:
        async with calculator() as (_, calc, _):
            sums = [x async for x in calc.running_sum(numbers(500))]
            assert sums == [i * (i + 1) // 2 for i in range(1, 501)]

    run(main())


def test_server_stream_errors_and_deadlines_reach_the_consumer() -> None:
    async def main() -> None:
        async with calculator() as (impl, calc, _):
            with rpc.call_options(timeout=0.2):
                stream = calc.count(10**9)  # the deadline covers the whole stream
            received: list[int] = []

            async def consume() -> None:
                async for x in stream:
                    received.append(x)

            with pytest.raises(rpc.DeadlineExceeded, match="did not end within"):
                await consume()
            assert received == list(range(len(received)))
            assert received
            async with asyncio.timeout(5):
                await impl.stream_closed.wait()

    run(main())
