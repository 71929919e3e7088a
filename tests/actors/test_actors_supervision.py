"""Supervision decisions (resume, restart, stop, escalate), one-for-one and all-for-one,
restart limits within a window, exponential backoff, and the restart bookkeeping."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from actors_fixtures import Add, Get, Probe, Runtime, Watcher, local_runtime

from tejido.actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorSystem,
    Backoff,
    Directive,
    SupervisorStrategy,
    Terminated,
    TerminationCause,
    all_for_one,
    one_for_one,
)
from tejido.actors.supervision import RestartTracker

__all__ = ["local_runtime"]


class KeyErrorIsFatal(Exception):
    pass


def decide(exc: Exception) -> Directive:
    if isinstance(exc, ValueError):
        return Directive.RESUME
    if isinstance(exc, KeyError):
        return Directive.STOP
    if isinstance(exc, KeyErrorIsFatal):
        return Directive.ESCALATE
    return Directive.RESTART


@dataclass(frozen=True)
class Fail:
    error: str  # "value", "key", "escalate", "runtime"
    child: str | None = None


@dataclass(frozen=True)
class SpawnChild:
    name: str


@dataclass(frozen=True)
class Forward:
    child: str
    message: Any


def make_error(kind: str) -> Exception:
    return {
        "value": ValueError("resume me"),
        "key": KeyError("stop me"),
        "escalate": KeyErrorIsFatal("escalate me"),
        "runtime": RuntimeError("restart me"),
    }[kind]


class Worker(Actor[Add | Get | Fail]):
    """A counter that fails on demand and reports its lifecycle."""

    def __init__(self, probe: Probe, label: str) -> None:
        self.probe = probe
        self.label = label
        self.total = 0

    async def started(self) -> None:
        self.probe.put((self.label, "started"))

    async def restarted(self, reason: Exception) -> None:
        self.probe.put((self.label, "restarted", type(reason).__name__))

    async def stopped(self) -> None:
        self.probe.put((self.label, "stopped"))

    async def receive(self, message: Add | Get | Fail) -> int:
        match message:
            case Add(amount):
                self.total += amount
            case Fail(error):
                raise make_error(error)
        return self.total


class Supervisor(Actor[SpawnChild | Forward | Fail | Get]):
    """Spawns workers on demand, forwards asks to them, fails on demand."""

    supervisor_strategy: ClassVar[SupervisorStrategy] = one_for_one(decide)

    def __init__(self, probe: Probe, label: str = "sup") -> None:
        self.probe = probe
        self.label = label

    async def started(self) -> None:
        self.probe.put((self.label, "started"))

    async def restarted(self, reason: Exception) -> None:
        self.probe.put((self.label, "restarted", type(reason).__name__))

    async def receive(self, message: SpawnChild | Forward | Fail | Get) -> Any:
        match message:
            case SpawnChild(name):
                return self.spawn(Worker, self.probe, name, name=name)
            case Forward(child, inner):
                return await self.children[child].ask(inner)
            case Fail(error):
                raise make_error(error)
            case Get():
                return sorted(self.children)
        return None


class AllForOneSupervisor(Supervisor):
    supervisor_strategy: ClassVar[SupervisorStrategy] = all_for_one(decide)


async def tree(
    system: ActorSystem, cls: type[Supervisor], *names: str
) -> tuple[Probe, ActorRef[Any], list[ActorRef[Any]]]:
    probe = Probe()
    sup = system.spawn(cls, probe, name="sup")
    children = [await sup.ask(SpawnChild(name)) for name in names]
    return probe, sup, children


def test_resume_keeps_the_instance_and_its_state(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        _, _, [a] = await tree(system, Supervisor, "a")
        await a.ask(Add(5))
        with pytest.raises(ActorFailed):
            await a.ask(Fail("value"))
        assert await a.ask(Get()) == 5
        assert system.decisions[-1][2] is Directive.RESUME

    local_runtime.run(body)


def test_restart_gives_a_fresh_instance_behind_the_same_ref_and_keeps_the_mailbox(
    local_runtime: Runtime,
) -> None:
    async def body(system: ActorSystem) -> None:
        probe, _, [a] = await tree(system, Supervisor, "a")
        await a.ask(Add(5))
        a.tell(Fail("runtime"))
        a.tell(Add(1))  # queued behind the failure: kept across the restart
        assert await a.ask(Get()) == 1
        await probe.expect_item(lambda item: item == ("a", "restarted", "RuntimeError"))
        assert ("a", "stopped") in probe.items  # the old instance heard stopped

    local_runtime.run(body)


def test_stop_directive_terminates_with_cause_failed(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        _, _, [a] = await tree(system, Supervisor, "a")
        watched = Probe()
        watcher = system.spawn(Watcher, watched)
        watcher.tell(a)
        await watcher.ask(a)
        a.tell(Fail("key"))
        [terminated] = await watched.expect(1)
        assert terminated == Terminated(a, TerminationCause.FAILED)

    local_runtime.run(body)


def test_escalate_fails_the_parent_whose_restart_restarts_the_subtree(
    local_runtime: Runtime,
) -> None:
    async def body(system: ActorSystem) -> None:
        probe, sup, [a] = await tree(system, Supervisor, "a")
        a.tell(Fail("escalate"))
        # the guardian's default strategy restarts the supervisor; its children stop
        await probe.expect_item(lambda item: item == ("sup", "restarted", "KeyErrorIsFatal"))
        await probe.expect_item(lambda item: item == ("a", "stopped"))
        assert await sup.ask(Get()) == []  # the new instance starts without children
        directives = [(path.name, d) for path, _, d, _ in system.decisions]
        assert ("a", Directive.ESCALATE) in directives
        assert ("sup", Directive.RESTART) in directives

    local_runtime.run(body)


def test_escalate_from_a_top_level_actor_stops_it(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        class Escalating(Actor[str]):
            async def receive(self, message: str) -> None:
                raise KeyErrorIsFatal(message)

        async with ActorSystem("esc", strategy=one_for_one(decide)) as other:
            probe = Probe()
            watcher = other.spawn(Watcher, probe)
            victim = other.spawn(Escalating)
            await watcher.ask(victim)
            victim.tell("go")
            [terminated] = await probe.expect(1)
            assert terminated.cause is TerminationCause.FAILED

    local_runtime.run(body)


def test_all_for_one_restarts_every_child(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe, _, [a, b] = await tree(system, AllForOneSupervisor, "a", "b")
        await a.ask(Add(1))
        await b.ask(Add(2))
        a.tell(Fail("runtime"))
        await probe.expect_item(lambda item: item == ("a", "restarted", "RuntimeError"))
        await probe.expect_item(lambda item: item == ("b", "restarted", "RuntimeError"))
        assert await a.ask(Get()) == 0
        assert await b.ask(Get()) == 0

    local_runtime.run(body)


def test_all_for_one_resume_touches_only_the_failing_child(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        _, _, [a, b] = await tree(system, AllForOneSupervisor, "a", "b")
        await a.ask(Add(1))
        await b.ask(Add(2))
        with pytest.raises(ActorFailed):
            await a.ask(Fail("value"))
        assert (await a.ask(Get()), await b.ask(Get())) == (1, 2)

    local_runtime.run(body)


def test_all_for_one_stop_stops_every_child(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        _, sup, [a, b] = await tree(system, AllForOneSupervisor, "a", "b")
        watched = Probe()
        watcher = system.spawn(Watcher, watched)
        await watcher.ask(a)
        await watcher.ask(b)
        a.tell(Fail("key"))
        got = await watched.expect(2)
        assert {t.ref for t in got} == {a, b}
        assert all(t.cause is TerminationCause.FAILED for t in got)
        assert await sup.ask(Get()) == []

    local_runtime.run(body)


class Limited(Supervisor):
    supervisor_strategy: ClassVar[SupervisorStrategy] = one_for_one(max_restarts=2, within_s=60.0)


class LimitedEscalating(Supervisor):
    supervisor_strategy: ClassVar[SupervisorStrategy] = one_for_one(
        max_restarts=1, within_s=60.0, on_limit=Directive.ESCALATE
    )


def test_too_many_restarts_in_the_window_stop_the_child(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe, _, [a] = await tree(system, Limited, "a")
        watched = Probe()
        watcher = system.spawn(Watcher, watched)
        await watcher.ask(a)
        for _ in range(2):
            with pytest.raises(ActorFailed):
                await a.ask(Fail("runtime"))
            assert await a.ask(Get()) == 0  # restarted, still serving
        a.tell(Fail("runtime"))  # third failure within the window
        [terminated] = await watched.expect(1)
        assert terminated.cause is TerminationCause.FAILED
        restarts = [i for i in probe.items if i[:2] == ("a", "restarted")]
        assert len(restarts) == 2

    local_runtime.run(body)


def test_the_limit_can_escalate_instead(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe, _, [a] = await tree(system, LimitedEscalating, "a")
        with pytest.raises(ActorFailed):
            await a.ask(Fail("runtime"))
        a.tell(Fail("runtime"))
        await probe.expect_item(lambda item: item == ("sup", "restarted", "RuntimeError"))

    local_runtime.run(body)


def test_restart_tracker_counts_within_the_window_only() -> None:
    strategy = one_for_one(max_restarts=2, within_s=10.0)
    tracker = RestartTracker()
    assert tracker.attempt(strategy, 0.0) == 0
    assert tracker.attempt(strategy, 1.0) == 1
    assert tracker.attempt(strategy, 2.0) is None  # third within 10 s
    assert tracker.attempt(strategy, 10.5) == 1  # the restart at 0.0 left the window
    unlimited = one_for_one(max_restarts=None)
    free = RestartTracker()
    assert [free.attempt(unlimited, float(t)) for t in range(20)][-1] == 19


def test_backoff_grows_exponentially_up_to_the_cap_with_bounded_jitter() -> None:
    backoff = Backoff(min_s=0.1, max_s=1.0, jitter=0.5)
    rng = random.Random(1)
    for attempt, base in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        for _ in range(50):
            delay = backoff.delay_s(attempt, rng)
            assert base <= delay < base * 1.5
    no_jitter = Backoff(min_s=0.1, max_s=1.0, jitter=0.0)
    assert no_jitter.delay_s(3, rng) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="min_s <= max_s"):
        Backoff(min_s=2.0, max_s=1.0)
    with pytest.raises(ValueError, match="on_limit"):
        SupervisorStrategy(on_limit=Directive.RESUME)


class BackingOff(Supervisor):
    supervisor_strategy: ClassVar[SupervisorStrategy] = one_for_one(
        max_restarts=None, backoff=Backoff(min_s=0.05, max_s=0.2, jitter=0.1)
    )


def test_restarts_wait_for_their_backoff(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        _, _, [a] = await tree(system, BackingOff, "a")
        loop = system.loop
        for attempt in range(3):
            failed_at = loop.time()
            a.tell(Fail("runtime"))
            assert await a.ask(Get(), timeout=10) == 0  # answered by the new instance
            waited = loop.time() - failed_at
            _, _, directive, delay = system.decisions[-1]
            assert directive is Directive.RESTART
            expected = min(0.2, 0.05 * 2**attempt)
            assert expected <= delay < expected * 1.1
            # never earlier than the backoff (the loop clock; uvloop rounds timers to 1 ms)
            assert waited >= delay - 0.002

    local_runtime.run(body)


class FailsToStart(Actor[str]):
    attempts = 0

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def started(self) -> None:
        FailsToStart.attempts += 1
        self.probe.put("attempt")
        if FailsToStart.attempts <= 2:
            raise RuntimeError("not yet")

    async def receive(self, message: str) -> str:
        return message


def test_a_failing_started_hook_is_supervised_and_queued_messages_wait(
    local_runtime: Runtime,
) -> None:
    async def body(system: ActorSystem) -> None:
        FailsToStart.attempts = 0
        probe = Probe()
        ref = system.spawn(FailsToStart, probe)
        assert await ref.ask("hello") == "hello"
        assert probe.items == ["attempt"] * 3

    local_runtime.run(body)


class Grandparent(Actor[str]):
    """Resumes whatever its child escalates; spawns one Supervisor child."""

    supervisor_strategy: ClassVar[SupervisorStrategy] = one_for_one(lambda exc: Directive.RESUME)

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def receive(self, message: str) -> Any:
        return self.spawn(Supervisor, self.probe, name=message)


def test_an_escalation_resumed_above_resumes_the_escalating_child(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        grandparent = system.spawn(Grandparent, probe)
        sup = await grandparent.ask("sup")
        a = await sup.ask(SpawnChild("a"))
        await a.ask(Add(3))
        a.tell(Fail("escalate"))
        # the supervisor resumed (no restart), so the child resumes with its state
        assert await a.ask(Get()) == 3
        assert await sup.ask(Get()) == ["a"]
        assert ("sup", "restarted", "KeyErrorIsFatal") not in probe.items
        directives = [(path.name, d) for path, _, d, _ in system.decisions]
        assert directives[-2:] == [("a", Directive.ESCALATE), ("sup", Directive.RESUME)]

    local_runtime.run(body)
