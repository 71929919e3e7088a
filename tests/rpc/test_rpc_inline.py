"""The inline runner the server steps unary implementations with (`tejido.rpc.inline`):
finished calls report their outcome without a task, a suspended call continues in a task
exactly as if it had started there, and the runner keeps serving after every case."""

from __future__ import annotations

import asyncio

import pytest
from rpc_fixtures import run

from tejido.rpc.inline import DONE, InlineRunner, resume


async def add(a: int, b: int) -> int:
    return a + b


async def fail(message: str) -> int:
    raise ValueError(message)


async def wait_for(future: asyncio.Future[int], extra: int) -> int:
    return await future + extra


async def two_steps(
    first: asyncio.Future[int], second: asyncio.Future[int], reached: asyncio.Event
) -> int:
    value = await first
    reached.set()
    return value + await second


async def interrupt() -> int:
    raise KeyboardInterrupt


def finished(runner: InlineRunner, fn: object, values: tuple[object, ...]) -> tuple[bool, object]:
    assert runner.driver.send((fn, values)) is DONE
    outcome = runner.outcome
    value, outcome.value = outcome.value, None
    return outcome.failed, value


def test_finished_calls_report_results_and_errors_in_turn() -> None:
    runner = InlineRunner()
    assert finished(runner, add, (1, 2)) == (False, 3)
    failed, error = finished(runner, fail, ("boom",))
    assert failed
    assert isinstance(error, ValueError)
    assert str(error) == "boom"
    assert finished(runner, add, (2, 2)) == (False, 4)


def test_a_suspended_call_continues_in_a_task_and_the_runner_goes_on() -> None:
    async def main() -> None:
        runner = InlineRunner()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        yielded = runner.driver.send((wait_for, (future, 10)))
        assert yielded is future
        task = loop.create_task(resume(runner.detach(), yielded))
        assert finished(runner, add, (5, 6)) == (False, 11)  # a fresh driver meanwhile
        future.set_result(32)
        assert await task == 42

        other: asyncio.Future[int] = loop.create_future()
        yielded = runner.driver.send((wait_for, (other, 1)))
        task = loop.create_task(resume(runner.detach(), yielded))
        other.set_exception(ValueError("late"))
        with pytest.raises(ValueError, match="late"):
            await task

        first: asyncio.Future[int] = loop.create_future()
        second: asyncio.Future[int] = loop.create_future()
        reached = asyncio.Event()
        yielded = runner.driver.send((two_steps, (first, second, reached)))
        task = loop.create_task(resume(runner.detach(), yielded))
        first.set_result(1)
        await reached.wait()  # the task runs the call and now waits on `second`
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert second.cancelled()
        assert finished(runner, add, (1, 1)) == (False, 2)

    run(main())


def test_a_base_exception_escapes_and_restart_gives_a_working_driver() -> None:
    runner = InlineRunner()
    with pytest.raises(KeyboardInterrupt):
        runner.driver.send((interrupt, ()))
    runner.restart()
    assert finished(runner, add, (3, 4)) == (False, 7)


async def watched(future: asyncio.Future[int], seen: list[str]) -> int:
    try:
        return await future
    except asyncio.CancelledError:
        seen.append("cancelled")
        raise


def test_a_task_cancelled_before_its_first_step_cancels_the_suspended_call() -> None:
    async def main() -> None:
        runner = InlineRunner()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        seen: list[str] = []
        yielded = runner.driver.send((watched, (future, seen)))
        assert yielded is future
        task = loop.create_task(resume(runner.detach(), yielded))
        task.cancel()  # before the task ever ran
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["cancelled"]  # the implementation saw it at its await
        assert finished(runner, add, (1, 2)) == (False, 3)

    run(main())
