"""Actors, messages and helpers shared by the actor tests.

The behavioural tests take the `runtime` fixture (conftest-free: each test module imports
`runtime` from here) and write their bodies as ``async def body(system)`` run through
``runtime.run(body)``; issue 7 asks for tests "written once and run both in one process
and across two". Two runtimes:

- ``local``: one `ActorSystem` in this process;
- ``remote``: the system is a cluster node, and a peer node runs in a second OS process
  (`actors_node.py`, started once per test worker and shared). ``system.spawn`` in the
  body spawns the actor *on the peer* and returns a remote reference whenever it can: the
  class is a registered behaviour and every argument can cross the wire. Actors given a
  `Probe` (an object of this process) stay local, so a test that watches or relays through
  them exercises remote death watch and remote tells in both directions.

Tests whose bodies rely on what only one process can see (the system's own dead letters,
supervision decisions, an `asyncio.Event` inside a message) take `local_runtime` instead.

Every message type here is a frozen dataclass or msgspec Struct, so it can cross
processes. Waiting is done on events (`Probe.expect`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import pathlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import pytest

from tejido.actors import Actor, ActorRef, ActorSystem, Terminated
from tejido.actors.cluster import ClusterConfig
from tejido.actors.errors import NotSerializable
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


class Peer:
    """A peer node in its own OS process (`actors_node.py`); `stop()` ends it."""

    def __init__(self, name: str, seed: str | None = None, timeout_s: float = 3.0) -> None:
        script = pathlib.Path(__file__).with_name("actors_node.py")
        command = [sys.executable, str(script), name, *([seed] if seed else [])]
        self.name = name
        self.process = subprocess.Popen(
            [*command, "--timeout", str(timeout_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the node is up (or died)
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"peer node {name} did not start: {line!r}")
        self.address = line.split()[1]

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._close_pipes()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


_peer: Peer | None = None
_names = itertools.count(1)


def shared_peer() -> Peer:
    """The peer node this test worker shares between remote-runtime tests."""
    global _peer
    if _peer is None or _peer.process.poll() is not None:
        _peer = Peer("peer", timeout_s=5.0)  # generous: a loaded machine stalls processes
        atexit.register(_peer.stop)
    return _peer


def node_name(prefix: str = "t") -> str:
    return f"{prefix}{os.getpid()}-{next(_names)}"


async def join(system: ActorSystem, *nodes: str, timeout_s: float = WAIT_S) -> None:
    """Wait until every node in `nodes` is up in `system`'s view."""
    async with system.cluster.subscribe() as events, asyncio.timeout(timeout_s):
        while any(system.cluster.member(n) is None for n in nodes):
            await events.next()


def register_tests(system: ActorSystem) -> None:
    """Register the actor test modules' behaviours and messages (as the peer does)."""
    from actors_node import register_all

    register_all(system)


class RemoteSpawning:
    """The system a remote-runtime body sees: `spawn` goes to the peer when it can."""

    def __init__(self, system: ActorSystem, peer: str) -> None:
        self._system = system
        self._peer = peer

    def spawn(self, actor_class: type[Actor[Any]], *args: Any, **kwargs: Any) -> ActorRef[Any]:
        system = self._system
        remoting = system.remoting
        assert remoting is not None
        if set(kwargs) <= {"name"} and system.types.behaviour_name(actor_class) is not None:
            try:
                for arg in args:
                    remoting.encode_value(arg)
            except NotSerializable:
                pass  # a Probe or an asyncio object: the actor stays in this process
            else:
                return system.spawn(actor_class, *args, node=self._peer, **kwargs)
        return system.spawn(actor_class, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._system, name)


@dataclass
class RemoteRuntime(Runtime):
    def run(self, body: Callable[[ActorSystem], Awaitable[T]], timeout_s: float = 30.0) -> T:
        peer = shared_peer()

        async def main() -> T:
            config = ClusterConfig(
                node=node_name(), seeds=(peer.address,), heartbeat_s=0.1, failure_timeout_s=5.0
            )
            async with ActorSystem("test", seed=7, cluster=config) as system:
                register_tests(system)
                await join(system, peer.name)
                return await body(RemoteSpawning(system, peer.name))  # type: ignore[arg-type]

        return run(main(), timeout_s)


def _local() -> ActorSystem:
    return ActorSystem("test", seed=7)


RUNTIMES = {
    "local": Runtime("local", _local),
    "remote": RemoteRuntime("remote", _local),
}


@pytest.fixture(
    params=["local", pytest.param("remote", marks=pytest.mark.integration)],
)
def runtime(request: pytest.FixtureRequest) -> Runtime:
    return RUNTIMES[request.param]


@pytest.fixture
def local_runtime() -> Runtime:
    """For bodies that rely on what only one process sees (see the module docstring)."""
    return RUNTIMES["local"]


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


class Stall(Actor[str]):
    """Never answers: an ask to it stays pending (until its timeout or its node is lost)."""

    async def receive(self, message: str) -> None:
        await asyncio.Event().wait()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll `condition` on the loop, for state with no event to wait on (grain activations
    and hand-overs run as tasks with nothing to await); fails after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)
