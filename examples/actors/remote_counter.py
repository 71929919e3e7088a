"""A remote actor: node "a" spawns a counter on node "b" (a second process), talks to it
exactly as to a local actor, finds it by name, watches it, and hears ``NODE_LOST`` when
"b" is killed. docs/actors.md walks through it; tests/actors/test_actors_remote_example.py
runs it.

Run ``python examples/actors/remote_counter.py``: it starts node "b" itself
(``remote_counter.py b SEED``).
"""

# ruff: noqa: T201 (a demo program: its output is what it prints)
from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import msgspec

from tejido.actors import Actor, ActorRef, ActorSystem, Terminated
from tejido.actors.cluster import ClusterConfig, MemberDown, MemberUp


class Add(msgspec.Struct, frozen=True):
    amount: int


class Total(msgspec.Struct, frozen=True):
    pass


class Counter(Actor[Add | Total]):
    def __init__(self, start: int) -> None:
        self.total = start

    async def receive(self, message: Add | Total) -> Any:
        match message:
            case Add(amount):
                self.total += amount
                return self.total
            case Total():
                return self.total
        return self.unhandled(message)


class Seen(msgspec.Struct, frozen=True):
    pass


class Watchdog(Actor[ActorRef[Any] | Terminated | Seen]):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def receive(self, message: ActorRef[Any] | Terminated | Seen) -> Any:
        match message:
            case Terminated(ref, cause):
                self.seen.append(f"{ref.path} terminated ({cause.value})")
            case Seen():
                return list(self.seen)
            case _:
                self.watch(message)
        return None


def register(system: ActorSystem) -> None:
    """Both nodes register what may cross the wire: messages by type, actors by name."""
    system.types.register(Add, Total)
    system.types.register_behaviour(Counter)


async def node_b(seed: str) -> None:
    async with ActorSystem("demo", node="b", seeds=[seed]) as system:
        register(system)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def main() -> None:
    config = ClusterConfig(node="a", heartbeat_s=0.1, failure_timeout_s=2.0)
    async with ActorSystem("demo", cluster=config) as system:
        register(system)
        command = [sys.executable, __file__, "b", system.cluster.address]
        b = subprocess.Popen(command, stdin=subprocess.PIPE)
        try:
            async with system.cluster.subscribe() as events:
                async for event in events:
                    if isinstance(event, MemberUp) and event.member.node == "b":
                        print("node b is up")
                        break
                counter = await system.spawn(Counter, 10, node="b", name="counter")
                counter.tell(Add(5))
                print(f"total on b: {await counter.ask(Total())}")
                print(f"found by name: {await system.find('counter') == counter}")
                watchdog = system.spawn(Watchdog)
                await watchdog.ask(counter)  # watching once this returns
                b.kill()  # node b crashes
                async for event in events:
                    if isinstance(event, MemberDown) and event.member.node == "b":
                        print(f"node b is down ({event.reason})")
                        break
                for line in await watchdog.ask(Seen()):
                    print(f"watchdog: {line}")
        finally:
            b.kill()
            b.wait()
            if b.stdin is not None:
                b.stdin.close()


if __name__ == "__main__":
    from tejido.rpc.loop import run

    if sys.argv[1:2] == ["b"]:
        run(node_b(sys.argv[2]))
    else:
        run(main())
