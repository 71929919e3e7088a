"""Load balancing, failover, retries with backoff, health checking and interceptors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from rpc_fixtures import CalcImpl, Calculator, calculator, run

import tejido.rpc as rpc


@contextlib.asynccontextmanager
async def servers(count: int) -> AsyncIterator[tuple[list[CalcImpl], list[rpc.Server]]]:
    impls = [CalcImpl() for _ in range(count)]
    started = [await rpc.serve("127.0.0.1:0", {Calculator: impl}) for impl in impls]
    try:
        yield impls, started
    finally:
        for server in started:
            await server.close()


async def dead_address() -> str:
    """An address nobody listens on (a server bound, then closed)."""
    server = await rpc.serve("127.0.0.1:0")
    address = server.address
    await server.close()
    return address


def test_round_robin_spreads_calls_evenly() -> None:
    async def main() -> None:
        async with servers(3) as (impls, started):
            calc = await rpc.connect(Calculator, [s.address for s in started])
            for i in range(30):
                assert await calc.add(i, 1) == i + 1
            assert [impl.calls for impl in impls] == [10, 10, 10]
            await rpc.close(calc)

    run(main())


def test_least_outstanding_avoids_the_busy_endpoint() -> None:
    async def main() -> None:
        async with servers(2) as (impls, started):
            calc = await rpc.connect(
                Calculator, [s.address for s in started], balance="least_outstanding"
            )
            slow = asyncio.ensure_future(calc.sleep(30))
            busy = await wait_for_any_started(impls)
            for _ in range(10):
                await calc.add(1, 1)
            idle = 1 - busy
            assert impls[idle].calls == 10
            assert impls[busy].calls == 0
            slow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slow
            await rpc.close(calc)

    run(main())


async def wait_for_any_started(impls: list[CalcImpl]) -> int:
    waits = [asyncio.ensure_future(impl.started.wait()) for impl in impls]
    async with asyncio.timeout(5):
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return next(i for i, impl in enumerate(impls) if impl.started.is_set())


def test_calls_fail_over_to_the_next_endpoint_when_one_is_down() -> None:
    async def main() -> None:
        async with servers(1) as (impls, started):
            down = await dead_address()
            calc = await rpc.connect(Calculator, [down, started[0].address])
            for i in range(6):
                assert await calc.add(i, i) == 2 * i
            assert impls[0].calls == 6
            await rpc.close(calc)
            with pytest.raises(rpc.Unavailable, match="no endpoint reachable"):
                await rpc.connect(Calculator, [down, await dead_address()])

    run(main())


@rpc.service
class Flaky:
    @rpc.method(idempotent=True)
    async def safe(self) -> str: ...

    async def unsafe(self) -> str: ...


class FlakyImpl(Flaky):
    """Answers with its name; with ``die`` set, shuts its own server down mid-call."""

    def __init__(self, name: str, die: bool) -> None:
        self.name = name
        self.die = die
        self.server: rpc.Server | None = None
        self.calls = 0

    async def _maybe_die(self) -> str:
        self.calls += 1
        if self.die and self.server is not None:
            asyncio.get_running_loop().create_task(self.server.close())
            await asyncio.Event().wait()  # cancelled when the server drops its calls
        return self.name

    async def safe(self) -> str:
        return await self._maybe_die()

    async def unsafe(self) -> str:
        return await self._maybe_die()


@contextlib.asynccontextmanager
async def flaky_pair() -> AsyncIterator[tuple[FlakyImpl, FlakyImpl, list[str]]]:
    dying, healthy = FlakyImpl("dying", die=True), FlakyImpl("healthy", die=False)
    first = await rpc.serve("127.0.0.1:0", {Flaky: dying})
    dying.server = first
    second = await rpc.serve("127.0.0.1:0", {Flaky: healthy})
    try:
        yield dying, healthy, [first.address, second.address]
    finally:
        await first.close()
        await second.close()


def test_idempotent_calls_are_retried_on_another_endpoint() -> None:
    async def main() -> None:
        async with flaky_pair() as (dying, healthy, addresses):
            retry = rpc.RetryPolicy(max_attempts=3, initial_backoff_s=0.01)
            flaky = await rpc.connect(Flaky, addresses, retry=retry)
            assert await flaky.safe() == "healthy"
            assert (dying.calls, healthy.calls) == (1, 1)
            await rpc.close(flaky)

    run(main())


def test_non_idempotent_calls_are_not_retried_after_they_were_sent() -> None:
    async def main() -> None:
        async with flaky_pair() as (dying, healthy, addresses):
            retry = rpc.RetryPolicy(max_attempts=3, initial_backoff_s=0.01)
            flaky = await rpc.connect(Flaky, addresses, retry=retry)
            with pytest.raises(rpc.Unavailable, match="lost"):
                await flaky.unsafe()
            assert (dying.calls, healthy.calls) == (1, 0)
            assert await flaky.unsafe() == "healthy"  # the next call fails over
            await rpc.close(flaky)

    run(main())


def test_without_a_retry_policy_idempotent_calls_fail_too() -> None:
    async def main() -> None:
        async with flaky_pair() as (dying, _, addresses):
            flaky = await rpc.connect(Flaky, addresses)
            with pytest.raises(rpc.Unavailable):
                await flaky.safe()
            assert dying.calls == 1
            await rpc.close(flaky)

    run(main())


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = rpc.RetryPolicy(initial_backoff_s=0.1, multiplier=2, max_backoff_s=0.5, jitter=0)
    assert [policy.backoff_s(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    jittery = rpc.RetryPolicy(initial_backoff_s=1.0, jitter=0.2)
    assert all(0.8 <= jittery.backoff_s(1) <= 1.2 for _ in range(100))
    with pytest.raises(ValueError, match="max_attempts"):
        rpc.RetryPolicy(max_attempts=0)


def test_health_service_reports_each_service() -> None:
    async def main() -> None:
        async with calculator() as (_, _, server):
            health = await rpc.connect(rpc.Health, server.address)
            assert await health.check() is rpc.ServingStatus.SERVING
            assert await health.check("Calculator") is rpc.ServingStatus.SERVING
            assert await health.check("Nope") is rpc.ServingStatus.UNKNOWN
            server.set_serving(Calculator, False)
            assert await health.check("Calculator") is rpc.ServingStatus.NOT_SERVING
            await rpc.close(health)

    run(main())


def test_health_checking_clients_route_around_not_serving_endpoints() -> None:
    async def main() -> None:
        async with servers(2) as (impls, started):
            client = rpc.Client([s.address for s in started], health_check_interval_s=0.02)
            await client.start()
            calc = client.stub(Calculator)
            started[0].set_serving("", False)
            await client.health_checked()
            await client.health_checked()  # a full round after the change
            assert client.healthy == {started[0].address: False, started[1].address: True}
            for _ in range(8):
                await calc.add(1, 1)
            assert [impl.calls for impl in impls] == [0, 8]
            started[0].set_serving("", True)
            await client.health_checked()
            await client.health_checked()
            for _ in range(8):
                await calc.add(1, 1)
            assert impls[0].calls == 4
            await client.close()

    run(main())


def test_interceptors_authenticate_log_and_count() -> None:
    seen: list[str] = []
    counts: dict[str, int] = {}

    async def authenticate(ctx: rpc.CallContext, proceed: Callable[[], Awaitable[Any]]) -> Any:
        if ctx.service != "tejido.Health" and ctx.metadata.get("token") != "secret":
            raise rpc.PermissionDenied(f"{ctx.method}: missing or wrong token")
        ctx.extra["user"] = "alice"
        return await proceed()

    async def metrics(ctx: rpc.CallContext, proceed: Callable[[], Awaitable[Any]]) -> Any:
        counts[ctx.method] = counts.get(ctx.method, 0) + 1
        return await proceed()

    async def add_token(call: rpc.ClientCall, proceed: Callable[[rpc.ClientCall], Any]) -> Any:
        call.metadata["token"] = "secret"
        return await proceed(call)

    async def log(call: rpc.ClientCall, proceed: Callable[[rpc.ClientCall], Any]) -> Any:
        seen.append(f"-> {call.service}.{call.method}")
        result = await proceed(call)
        seen.append(f"<- {call.method} {result!r}")
        return result

    async def main() -> None:
        impl = CalcImpl()
        async with await rpc.serve(
            "127.0.0.1:0", {Calculator: impl}, interceptors=[authenticate, metrics]
        ) as server:
            anonymous = await rpc.connect(Calculator, server.address)
            with pytest.raises(rpc.PermissionDenied, match="add: missing or wrong token"):
                await anonymous.add(1, 2)
            await rpc.close(anonymous)
            calc = await rpc.connect(Calculator, server.address, interceptors=[log, add_token])
            assert await calc.add(1, 2) == 3
            assert await calc.sleep(0) == "slept"  # a call that suspends, through the chain
            assert [x async for x in calc.count(3)] == [0, 1, 2]
            await rpc.close(calc)
        assert seen == [
            "-> Calculator.add",
            "<- add 3",
            "-> Calculator.sleep",
            "<- sleep 'slept'",
            "-> Calculator.count",
            "<- count None",
        ]
        assert counts == {"add": 1, "sleep": 1, "count": 1}

    run(main())
