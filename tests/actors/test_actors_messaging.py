"""tell and ask: replies, ordering per sender-receiver pair, timeouts, typed errors, dead
letters, bounded mailboxes, names and lookup."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actors_fixtures import (
    Add,
    Block,
    Boom,
    Counter,
    Get,
    Note,
    Probe,
    Recorder,
    Runtime,
    local_runtime,
    run,
    runtime,
)

from tejido.actors import (
    Actor,
    ActorFailed,
    ActorNameTaken,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    DeadLetterReason,
    InvalidActorName,
    MailboxConfig,
    MailboxFull,
    Overflow,
    SpawnFailed,
    UnexpectedReply,
    UnhandledMessage,
)

__all__ = ["local_runtime", "runtime"]


def test_tell_then_ask_sees_every_told_message(runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter, 100, name="counter")
        for amount in range(1, 101):
            counter.tell(Add(amount))
        assert await counter.ask(Get(), timeout=5, expect=int) == 100 + 5050

    runtime.run(body)


def test_ask_returns_what_receive_returned(runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter)
        assert await counter.ask(Add(3)) == 3
        assert await counter.ask(Add(4)) == 7

    runtime.run(body)


class Relay(Actor[tuple[str, int]]):
    """Tells the target a numbered Note per message, so many senders interleave."""

    def __init__(self, target: ActorRef[Note]) -> None:
        self.target = target

    async def receive(self, message: tuple[str, int]) -> None:
        name, count = message
        for seq in range(count):
            self.target.tell(Note(name, seq))
            if seq % 7 == 0:
                await asyncio.sleep(0)  # let the other senders interleave


def test_order_is_kept_per_sender_receiver_pair(runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        target = system.spawn(Recorder, probe)
        senders = [system.spawn(Relay, target, name=f"s{i}") for i in range(4)]
        for index, sender in enumerate(senders):
            sender.tell((f"s{index}", 200))
        notes = await probe.expect(800)
        for index in range(4):
            seqs = [n.seq for n in notes if n.sender == f"s{index}"]
            assert seqs == list(range(200))
        # the senders really interleaved (otherwise the test proves little)
        assert [n.sender for n in notes[:200]] != ["s0"] * 200

    runtime.run(body)


def test_ask_timeout_is_typed_and_names_the_actor(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter, name="slow")
        release = asyncio.Event()
        counter.tell(Block(release))
        with pytest.raises(AskTimeout) as caught:
            await counter.ask(Get(), timeout=0.05)
        assert "slow" in str(caught.value)
        assert isinstance(caught.value, TimeoutError)
        release.set()
        # the actor still works, and processed the timed-out ask's message too
        assert await counter.ask(Add(1)) == 1

    local_runtime.run(body)


def test_failed_ask_unhandled_and_unexpected_reply(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter)
        await counter.ask(Add(5))
        with pytest.raises(UnexpectedReply):
            await counter.ask(Get(), expect=str)
        with pytest.raises(UnhandledMessage):
            await counter.ask("what")  # type: ignore[arg-type]
        assert system.dead_letters[-1].reason is DeadLetterReason.UNHANDLED
        with pytest.raises(ActorFailed) as caught:
            await counter.ask(Boom("bad input"))
        assert isinstance(caught.value.cause, ValueError)
        # default strategy restarts: fresh state, same reference, still serving
        assert await counter.ask(Get()) == 0

    local_runtime.run(body)


def test_messages_to_a_stopped_actor_are_dead_letters(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter, name="gone")
        await counter.stop()
        before = system.dead_letter_count
        counter.tell(Add(1))
        assert system.dead_letter_count == before + 1
        letter = system.dead_letters[-1]
        assert letter.message == Add(1)
        assert letter.reason is DeadLetterReason.STOPPED
        assert letter.recipient.name == "gone"
        with pytest.raises(ActorStopped):
            await counter.ask(Get())

    local_runtime.run(body)


class BlockingRecorder(Recorder):
    """A recorder that holds on `Block` until its event is set."""

    async def receive(self, message: Any) -> Any:
        self.probe.put(message)
        if isinstance(message, Block):
            await message.release.wait()
        return message


@pytest.mark.parametrize(
    ("overflow", "kept"),
    [(Overflow.DROP_NEW, [1, 2, 3]), (Overflow.DROP_OLDEST, [4, 5, 6])],
)
def test_bounded_mailbox_drops_by_policy(overflow: Overflow, kept: list[int]) -> None:
    async def body(system: ActorSystem) -> None:
        probe = Probe()
        release = asyncio.Event()
        recorder = system.spawn(BlockingRecorder, probe, mailbox=MailboxConfig(3, overflow))
        # hold the recorder busy on its first message, then overfill its mailbox
        recorder.tell(Block(release))
        await probe.expect(1)
        for value in range(1, 7):
            recorder.tell(value)
        dropped = [
            d.message for d in system.dead_letters if d.reason is DeadLetterReason.MAILBOX_FULL
        ]
        assert sorted(dropped) == sorted(set(range(1, 7)) - set(kept))
        release.set()
        got = await probe.expect(4)
        assert got[1:] == kept

    async def main() -> None:
        async with ActorSystem("bounded") as system:
            await body(system)

    run(main())


def test_bounded_mailbox_fail_policy_raises_in_the_sender() -> None:
    async def main() -> None:
        async with ActorSystem("bounded") as system:
            probe = Probe()
            release = asyncio.Event()
            ref = system.spawn(BlockingRecorder, probe, mailbox=MailboxConfig(1, Overflow.FAIL))
            ref.tell(Block(release))
            await probe.expect(1)
            ref.tell(1)
            with pytest.raises(MailboxFull) as caught:
                ref.tell(2)
            assert caught.value.capacity == 1
            with pytest.raises(MailboxFull):
                await ref.ask(3)
            release.set()
            await probe.expect(2)  # 1 was taken out of the mailbox: room again
            assert await ref.ask(4) == 4
            assert [i for i in probe.items if isinstance(i, int)] == [1, 4]

    run(main())


class Broken(Actor[Any]):
    def __init__(self, fail: bool) -> None:
        if fail:
            raise RuntimeError("cannot build")


def test_names_spawn_errors_and_lookup(local_runtime: Runtime) -> None:
    async def body(system: ActorSystem) -> None:
        counter = system.spawn(Counter, name="unique")
        with pytest.raises(ActorNameTaken):
            system.spawn(Counter, name="unique")
        for bad in ("", "a/b", "$x", "a#b", "tab\t"):
            with pytest.raises(InvalidActorName):
                system.spawn(Counter, name=bad)
        with pytest.raises(SpawnFailed) as caught:
            system.spawn(Broken, True, name="broken")
        assert isinstance(caught.value.cause, RuntimeError)
        assert system.lookup("/user/unique") == counter
        assert system.lookup(counter.path) == counter
        assert system.lookup("/user/broken") is None
        assert str(counter.path) == "tejido://test/user/unique"
        await counter.stop()
        assert system.lookup("/user/unique") is None
        again = system.spawn(Counter, name="unique")  # the name is free again
        assert again != counter
        assert again.path.uid != counter.path.uid

    local_runtime.run(body)


def test_dead_letters_are_logged_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with ActorSystem("letters", dead_letter_capacity=3) as system:
            counter = system.spawn(Counter, name="c")
            await counter.stop()
            with caplog.at_level("DEBUG", logger="tejido.actors"):
                for amount in range(5):
                    counter.tell(Add(amount))
            assert system.dead_letter_count == 5
            assert [d.message for d in system.dead_letters] == [Add(2), Add(3), Add(4)]
        assert (
            sum("dead letter to tejido://letters/user/c" in r.message for r in caplog.records) == 5
        )

    run(main())
