"""Eager start (`tejido.actors.cell`, rule 6): a message from another node that finds its
actor idle runs ``receive`` on the reading callback's stack, and a task takes over only
if ``receive`` suspends. These tests show the two paths keep the same semantics: order
per sender, one message at a time, a failure goes to the supervisor, stop during
processing, stash and unstash, asks answered once. Two nodes run in this process (the
frames cross real loopback connections), so a test can look inside the serving node;
``asyncio.current_task()`` inside ``receive`` tells which path ran (None: eager)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from actors_fixtures import WAIT_S, join, run

from tejido.actors import Actor, ActorFailed, ActorRef, ActorStopped, ActorSystem, Directive
from tejido.actors.cluster import ClusterConfig
from tejido.actors.remote import RemoteActorRef
from tejido.actors.supervision import one_for_one


@dataclass(frozen=True)
class Item:
    n: int
    suspend: bool = False


@dataclass(frozen=True)
class Seen:
    pass


@dataclass(frozen=True)
class Boom:
    after_suspending: bool


@dataclass(frozen=True)
class Open:
    pass


@dataclass(frozen=True)
class StopAfter:
    suspend: bool


class Recorder(Actor[Item | Seen | Boom | StopAfter]):
    """Records what it handled, in order, and whether it finished in a task; checks
    that it never handles two messages at once."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bool]] = []
        self.busy = False

    async def receive(self, message: Item | Seen | Boom | StopAfter) -> Any:
        if self.busy:
            raise AssertionError("two messages at once")
        self.busy = True
        try:
            match message:
                case Item(n, suspend):
                    if suspend:
                        await asyncio.sleep(0.001)
                    self.seen.append((n, asyncio.current_task() is not None))
                    return n
                case Seen():
                    return list(self.seen)
                case Boom(after_suspending):
                    if after_suspending:
                        await asyncio.sleep(0)
                    raise ValueError("boom")
                case StopAfter(suspend):
                    if suspend:
                        await asyncio.sleep(0.001)
                    self.stop()
                    return "stopping"
            return self.unhandled(message)
        finally:
            self.busy = False


class Gate(Actor[Item | Open]):
    """Stashes items until `Open`, then replays them; answers each item with its n."""

    def __init__(self) -> None:
        self.open = False
        self.handled: list[int] = []

    async def receive(self, message: Item | Open) -> Any:
        match message:
            case Open():
                self.open = True
                self.unstash_all()
                return "open"
            case Item(n, suspend):
                if suspend:
                    await asyncio.sleep(0)
                if not self.open:
                    self.stash()
                    return None
                self.handled.append(n)
                return n
        return self.unhandled(message)


class InTask(Actor[Item]):
    eager = False

    async def receive(self, message: Item) -> Any:
        async with asyncio.timeout(WAIT_S):  # needs a task of its own
            return asyncio.current_task() is not None


def _register(system: ActorSystem) -> None:
    system.types.register(Item, Seen, Boom, Open, StopAfter)


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[ActorSystem, ActorSystem]]:
    """Node `a` (the sender) and node `b` (the actors), each seeing the other."""

    def config(name: str, *seeds: str) -> ClusterConfig:
        return ClusterConfig(node=name, seeds=seeds, heartbeat_s=0.05)

    async with ActorSystem("eager", cluster=config("a")) as a:
        _register(a)
        async with ActorSystem("eager", cluster=config("b", a.cluster.address)) as b:
            _register(b)
            await join(a, "b")
            await join(b, "a")
            yield a, b


async def remote(a: ActorSystem, name: str) -> ActorRef[Any]:
    ref = await a.find(name, timeout=WAIT_S)
    assert isinstance(ref, RemoteActorRef)
    return ref


def test_tells_keep_their_order_whether_receive_suspends_or_not() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            b.spawn(Recorder, name="r")
            ref = await remote(a, "r")
            for n in range(300):
                ref.tell(Item(n, suspend=n % 7 == 3))
            seen = await ref.ask(Seen(), timeout=WAIT_S)
            assert [n for n, _ in seen] == list(range(300))
            in_task = dict(seen)
            # both paths ran: items that suspended always end in a task; some items
            # found the actor idle and ran eagerly (outside any task)
            assert all(in_task[n] for n in range(3, 300, 7))
            assert not all(in_task.values())

    run(main())


def test_sequential_asks_run_eagerly_and_suspending_ones_in_a_task() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            b.spawn(Recorder, name="r")
            ref = await remote(a, "r")
            for n in range(20):
                assert await ref.ask(Item(n, suspend=n % 2 == 1), timeout=WAIT_S) == n
            seen = await ref.ask(Seen(), timeout=WAIT_S)
            assert [tuple(pair) for pair in seen] == [(n, n % 2 == 1) for n in range(20)]

    run(main())


