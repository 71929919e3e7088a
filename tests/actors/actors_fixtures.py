"""Actors, messages and helpers shared by the actor tests.

The behavioural tests take the `runtime` fixture (conftest-free: each test module imports
`runtime` from here) and write their bodies as ``async def body(system)`` run through
``runtime.run(body)``. Today the only runtime is ``local`` (one `ActorSystem` in this
process); a ``remote`` runtime that spawns the actors on a second process and hands back
remote references can be added to `RUNTIMES` without touching the test bodies, which is
what issue 7 asks for ("written once and run both in one process and across two").

Every message type here is a frozen dataclass or msgspec Struct, so it can cross
processes. Waiting is done on events (`Probe.expect`), never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import pytest

from tejido.actors import Actor, ActorRef, ActorSystem, Terminated
from tejido.rpc.loop import run as loop_run

T = TypeVar("T")

WAIT_S = 10.0  # generous: the suite runs on a loaded 2-core machine


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    """Run `coro` on a fresh (uv)loop; fail if it takes over `timeout_s`."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout_s):
            return await coro

    return loop_run(bounded())


@dataclass
class Runtime:
    """How a behavioural test gets an actor system (see the module docstring)."""

    name: str
    make: Callable[[], ActorSystem]

    def run(self, body: Callable[[ActorSystem], Awaitable[T]], timeout_s: float = 30.0) -> T:
        async def main() -> T:
            async with self.make() as system:
                return await body(system)

        return run(main(), timeout_s)


RUNTIMES = {"local": Runtime("local", lambda: ActorSystem("test", seed=7))}


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> Runtime:
    return RUNTIMES[request.param]


# ---------------------------------------------------------------------- messages
@dataclass(frozen=True)
class Add:
    amount: int


@dataclass(frozen=True)
class Get:
    pass


class Note(msgspec.Struct, frozen=True):
    sender: str
    seq: int


@dataclass(frozen=True)
class Boom:
    text: str = "boom"


@dataclass(frozen=True)
class Block:
    """Hold the actor until the test sets the event."""

    release: asyncio.Event = field(compare=False)


# ---------------------------------------------------------------------- actors
class Counter(Actor[Add | Get | Boom | Block]):
    def __init__(self, start: int = 0) -> None:
        self.total = start

    async def receive(self, message: Add | Get | Boom | Block) -> int | None:
        match message:
            case Add(amount):
                self.total += amount
                return self.total
            case Get():
                return self.total
            case Boom(text):
                raise ValueError(text)
            case Block(release):
                await release.wait()
                return self.total
        return self.unhandled(message)


class Probe:
    """Collects what actors report and lets a test wait for it without sleeping."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def put(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def expect(self, count: int, timeout_s: float = WAIT_S) -> list[Any]:
        """Wait until at least `count` items arrived; return the first `count`."""
        async with asyncio.timeout(timeout_s):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items[:count]

    async def expect_item(self, predicate: Callable[[Any], bool], timeout_s: float = WAIT_S) -> Any:
        async with asyncio.timeout(timeout_s):
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()


class Recorder(Actor[Any]):
    """Puts every message it receives into a probe; replies with the message."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def receive(self, message: Any) -> Any:
        self.probe.put(message)
        return message


class Watcher(Actor[Terminated | ActorRef[Any]]):
    """Watches the refs it is told; reports `Terminated` messages to a probe."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def receive(self, message: Terminated | ActorRef[Any]) -> None:
        if isinstance(message, Terminated):
            self.probe.put(message)
        else:
            self.watch(message)
