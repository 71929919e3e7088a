"""The blocking facade: plain threads tell and ask actors running on a loop thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from actors_fixtures import Add, Block, Counter, Get

from tejido.actors import (
    Actor,
    ActorRef,
    AskTimeout,
    BlockingActorSystem,
    RoundRobin,
    UnexpectedReply,
    WrongThread,
)


def test_threads_tell_and_ask_through_the_facade() -> None:
    with BlockingActorSystem("blocking") as system:
        counter = system.spawn(Counter, name="counter")

        def hammer() -> None:
            for _ in range(500):
                counter.tell(Add(1))
            counter.ask(Get(), timeout=10)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        assert counter.ask(Get(), timeout=10, expect=int) == 2000
        with pytest.raises(UnexpectedReply):
            counter.ask(Get(), expect=str)
        pool = system.spawn_pool(RoundRobin(), 2, Counter)
        assert [pool.ask(Add(1)) for _ in range(4)] == [1, 1, 2, 2]
        counter.stop()
        assert system.system.lookup("/user/counter") is None


def test_a_plain_async_ref_told_from_a_thread_is_handed_to_the_loop() -> None:
    with BlockingActorSystem("blocking") as system:
        counter = system.spawn(Counter)
        raw: ActorRef[Any] = counter.ref
        thread = threading.Thread(target=lambda: [raw.tell(Add(1)) for _ in range(100)])
        thread.start()
        thread.join(timeout=30)
        assert counter.ask(Get()) == 100


class Reentrant(Actor[str]):
    def __init__(self, facade: BlockingActorSystem) -> None:
        self.facade = facade

    async def receive(self, message: str) -> str:
        try:
            self.facade.run(self.ref.ask("inner"))  # would wait for itself
        except WrongThread as exc:
            return f"refused: {exc}"
        return "not refused"


def test_blocking_calls_from_the_loop_thread_are_refused_and_timeouts_raise() -> None:
    with BlockingActorSystem("blocking") as system:
        actor = system.spawn(Reentrant, system)
        assert actor.ask("go").startswith("refused")
        counter = system.spawn(Counter)
        release = system.call(lambda _s: asyncio.Event())
        counter.tell(Block(release))
        with pytest.raises(AskTimeout):
            counter.ask(Get(), timeout=0.05)
        system.loop.call_soon_threadsafe(release.set)
        assert counter.ask(Get()) == 0


def test_spawn_and_ask_from_a_foreign_thread_are_refused() -> None:
    with BlockingActorSystem("blocking") as facade:
        counter = facade.spawn(Counter)
        errors: list[BaseException] = []

        def misuse() -> None:
            for attempt in (
                lambda: facade.system.spawn(Counter),
                lambda: asyncio.run(counter.ref.ask(Get())),
            ):
                try:
                    attempt()
                except WrongThread as exc:
                    errors.append(exc)

        thread = threading.Thread(target=misuse)
        thread.start()
        thread.join(timeout=30)
        assert len(errors) == 2
        assert counter.ask(Get()) == 0
