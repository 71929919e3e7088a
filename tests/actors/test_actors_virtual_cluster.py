"""Virtual actors across cluster nodes (several clustered systems on one loop): each grain
is active on exactly the node the ring names, messages from any node reach it, a crashed
node's grains come back on their new owners with every acknowledged change, and a client
node that hosts nothing reaches them all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import msgspec
import pytest
from actors_fixtures import run, wait_until
from virtual_fixtures import MESSAGES, Add, Boom, Counter, Get, Tally

from tejido.actors import ActorSystem
from tejido.actors.cluster import ClusterConfig
from tejido.actors.errors import ActorFailed, AskTimeout, NodeLost
from tejido.actors.persistence import GrainId, MemoryProvider, PersistenceProvider
from tejido.actors.placement import HashRing, NoMembers
from tejido.actors.virtual import VirtualActors

WAIT_S = 10.0
HOSTS = ["a", "b", "c"]


def hosts_only(node: str) -> bool:
    return node != "client"


@asynccontextmanager
async def grain_node(
    name: str,
    provider: PersistenceProvider | None,
    *seeds: str,
    failure_timeout_s: float = 3.0,
) -> AsyncIterator[tuple[ActorSystem, VirtualActors]]:
    config = ClusterConfig(
        node=name, seeds=tuple(seeds), heartbeat_s=0.05, failure_timeout_s=failure_timeout_s
    )
    async with ActorSystem("lobby", cluster=config) as system:
        system.types.register(*MESSAGES)
        async with VirtualActors(system, provider, hosting=hosts_only) as grains:
            grains.register(Counter)
            yield system, grains


async def views(systems: list[ActorSystem], nodes: list[str]) -> None:
    """Until every system's member view is exactly `nodes` (waits on membership events)."""
    for system in systems:
        async with system.cluster.subscribe() as events:
            async with asyncio.timeout(WAIT_S):
                while [m.node for m in system.cluster.members()] != nodes:
                    await events.next()


def test_each_grain_lives_on_its_ring_owner_and_is_reached_from_anywhere() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        async with AsyncExitStack() as stack:
            a, ga = await stack.enter_async_context(grain_node("a", provider))
            seed = a.cluster.address
            b, gb = await stack.enter_async_context(grain_node("b", provider, seed))
            c, gc = await stack.enter_async_context(grain_node("c", provider, seed))
            client, gclient = await stack.enter_async_context(grain_node("client", None, seed))
            await views([a, b, c, client], ["a", "b", "c", "client"])
            keys = [f"u{i}" for i in range(120)]
            # every key asked once from each node: 4 increments, whoever asks
            for runtime in (ga, gb, gc, gclient):
                replies = await asyncio.gather(
                    *(runtime.get(Counter, k).ask(Add(1), timeout=WAIT_S) for k in keys)
                )
                assert all(isinstance(r, int) for r in replies)
            ring = HashRing(HOSTS)
            where = {"a": ga.active, "b": gb.active, "c": gc.active}
            assert gclient.active == frozenset()
            for key in keys:
                gid = GrainId("Counter", key)
                holders = [node for node, active in where.items() if gid in active]
                assert holders == [ring.owner(f"Counter/{key}")]
            assert all(where.values())  # the ring spreads 120 keys over all three
            for key in keys:
                assert await gclient.get(Counter, key).ask(Get()) == 4
            # a grain's failure comes back typed, with the builtin cause as itself
            with pytest.raises(ActorFailed) as failed:
                await gclient.get(Counter, "u1").ask(Boom(), timeout=WAIT_S)
            assert isinstance(failed.value.cause, RuntimeError)
            assert await gclient.get(Counter, "u1").ask(Get()) == 4
            # a tell from the client lands too (ordered before the following ask)
            gclient.get(Counter, "u2").tell(Add(10))
            assert await gclient.get(Counter, "u2").ask(Get()) == 14

    run(main(), timeout_s=60)


