"""Cluster membership of actor systems (in one process, several nodes on one loop):
joining through a seed, the member view and its events, graceful leave, failure detection
by heartbeat timeout, quarantine of a downed incarnation, and configuration errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from actors_fixtures import run

from tejido.actors import Actor, ActorSystem
from tejido.actors.cluster import ClusterConfig, MemberDown, MemberEvent, MemberUp, Subscription

WAIT_S = 10.0


class _Nothing(Actor[object]):
    pass


@asynccontextmanager
async def node(name: str, *seeds: str, timeout_s: float = 3.0) -> AsyncIterator[ActorSystem]:
    config = ClusterConfig(
        node=name, seeds=tuple(seeds), heartbeat_s=0.05, failure_timeout_s=timeout_s
    )
    async with ActorSystem("test", cluster=config) as system:
        yield system


async def until(subscription: Subscription, wanted: type, node: str) -> MemberEvent:
    """The first event of type `wanted` about `node` (earlier events are skipped)."""
    async with asyncio.timeout(WAIT_S):
        async for event in subscription:
            if isinstance(event, wanted) and event.member.node == node:
                return event
    raise AssertionError("subscription closed")


async def view(system: ActorSystem, nodes: list[str]) -> None:
    """Wait until `system`'s member view is exactly `nodes`."""
    async with system.cluster.subscribe() as events:
        async with asyncio.timeout(WAIT_S):
            while [m.node for m in system.cluster.members()] != nodes:
                await events.next()


def test_nodes_joining_through_one_seed_see_each_other() -> None:
    async def main() -> None:
        async with node("a") as a:
            seed = a.cluster.address
            async with node("b", seed) as b, node("c", seed) as c:
                for system in (a, b, c):
                    await view(system, ["a", "b", "c"])
                member = c.cluster.member("a")
                assert member is not None
                assert member.address == seed
                assert c.cluster.member("zz") is None
                assert str(b.spawn(_Nothing, name="x").path) == "tejido://test@b/user/x"

    run(main())


def test_subscription_starts_with_the_current_members_then_reports_a_leave() -> None:
    async def main() -> None:
        async with node("a") as a:
            events = a.cluster.subscribe()
            first = await events.next(WAIT_S)
            assert first == MemberUp(a.cluster.member("a"))  # type: ignore[arg-type]
            async with node("b", a.cluster.address):
                assert isinstance(await until(events, MemberUp, "b"), MemberUp)
            down = await until(events, MemberDown, "b")
            assert isinstance(down, MemberDown)
            assert down.reason == "left"
            assert [m.node for m in a.cluster.members()] == ["a"]
            events.close()
            with pytest.raises(StopAsyncIteration):
                await events.next(WAIT_S)

    run(main())


def test_a_silent_node_is_declared_lost_and_quarantined() -> None:
    async def main() -> None:
        async with node("a", timeout_s=0.5) as a:
            events = a.cluster.subscribe()
            b = ActorSystem("test", cluster=ClusterConfig("b", seeds=(a.cluster.address,)))
            await b.start()
            try:
                await until(events, MemberUp, "b")
                old = a.cluster.member("b")
                await b.cluster.close()  # a crash, as far as a can tell: links gone, silence
                down = await until(events, MemberDown, "b")
                assert isinstance(down, MemberDown)
                assert down.reason == "lost"
                assert down.member == old
                assert "b" not in [m.node for m in a.cluster.members()]
            finally:
                await b.shutdown()
            # a new incarnation of "b" is welcome again
            async with node("b", a.cluster.address):
                up = await until(events, MemberUp, "b")
                assert isinstance(up, MemberUp)
                assert up.member != old

    run(main())


def test_cluster_configuration_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="node name"):
        ClusterConfig(node="a/b")
    with pytest.raises(ValueError, match="heartbeat_s"):
        ClusterConfig(node="a", heartbeat_s=1.0, failure_timeout_s=0.5)
    with pytest.raises(ValueError, match="seeds"):
        ClusterConfig(node="a", seeds="127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differs"):
        ActorSystem("test", node="a", cluster=ClusterConfig(node="b"))
    with pytest.raises(RuntimeError, match="not a cluster node"):
        _ = ActorSystem("test").cluster
