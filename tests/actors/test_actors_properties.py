"""Property: nothing told is lost silently. Whatever the mix of tells, asks and a stop
(draining or not) at any point, every message is either handled exactly once, in the order
it was told, or recorded exactly once as a dead letter; every ask is answered or fails
with a typed error."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from actors_fixtures import run
from hypothesis import given, settings
from hypothesis import strategies as st

from tejido.actors import Actor, ActorStopped, ActorSystem, MailboxConfig, MailboxFull, Overflow


@dataclass(frozen=True)
class Yield:
    """Makes the actor await once, so that stops land while it is mid-message."""


class Log(Actor[int | Yield]):
    def __init__(self, handled: list[int]) -> None:
        self.handled = handled

    async def receive(self, message: int | Yield) -> Any:
        if isinstance(message, Yield):
            await asyncio.sleep(0)
            return None
        self.handled.append(message)
        return message


operation = st.one_of(
    st.tuples(st.just("tell"), st.integers(1, 5)),
    st.tuples(st.just("ask"), st.just(1)),
    st.tuples(st.just("yield"), st.just(1)),
    st.tuples(st.just("turn"), st.just(1)),
)


@settings(max_examples=60)
@given(
    before=st.lists(operation, max_size=12),
    after=st.lists(operation, max_size=6),
    drain=st.booleans(),
    capacity=st.one_of(st.none(), st.integers(1, 6)),
    overflow=st.sampled_from([Overflow.DROP_NEW, Overflow.DROP_OLDEST]),
)
def test_every_message_is_handled_once_in_order_or_dead_lettered(
    before: list[tuple[str, int]],
    after: list[tuple[str, int]],
    drain: bool,
    capacity: int | None,
    overflow: Overflow,
) -> None:
    async def main() -> None:
        handled: list[int] = []
        told: list[int] = []
        asks: list[asyncio.Future[Any]] = []
        async with ActorSystem("prop") as system:
            ref = system.spawn(Log, handled, mailbox=MailboxConfig(capacity, overflow))

            def send(kind: str, count: int) -> None:
                for _ in range(count):
                    told.append(len(told))
                    if kind == "tell":
                        ref.tell(told[-1])
                    else:
                        asks.append(asyncio.ensure_future(ref.ask(told[-1], timeout=30)))

            async def play(ops: list[tuple[str, int]]) -> None:
                for kind, count in ops:
                    if kind == "yield":
                        ref.tell(Yield())
                    elif kind == "turn":
                        await asyncio.sleep(0)
                    else:
                        send(kind, count)
                        await asyncio.sleep(0)  # let asks enqueue in order

            await play(before)
            stopping = asyncio.ensure_future(ref.stop(drain=drain))
            await asyncio.sleep(0)
            await play(after)
            await stopping
            results = await asyncio.gather(*asks, return_exceptions=True)
            dead = [d.message for d in system.dead_letters if isinstance(d.message, int)]
        assert handled == sorted(handled)  # in the order told
        assert sorted(handled + dead) == told  # each exactly once, handled or dead
        for result in results:
            assert isinstance(result, int | ActorStopped | MailboxFull), result

    run(main())
