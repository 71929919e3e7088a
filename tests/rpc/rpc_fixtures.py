"""Services and helpers shared by the RPC tests.

`Calculator` covers every method kind and the argument types the issue lists; `CalcImpl`
records what it saw (cancellations, metadata, deadlines) and exposes events that tests
wait on instead of sleeping. `run(coro)` runs a test body on a fresh loop (uvloop by
default) under an overall timeout so a hang fails instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import msgspec

import tejido.rpc as rpc
from tejido.net.frames import FrameDecoder
from tejido.rpc import ServiceError, method, service

T = TypeVar("T")

LOOPS = ["asyncio", "uvloop"]


def run(coro: Coroutine[Any, Any, T], loop: str = "uvloop", timeout_s: float = 20.0) -> T:
    """Run `coro` on a fresh loop of the given kind; fail if it takes over `timeout_s`."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout_s):
            return await coro

    if loop == "uvloop":
        return rpc.run(bounded())
    return asyncio.run(bounded())


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Box(msgspec.Struct, frozen=True):
    label: str
    points: list[Point]
    colour: Colour = Colour.RED


class NotFound(ServiceError):
    """Declared on the interface."""


class Overdrawn(ServiceError):
    """Declared on one method only."""


@service
class Calculator:
    errors = (NotFound,)

    async def add(self, a: int, b: int) -> int: ...

    async def describe(
        self,
        data: bytes,
        tags: list[str],
        weights: dict[str, float],
        box: Box,
        origin: Point,
        colour: Colour,
        note: str | None = None,
    ) -> Box: ...

    @method(idempotent=True)
    async def lookup(self, name: str) -> float: ...

    @method(raises=(Overdrawn,))
    async def withdraw(self, amount: int) -> int: ...

    async def divide(self, a: int, b: int) -> float: ...

    async def wrong_result(self) -> int: ...

    async def sleep(self, seconds: float) -> str: ...

    async def metadata(self) -> dict[str, str]: ...

    async def remaining(self) -> float | None: ...

    def count(self, upto: int) -> AsyncIterator[int]: ...

    async def total(self, values: AsyncIterator[float]) -> float: ...

    def running_sum(self, values: AsyncIterator[int]) -> AsyncIterator[int]: ...

    @method(oneway=True)
    async def log(self, line: str) -> None: ...


class CalcImpl(Calculator):
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()
        self.logged: list[str] = []
        self.log_event = asyncio.Event()
        self.produced = 0
        self.produced_event = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.calls = 0

    async def add(self, a: int, b: int) -> int:
        self.calls += 1
        return a + b

    async def describe(
        self,
        data: bytes,
        tags: list[str],
        weights: dict[str, float],
        box: Box,
        origin: Point,
        colour: Colour,
        note: str | None = None,
    ) -> Box:
        label = f"{data.hex()}|{','.join(tags)}|{sum(weights.values())}|{note}"
        return Box(label, [origin, *box.points], colour)

    async def lookup(self, name: str) -> float:
        if name == "missing":
            raise NotFound(f"no entry {name!r}")
        return float(len(name))

    async def withdraw(self, amount: int) -> int:
        if amount > 100:
            raise Overdrawn(f"cannot withdraw {amount}")
        return 100 - amount

    async def divide(self, a: int, b: int) -> float:
        return a / b

    async def wrong_result(self) -> int:
        return "not an int"  # type: ignore[return-value]

    async def sleep(self, seconds: float) -> str:
        self.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "slept"

    async def metadata(self) -> dict[str, str]:
        call = rpc.current_call()
        assert call is not None
        return dict(call.metadata)

    async def remaining(self) -> float | None:
        call = rpc.current_call()
        assert call is not None
        return call.time_remaining()

    async def count(self, upto: int) -> AsyncIterator[int]:  # type: ignore[override]
        try:
            for i in range(upto):
                self.produced += 1
                self.produced_event.set()
                yield i
        finally:
            self.stream_closed.set()

    async def total(self, values: AsyncIterator[float]) -> float:
        result = 0.0
        async for value in values:
            result += value
        return result

    async def running_sum(self, values: AsyncIterator[int]) -> AsyncIterator[int]:  # type: ignore[override]
        result = 0
        async for value in values:
            result += value
            yield result

    async def log(self, line: str) -> None:
        self.logged.append(line)
        self.log_event.set()


async def wait_until(predicate: Any, event: asyncio.Event, timeout_s: float = 5.0) -> None:
    """Wait (on `event`, cleared and re-awaited) until `predicate()` holds."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            event.clear()
            if predicate():
                return
            await event.wait()


@contextlib.asynccontextmanager
async def calculator(
    impl: CalcImpl | None = None, **options: Any
) -> AsyncIterator[tuple[CalcImpl, Calculator, rpc.Server]]:
    """A server for `Calculator` on port 0 and a connected stub; both closed afterwards."""
    impl = impl or CalcImpl()
    async with await rpc.serve("127.0.0.1:0", {Calculator: impl}) as server:
        calc = await rpc.connect(Calculator, server.address, **options)
        try:
            yield impl, calc, server
        finally:
            await rpc.close(calc)


class Recorder:
    """A transport for a connection under test: keeps what is written (it never blocks)
    and says when something was (`wrote`)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.written += data
        self.wrote.set()

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def payloads(self) -> list[bytes]:
        """The frames written so far, without their length prefixes."""
        return FrameDecoder().feed(bytes(self.written))
