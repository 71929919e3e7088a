"""Deadlines (per call, per client, propagated to nested calls) and cancellation."""

from __future__ import annotations

import asyncio

import pytest
from rpc_fixtures import LOOPS, CalcImpl, Calculator, calculator, run

import tejido.rpc as rpc


@pytest.mark.parametrize("loop", LOOPS)
def test_a_call_past_its_deadline_fails_and_the_server_task_is_cancelled(loop: str) -> None:
    async def main() -> None:
        async with calculator() as (impl, calc, _):
            with rpc.call_options(timeout=0.1), pytest.raises(rpc.DeadlineExceeded):
                await calc.sleep(30)
            async with asyncio.timeout(5):
                await impl.cancelled.wait()  # the Cancel frame reached the implementation
            assert await calc.add(1, 2) == 3

    run(main(), loop)


def test_the_client_default_timeout_applies_and_call_options_override_it() -> None:
    async def main() -> None:
        async with calculator(timeout=0.1) as (_, calc, server):
            with pytest.raises(rpc.DeadlineExceeded, match=r"0\.1 s"):
                await calc.sleep(30)
            with rpc.call_options(timeout=10):
                assert await calc.sleep(0) == "slept"
            # The server sees a client's default as the call's deadline. A call that must
            # succeed gets a default a loaded machine answers well within (a 0.1 s one can
            # pass before the server runs the call, which then fails, as it should).
            patient = await rpc.connect(Calculator, server.address, timeout=30)
            try:
                remaining = await patient.remaining()
            finally:
                await rpc.close(patient)
            assert remaining is not None
            assert 15 < remaining <= 30 + 1e-6  # the default, not some other deadline

    run(main())


def test_without_a_timeout_the_server_sees_no_deadline() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            assert await calc.remaining() is None
            with rpc.call_options(timeout=5):
                remaining = await calc.remaining()
            assert remaining is not None
            assert 4 < remaining <= 5 + 1e-6

    run(main())


def test_cancelling_the_caller_cancels_the_server_task() -> None:
    async def main() -> None:
        async with calculator() as (impl, calc, _):
            task = asyncio.ensure_future(calc.sleep(30))
            async with asyncio.timeout(5):
                await impl.started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with asyncio.timeout(5):
                await impl.cancelled.wait()
            assert await calc.add(2, 3) == 5

    run(main())


@rpc.service
class Frontend:
    async def relay(self, seconds: float) -> str: ...

    async def relay_remaining(self) -> float | None: ...


class FrontendImpl(Frontend):
    def __init__(self, backend: Calculator) -> None:
        self.backend = backend

    async def relay(self, seconds: float) -> str:
        return await self.backend.sleep(seconds)

    async def relay_remaining(self) -> float | None:
        return await self.backend.remaining()


def test_deadlines_propagate_to_nested_calls() -> None:
    """A server calling another service passes on the time left of its own call."""

    async def main() -> None:
        impl = CalcImpl()
        async with await rpc.serve("127.0.0.1:0", {Calculator: impl}) as backend_server:
            backend = await rpc.connect(Calculator, backend_server.address)
            async with await rpc.serve("127.0.0.1:0", {Frontend: FrontendImpl(backend)}) as fs:
                front = await rpc.connect(Frontend, fs.address)
                with rpc.call_options(timeout=2):
                    inner = await front.relay_remaining()
                assert inner is not None
                assert 0 < inner <= 2 + 1e-6  # inherited, not the default (None)
                assert await front.relay_remaining() is None
                with rpc.call_options(timeout=0.2), pytest.raises(rpc.DeadlineExceeded):
                    await front.relay(30)
                # the backend's task was cancelled by its own (inherited) deadline
                async with asyncio.timeout(5):
                    await impl.cancelled.wait()
                await rpc.close(front)
            await rpc.close(backend)

    run(main())


def test_a_deadline_that_already_passed_fails_at_once() -> None:
    async def main() -> None:
        async with calculator() as (_, calc, _):
            with rpc.call_options(timeout=1e-9), pytest.raises(rpc.DeadlineExceeded):
                await calc.sleep(30)
            with pytest.raises(ValueError, match="positive"), rpc.call_options(timeout=0):
                pass

    run(main())