def test_a_crashed_nodes_grains_come_back_elsewhere_with_their_state() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        async with AsyncExitStack() as stack:
            a, ga = await stack.enter_async_context(
                grain_node("a", provider, failure_timeout_s=0.5)
            )
            seed = a.cluster.address
            b, gb = await stack.enter_async_context(
                grain_node("b", provider, seed, failure_timeout_s=0.5)
            )
            c, gc = await stack.enter_async_context(
                grain_node("c", provider, seed, failure_timeout_s=0.5)
            )
            await views([a, b, c], HOSTS)
            keys = [f"p{i}" for i in range(90)]
            await asyncio.gather(*(ga.get(Counter, k).ask(Add(1), timeout=WAIT_S) for k in keys))
            on_c = {gid.key for gid in gc.active}
            assert on_c
            await c.cluster.close()  # a crash as the others see it: silence
            await views([a, b], ["a", "b"])
            lost_in_flight = 0
            for key in keys:
                try:
                    assert await gb.get(Counter, key).ask(Add(1), timeout=WAIT_S) == 2
                except (NodeLost, AskTimeout):
                    lost_in_flight += 1
            assert lost_in_flight == 0  # b's view no longer has c: nothing goes there
            for key in on_c:
                assert GrainId("Counter", key) in ga.active | gb.active
            for key in keys:
                stored = await provider.load(GrainId("Counter", key))
                assert stored.data is not None
                assert msgspec.msgpack.decode(stored.data, type=Tally) == Tally(2, 2)

    run(main(), timeout_s=60)


def test_a_client_without_hosts_gets_a_clear_error() -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            _, gclient = await stack.enter_async_context(grain_node("client", None))
            with pytest.raises(NoMembers, match="no member hosts grains"):
                await gclient.get(Counter, "x").ask(Get())

    run(main())


def test_grains_move_to_a_joining_node_with_their_state() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        async with AsyncExitStack() as stack:
            a, ga = await stack.enter_async_context(grain_node("a", provider))
            seed = a.cluster.address
            b, gb = await stack.enter_async_context(grain_node("b", provider, seed))
            await views([a, b], ["a", "b"])
            keys = [f"m{i}" for i in range(90)]
            await asyncio.gather(*(ga.get(Counter, k).ask(Add(1), timeout=WAIT_S) for k in keys))
            c, gc = await stack.enter_async_context(grain_node("c", provider, seed))
            await views([a, b, c], HOSTS)
            ring = HashRing(HOSTS)
            moving = {GrainId("Counter", k) for k in keys if ring.owner(f"Counter/{k}") == "c"}
            assert moving
            # a and b hand the newcomer's grains over (saved) without being asked to
            await wait_until(lambda: not moving & (ga.active | gb.active))
            replies = await asyncio.gather(
                *(gb.get(Counter, k).ask(Add(1), timeout=WAIT_S) for k in keys)
            )
            assert replies == [2] * len(keys)
            assert moving <= gc.active
            assert not moving & (ga.active | gb.active)

    run(main(), timeout_s=60)


def test_a_leaving_nodes_gateway_passes_messages_to_the_next_owner() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        async with AsyncExitStack() as stack:
            a, ga = await stack.enter_async_context(grain_node("a", provider))
            seed = a.cluster.address
            b, _ = await stack.enter_async_context(grain_node("b", provider, seed))
            c, gc = await stack.enter_async_context(grain_node("c", provider, seed))
            await views([a, b, c], HOSTS)
            keys = [f"q{i}" for i in range(60)]
            await asyncio.gather(*(ga.get(Counter, k).ask(Add(1), timeout=WAIT_S) for k in keys))
            assert gc.active
            await gc.stop()  # c's grains are saved and gone; c is still a member
            assert not gc.active
            assert [m.node for m in a.cluster.members()] == HOSTS
            replies = await asyncio.gather(
                *(ga.get(Counter, k).ask(Add(1), timeout=WAIT_S) for k in keys)
            )
            assert replies == [2] * len(keys)
            assert gc.placement is not None
            assert gc.placement.forwarded > 0
            assert not gc.active  # c activated nothing after it stopped

    run(main(), timeout_s=60)