def test_asks_in_flight_together_are_answered_in_order_one_at_a_time() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            b.spawn(Recorder, name="r")
            ref = await remote(a, "r")
            replies = await asyncio.gather(
                *(ref.ask(Item(n, suspend=n % 3 == 0), timeout=WAIT_S) for n in range(60))
            )
            assert replies == list(range(60))
            seen = await ref.ask(Seen(), timeout=WAIT_S)
            assert [n for n, _ in seen] == list(range(60))

    run(main())


@pytest.mark.parametrize("after_suspending", [False, True])
def test_a_failure_goes_to_the_supervisor_and_the_ask_fails(after_suspending: bool) -> None:
    async def main() -> None:
        async with pair() as (a, b):
            b.spawn(Recorder, name="r")
            ref = await remote(a, "r")
            assert await ref.ask(Item(1), timeout=WAIT_S) == 1
            with pytest.raises(ActorFailed) as failed:
                await ref.ask(Boom(after_suspending), timeout=WAIT_S)
            assert isinstance(failed.value.cause, ValueError)
            # the default strategy restarts it: a fresh instance, the same reference
            assert await ref.ask(Seen(), timeout=WAIT_S) == []
            decisions = [(path.name, directive) for path, _, directive, _ in b.decisions]
            assert decisions == [("r", Directive.RESTART)]
            assert await ref.ask(Item(2), timeout=WAIT_S) == 2

    run(main())


def test_resume_after_an_eager_failure_keeps_the_state_and_the_queue() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            b.spawn(_Parent, name="p")
            parent = await remote(a, "p")
            child = await parent.ask("child", timeout=WAIT_S)
            assert isinstance(child, RemoteActorRef)
            child.tell(Item(1))
            child.tell(Boom(False))  # fails eagerly when it finds the child idle
            child.tell(Item(2, suspend=True))
            child.tell(Item(3))
            seen = await child.ask(Seen(), timeout=WAIT_S)
            assert [n for n, _ in seen] == [1, 2, 3]  # resumed: state and queue kept
            assert [(path.name, directive) for path, _, directive, _ in b.decisions] == [
                ("c", Directive.RESUME)
            ]

    run(main())


class _Parent(Actor[str]):
    """Spawns one `Recorder` child and resumes it whenever it fails."""

    supervisor_strategy = one_for_one(lambda _: Directive.RESUME)

    def __init__(self) -> None:
        self.child: ActorRef[Any] | None = None

    async def receive(self, message: str) -> Any:
        if self.child is None:
            self.child = self.spawn(Recorder, name="c")
        return self.child


@pytest.mark.parametrize("suspend", [False, True])
def test_stop_during_processing_answers_it_then_refuses_the_rest(suspend: bool) -> None:
    async def main() -> None:
        async with pair() as (a, b):
            local = b.spawn(Recorder, name="r")
            ref = await remote(a, "r")
            ref.tell(Item(1))
            assert await ref.ask(StopAfter(suspend), timeout=WAIT_S) == "stopping"
            await asyncio.wait_for(local.stop(), WAIT_S)  # already stopping: wait for it
            with pytest.raises(ActorStopped):
                await ref.ask(Item(2), timeout=WAIT_S)

    run(main())


@pytest.mark.parametrize("suspend", [False, True])
def test_stashed_asks_are_answered_after_unstash_in_order(suspend: bool) -> None:
    async def main() -> None:
        async with pair() as (a, b):
            gate = b.spawn(Gate, name="g")
            ref = await remote(a, "g")
            asks = [
                asyncio.ensure_future(ref.ask(Item(n, suspend), timeout=WAIT_S)) for n in range(5)
            ]
            await asyncio.sleep(0)  # one scheduling step: each ask task sends its frame
            ref.tell(Item(5, suspend))
            assert await ref.ask(Open(), timeout=WAIT_S) == "open"
            assert await asyncio.gather(*asks) == [0, 1, 2, 3, 4]
            assert await ref.ask(Item(6), timeout=WAIT_S) == 6
            assert gate._cell.actor.handled == [0, 1, 2, 3, 4, 5, 6]  # type: ignore[attr-defined]

    run(main())


def test_an_actor_that_is_not_eager_runs_in_its_own_task() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            b.spawn(InTask, name="t")
            ref = await remote(a, "t")
            assert await ref.ask(Item(1), timeout=WAIT_S) is True

    run(main())


class Synchronous(Actor[Item]):
    """`receive` not written as ``async def``: it raises at once, or returns a future."""

    def receive(self, message: Item) -> Any:  # type: ignore[override]
        if message.n < 0:
            raise ValueError("negative")
        future = asyncio.get_running_loop().create_future()
        future.get_loop().call_soon(future.set_result, message.n * 2)
        return future


def test_a_receive_that_raises_before_its_coroutine_or_returns_a_future() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            b.spawn(Synchronous, name="s")
            ref = await remote(a, "s")
            assert await ref.ask(Item(2), timeout=WAIT_S) == 4  # awaited by a task
            with pytest.raises(ActorFailed):
                await ref.ask(Item(-1), timeout=WAIT_S)
            assert await ref.ask(Item(3), timeout=WAIT_S) == 6  # restarted, not wedged
            assert not b.eager_busy

    run(main())
