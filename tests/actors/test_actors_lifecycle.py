"""Lifecycle hooks, timers, stash/unstash, graceful stop both ways, death watch."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from actors_fixtures import (
    Add,
    Block,
    Counter,
    Get,
    Probe,
    Recorder,
    Runtime,
    Watcher,
    local_runtime,
    runtime,
)

from tejido.actors import (
    Actor,
    ActorRef,
    ActorStopped,
    ActorSystem,
    DeadLetterReason,
    Directive,
    Terminated,
    TerminationCause,
)

__all__ = ["local_runtime", "runtime"]


class Hooked(Actor[str]):
    """Reports its hooks to a probe; a child is spawned in `started`."""

    def __init__(self, probe: Probe, label: str, child: bool = False) -> None:
        self.probe = probe
        self.label = label
        self.child = child

    async def started(self) -> None:
        self.probe.put(f"{self.label} started")
        if self.child:
            self.spawn(Hooked, self.probe, f"{self.label}.child", name="child")

    async def stopping(self) -> None:
        self.probe.put(f"{self.label} stopping")

    async def stopped(self) -> None:
        self.probe.put(f"{self.label} stopped")

    async def receive(self, message: str) -> str:
        self.probe.put(f"{self.label} got {message}")
        return message


def test_hooks_run_in_order_and_children_stop_first(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        parent = system.spawn(Hooked, probe, "p", True, name="p")
        assert await parent.ask("hello") == "hello"
        await probe.expect(3)
        await parent.stop()
        assert probe.items[:3] == ["p started", "p.child started", "p got hello"] or (
            probe.items[:3] == ["p started", "p got hello", "p.child started"]
        )
        assert probe.items[3:] == [
            "p stopping",
            "p.child stopping",
            "p.child stopped",
            "p stopped",
        ]

    local_runtime.run(body)


@dataclass(frozen=True)
class StartTimer:
    key: str
    delay_s: float
    periodic: bool = False


@dataclass(frozen=True)
class CancelTimer:
    key: str


@dataclass(frozen=True)
class Tick:
    key: str


class Ticker(Actor[StartTimer | CancelTimer | Tick | Block]):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def receive(self, message: StartTimer | CancelTimer | Tick | Block) -> bool | None:
        match message:
            case StartTimer(key, delay_s, False):
                self.timers.start_single(key, Tick(key), delay_s)
            case StartTimer(key, delay_s, True):
                self.timers.start_periodic(key, Tick(key), delay_s)
            case CancelTimer(key):
                return self.timers.cancel(key)
            case Tick():
                self.probe.put(message)
            case Block(release):
                await release.wait()
        return None


def test_single_and_periodic_timers_and_cancel(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        ticker = system.spawn(Ticker, probe)
        ticker.tell(StartTimer("once", 0.01))
        ticker.tell(StartTimer("every", 0.01, periodic=True))
        await probe.expect_item(lambda t: t == Tick("once"))
        await probe.expect(4)
        assert probe.items.count(Tick("once")) == 1
        assert await ticker.ask(CancelTimer("every")) is True
        count = len(probe.items)
        # a marker timer that fires later than several periods proves the periodic one
        # stopped: everything queued before it has been processed by then
        ticker.tell(StartTimer("marker", 0.05))
        await probe.expect_item(lambda t: t == Tick("marker"))
        assert probe.items[count:] == [Tick("marker")]
        assert await ticker.ask(CancelTimer("marker")) is False

    local_runtime.run(body)


@dataclass(frozen=True)
class HoldThenCancel:
    """Start timer `key` due at once, hold until `release`, then cancel the timer."""

    key: str
    release: asyncio.Event


class HoldingTicker(Ticker):
    async def receive(self, message: Any) -> Any:
        if isinstance(message, HoldThenCancel):
            self.timers.start_single(message.key, Tick(message.key), 0.0)
            await message.release.wait()
            return self.timers.cancel(message.key)
        return await super().receive(message)


def test_a_cancelled_timer_drops_its_queued_message(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        ticker = system.spawn(HoldingTicker, probe)
        release = asyncio.Event()
        held = asyncio.ensure_future(ticker.ask(HoldThenCancel("late", release)))
        # a loop-clock deadline after the timer's: the loop runs due timers in order of
        # their deadlines, so by then the tick sits in the mailbox behind the held message
        loop = asyncio.get_running_loop()
        passed = loop.create_future()
        loop.call_later(0.02, passed.set_result, None)
        await passed
        release.set()
        assert await held is True  # the timer was still active when cancelled
        await ticker.ask(StartTimer("marker", 0.0))
        await probe.expect_item(lambda t: t == Tick("marker"))
        assert Tick("late") not in probe.items

    local_runtime.run(body)


@dataclass(frozen=True)
class Open:
    pass


class Door(Actor[Open | str]):
    """Stashes everything until it is opened, then replies to the stashed asks."""

    def __init__(self) -> None:
        self.open = False
        self.seen: list[str] = []

    async def receive(self, message: Open | str) -> Any:
        if isinstance(message, Open):
            self.open = True
            self.unstash_all()
            return "opened"
        if not self.open:
            self.stash()
            return "not an answer"
        self.seen.append(message)
        return f"{message}:{len(self.seen)}"


def test_stash_defers_messages_and_their_asks(runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        door = system.spawn(Door)
        first = asyncio.ensure_future(door.ask("a"))
        second = asyncio.ensure_future(door.ask("b"))
        await asyncio.sleep(0)  # both asks are queued (and stashed) before c
        door.tell("c")
        assert not first.done()
        assert await door.ask(Open()) == "opened"
        assert await first == "a:1"
        assert await second == "b:2"
        assert await door.ask("d") == "d:4"  # c was processed third, in order

    runtime.run(body)


def test_stop_with_drain_processes_the_queue(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter)
        release = asyncio.Event()
        counter.tell(Block(release))
        pending = [asyncio.ensure_future(counter.ask(Add(1))) for _ in range(5)]
        await asyncio.sleep(0)
        stopping = asyncio.ensure_future(counter.stop(drain=True))
        await asyncio.sleep(0)
        counter.tell(Add(100))  # after the stop request: rejected
        assert system.dead_letters[-1].reason is DeadLetterReason.STOPPING
        release.set()
        await stopping
        assert [await p for p in pending] == [1, 2, 3, 4, 5]

    local_runtime.run(body)


def test_stop_without_drain_rejects_the_queue(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter)
        release = asyncio.Event()
        counter.tell(Block(release))
        pending = [asyncio.ensure_future(counter.ask(Add(1))) for _ in range(5)]
        await asyncio.sleep(0)
        before = system.dead_letter_count
        stopping = asyncio.ensure_future(counter.stop(drain=False))
        await asyncio.sleep(0)
        assert system.dead_letter_count == before + 5
        for p in pending:
            with pytest.raises(ActorStopped):
                await p
        release.set()
        await stopping

    local_runtime.run(body)


class SelfStopper(Actor[str]):
    async def receive(self, message: str) -> str:
        if message == "stop":
            self.stop()
        return message


def test_an_actor_stops_itself_after_the_current_message(runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        watcher = system.spawn(Watcher, probe)
        actor = system.spawn(SelfStopper)
        watcher.tell(actor)
        assert await actor.ask("stop") == "stop"
        [terminated] = await probe.expect(1)
        assert terminated == Terminated(actor, TerminationCause.STOPPED)

    runtime.run(body)


def test_death_watch_local_and_already_dead_and_unwatch(runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        watcher = system.spawn(Watcher, probe)
        alive = system.spawn(Counter, name="alive")
        dead = system.spawn(Counter, name="dead")
        await dead.stop()
        watcher.tell(dead)  # already dead: Terminated at once
        [first] = await probe.expect(1)
        assert first.ref == dead
        watcher.tell(alive)
        await watcher.ask(alive)  # the watch is registered once this returns
        await alive.stop()
        [_, second] = await probe.expect(2)
        assert second.ref == alive
        assert second.cause is TerminationCause.STOPPED

    runtime.run(body)


class Unwatcher(Actor[tuple[str, ActorRef[Any]] | Terminated]):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def receive(self, message: tuple[str, ActorRef[Any]] | Terminated) -> None:
        if isinstance(message, Terminated):
            self.probe.put(message)
        elif message[0] == "watch":
            self.watch(message[1])
        else:
            self.unwatch(message[1])


def test_unwatch_means_no_terminated(runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        watcher = system.spawn(Unwatcher, probe)
        first = system.spawn(Counter)
        second = system.spawn(Counter)
        await watcher.ask(("watch", first))
        await watcher.ask(("watch", second))
        await watcher.ask(("unwatch", first))
        await first.stop()
        await second.stop()
        [only] = await probe.expect(1)
        await watcher.ask(("noop", second))  # everything queued has been handled
        assert probe.items == [only]
        assert only.ref == second

    runtime.run(body)


def test_system_shutdown_stops_everything_and_rejects_later_messages() -> None:
    from actors_fixtures import run

    async def main() -> None:
        probe = Probe()
        async with ActorSystem("shut") as system:
            recorder = system.spawn(Recorder, probe)
            counter = system.spawn(Counter)
            for i in range(3):
                recorder.tell(i)
        assert probe.items == [0, 1, 2]  # drained on a normal exit
        counter.tell(Add(1))
        assert system.dead_letters[-1].reason is DeadLetterReason.STOPPED
        with pytest.raises(ActorStopped):
            await counter.ask(Get())

    run(main())


class EagerStasher(Actor[str]):
    async def started(self) -> None:
        self.stash()  # no message in hand: refused


def test_stash_outside_receive_is_refused(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        from tejido.core.errors import LocalProtocolError

        probe = Probe()
        watcher = system.spawn(Watcher, probe)
        eager = system.spawn(EagerStasher, name="eager")
        await watcher.ask(eager)
        # every start fails; after the default limit (10 restarts a minute) it stops
        [terminated] = await probe.expect(1)
        assert terminated.cause is TerminationCause.FAILED
        decisions = [(p.name, type(e), d) for p, e, d, _ in system.decisions]
        assert decisions[0] == ("eager", LocalProtocolError, Directive.RESTART)
        assert decisions[-1] == ("eager", LocalProtocolError, Directive.STOP)
        assert len(decisions) == 11

    local_runtime.run(body)
