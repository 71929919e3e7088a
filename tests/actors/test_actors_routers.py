"""Router pools: round-robin, broadcast, random, consistent hash; workers that stop leave."""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass
from typing import Any

import pytest
from actors_fixtures import Probe, Runtime, Watcher, local_runtime

from tejido.actors import (
    Actor,
    ActorStopped,
    ActorSystem,
    Broadcast,
    ConsistentHash,
    DeadLetterReason,
    Directive,
    RandomRouting,
    RoundRobin,
    one_for_one,
)

__all__ = ["local_runtime"]


@dataclass(frozen=True)
class Job:
    key: str
    n: int = 0


class Named(Actor[Job | str]):
    """Replies with its own name (w0, w1, ...); 'die' makes it fail."""

    async def receive(self, message: Job | str) -> str:
        if message == "die":
            raise KeyError("die")
        return self.ref.path.name


async def names(pool: Any, messages: list[Any]) -> list[str]:
    return [await pool.ask(m) for m in messages]


def test_round_robin_takes_workers_in_turn(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        pool = system.spawn_pool(RoundRobin(), 3, Named, name="rr")
        got = await names(pool, [Job("x")] * 7)
        assert got == ["w0", "w1", "w2", "w0", "w1", "w2", "w0"]

    local_runtime.run(body)


def test_broadcast_reaches_every_worker(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        pool = system.spawn_pool(Broadcast(), 4, Named)
        assert await pool.ask(Job("all")) == ["w0", "w1", "w2", "w3"]

    local_runtime.run(body)


def test_random_routing_uses_the_seeded_generator(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        pool = system.spawn_pool(RandomRouting(), 4, Named)
        got = await names(pool, [Job("r")] * 200)
        counts = Tally(got)
        assert set(counts) == {"w0", "w1", "w2", "w3"}
        assert min(counts.values()) > 20  # 200 draws over 4 workers, seeded

    local_runtime.run(body)


def test_consistent_hash_keeps_a_key_on_one_worker_and_moves_few(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        routing = ConsistentHash(lambda job: job.key)
        pool = system.spawn_pool(routing, 4, Named, name="ch")
        keys = [f"user-{i}" for i in range(200)]
        first = {k: await pool.ask(Job(k, 1)) for k in keys}
        again = {k: await pool.ask(Job(k, 2)) for k in keys}
        assert first == again
        assert len(set(first.values())) == 4
        # the same pool path in another system maps keys identically (stable hashing)
        async with ActorSystem("test") as other:
            twin = other.spawn_pool(ConsistentHash(lambda job: job.key), 4, Named, name="ch")
            assert {k: await twin.ask(Job(k)) for k in keys} == first
        # a worker that stops leaves; only its keys move
        watched = Probe()
        watcher = system.spawn(Watcher, watched)
        gone = pool.routees[1]  # type: ignore[attr-defined]
        await watcher.ask(gone)
        await gone.stop()
        await watched.expect(1)
        assert len(pool.routees) == 3  # type: ignore[attr-defined]
        after = {k: await pool.ask(Job(k)) for k in keys}
        moved = [k for k in keys if after[k] != first[k]]
        assert all(first[k] == "w1" for k in moved)
        assert "w1" not in after.values()

    local_runtime.run(body)


def test_a_pool_without_workers_dead_letters(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        pool = system.spawn_pool(
            RoundRobin(), 1, Named, strategy=one_for_one(lambda e: Directive.STOP)
        )
        probe = Probe()
        watcher = system.spawn(Watcher, probe)
        await watcher.ask(pool.routees[0])  # type: ignore[attr-defined]
        pool.tell("die")
        await probe.expect(1)
        with pytest.raises(ActorStopped):
            await pool.ask(Job("x"))
        assert system.dead_letters[-1].reason is DeadLetterReason.NO_ROUTEES
        await pool.stop()

    local_runtime.run(body)


def test_pool_size_must_be_positive(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        with pytest.raises(ValueError, match="at least one worker"):
            system.spawn_pool(RoundRobin(), 0, Named)
        with pytest.raises(ValueError, match="virtual_nodes"):
            ConsistentHash(lambda m: m, virtual_nodes=0)

    local_runtime.run(body)
