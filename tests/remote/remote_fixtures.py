"""Interfaces, implementations and helpers shared by the remote-object tests.

`run(coro)` runs a test body on a fresh loop under an overall timeout, so a hang fails
instead of stalling the suite. `Events` collects a node's `ExportEvent`s and lets a test
wait for a particular one (no sleeping).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import msgspec

import tejido.remote as remote
from tejido.rpc import ServiceError, method

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 20.0) -> T:
    """Run `coro` on a fresh (uv)loop; fail if it takes over `timeout_s`."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout_s):
            return await coro

    from tejido.rpc import run as rpc_run

    return rpc_run(bounded())


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Shape(msgspec.Struct, frozen=True):
    name: str
    corners: list[Point]


class Overdrawn(ServiceError):
    """Declared on Counter."""


@remote.remote
class Counter:
    errors = (Overdrawn,)

    async def add(self, amount: int) -> int:
        raise NotImplementedError

    @method(idempotent=True)
    async def value(self) -> int:
        raise NotImplementedError

    async def withdraw(self, amount: int) -> int:
        raise NotImplementedError

    async def centroid(self, shape: Shape) -> Point:
        raise NotImplementedError

    def count_to(self, upto: int) -> AsyncIterator[int]:
        raise NotImplementedError


class CounterImpl(Counter):
    def __init__(self) -> None:
        self.total = 0

    async def add(self, amount: int) -> int:
        self.total += amount
        await asyncio.sleep(0)  # make concurrent calls interleave on the server
        return self.total

    async def value(self) -> int:
        return self.total

    async def withdraw(self, amount: int) -> int:
        if amount > self.total:
            raise Overdrawn(f"cannot withdraw {amount}, only {self.total} left")
        self.total -= amount
        return self.total

    async def centroid(self, shape: Shape) -> Point:
        count = len(shape.corners)
        return Point(
            sum(p.x for p in shape.corners) / count, sum(p.y for p in shape.corners) / count
        )

    async def count_to(self, upto: int) -> AsyncIterator[int]:
        for number in range(1, upto + 1):
            yield number


@remote.remote
class Listener:
    async def notify(self, topic: str, value: int) -> None:
        raise NotImplementedError


class RecordingListener(Listener):
    """Records notifications; `wait_for(n)` returns once `n` have arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self._changed = asyncio.Event()

    async def notify(self, topic: str, value: int) -> None:
        self.seen.append((topic, value))
        self._changed.set()

    async def wait_for(self, count: int) -> list[tuple[str, int]]:
        while len(self.seen) < count:
            self._changed.clear()
            await self._changed.wait()
        return self.seen


@remote.remote
class Publisher:
    async def subscribe(self, topic: str, listener: Listener) -> int:
        raise NotImplementedError

    async def unsubscribe(self, topic: str, listener: Listener) -> bool:
        raise NotImplementedError

    async def publish(self, topic: str, value: int) -> int:
        raise NotImplementedError

    async def listeners(self, topic: str) -> list[Listener]:
        raise NotImplementedError

    async def first(self, topic: str) -> Listener | None:
        raise NotImplementedError

    async def make_counter(self) -> Counter:
        raise NotImplementedError


class PublisherImpl(Publisher):
    def __init__(self) -> None:
        self.topics: dict[str, list[Listener]] = {}
        self.counters: list[Counter] = []

    async def subscribe(self, topic: str, listener: Listener) -> int:
        # Call the listener back during the call, before answering.
        await listener.notify(topic, 0)
        self.topics.setdefault(topic, []).append(listener)
        return len(self.topics[topic])

    async def unsubscribe(self, topic: str, listener: Listener) -> bool:
        subscribed = self.topics.get(topic, [])
        if listener in subscribed:
            subscribed.remove(listener)
            return True
        return False

    async def publish(self, topic: str, value: int) -> int:
        listeners = self.topics.get(topic, [])
        await asyncio.gather(*(listener.notify(topic, value) for listener in listeners))
        return len(listeners)

    async def listeners(self, topic: str) -> list[Listener]:
        return list(self.topics.get(topic, []))

    async def first(self, topic: str) -> Listener | None:
        listeners = self.topics.get(topic)
        return listeners[0] if listeners else None

    async def make_counter(self) -> Counter:
        # A fresh object passed by reference, kept alive only by the caller's lease.
        return CounterImpl()


class Events:
    """Collects a node's export events; `wait(kind, object_id)` waits for one."""

    def __init__(self, node: remote.RemoteNode) -> None:
        self.events: list[remote.ExportEvent] = []
        self._changed = asyncio.Event()
        self.stop: Callable[[], None] = node.watch(self._record)

    def _record(self, event: remote.ExportEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def count(self, kind: str, object_id: str) -> int:
        return sum(1 for e in self.events if e.kind == kind and e.object_id == object_id)

    async def wait(self, kind: str, object_id: str, count: int = 1) -> None:
        while self.count(kind, object_id) < count:
            self._changed.clear()
            await self._changed.wait()

    async def wait_any(self, kinds: tuple[str, ...], object_id: str) -> remote.ExportEvent:
        """Wait for the next event of one of `kinds` about `object_id`, and return it."""
        seen = len(self.events)
        while True:
            for event in self.events[seen:]:
                if event.kind in kinds and event.object_id == object_id:
                    return event
            seen = len(self.events)
            self._changed.clear()
            await self._changed.wait()
