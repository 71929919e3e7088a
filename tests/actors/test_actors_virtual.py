"""Virtual actors on one actor system (tejido.actors.virtual): activation on the first
message, state loaded and saved before the reply, idle deactivation and transparent
reactivation, failures that leave memory at the saved state, and the etag keeping two
activations from losing each other's updates."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import msgspec
import pytest
from actors_fixtures import run, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from virtual_fixtures import (
    Add,
    Boom,
    Counter,
    Get,
    LazyCounter,
    QuickCounter,
    Reset,
    Retire,
    Save,
    Tally,
    one_member_store,
)

from tejido.actors import ActorSystem
from tejido.actors.errors import ActorFailed, ActorStopped, WrongThread
from tejido.actors.persistence import (
    FileProvider,
    GrainId,
    MemoryProvider,
    PersistenceError,
    StateConflict,
    StoredState,
    StoreProvider,
)
from tejido.actors.virtual import Grain, VirtualActors
from tejido.core.errors import LocalProtocolError


def tally(stored: StoredState) -> Tally:
    assert stored.data is not None
    return msgspec.msgpack.decode(stored.data, type=Tally)


def test_activated_by_the_first_message_and_saved_before_the_reply() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        async with ActorSystem("t") as system, VirtualActors(system, provider) as grains:
            ana = grains.get(Counter, "ana")
            assert grains.active == frozenset()  # a reference activates nothing
            assert ana.identity == GrainId("Counter", "ana")
            assert str(ana.path).endswith("/grains/Counter/ana")
            assert await ana.ask(Add(2), expect=int) == 2
            assert grains.active == {GrainId("Counter", "ana")}
            assert tally(await provider.load(ana.identity)) == Tally(2, 1)
            saves = provider.saves
            assert await ana.ask(Get()) == 2
            assert provider.saves == saves  # nothing changed: nothing saved
            assert grains.get(Counter, "ana") == ana  # same grain, equal references
            assert grains.get(Counter, "ben") != ana
            assert system.grain(Counter, "ana") == ana  # the system's runtime
            assert await system.grain(Counter, "ana").ask(Add(1)) == 3
        with pytest.raises(RuntimeError, match="runs no virtual actors"):
            system.grain(Counter, "ana")

    run(main())


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_idle_grains_deactivate_and_come_back_with_their_state(kind: str, tmp_path: Path) -> None:
    async def main() -> None:
        provider = MemoryProvider() if kind == "memory" else FileProvider(tmp_path, fsync=False)
        async with ActorSystem("t") as system, VirtualActors(system, provider) as grains:
            refs = [grains.get(QuickCounter, f"p{i}") for i in range(20)]
            for i, ref in enumerate(refs):
                assert await ref.ask(Add(i)) == i
            await wait_until(lambda: not grains.active)
            assert grains.deactivations_total == 20
            for i, ref in enumerate(refs):
                assert await ref.ask(Add(1)) == i + 1  # reactivated with the saved state
            assert grains.activations_total == 40

    run(main())


def test_a_failure_reverts_to_the_saved_state() -> None:
    async def main() -> None:
        async with (
            ActorSystem("t") as system,
            VirtualActors(system, MemoryProvider()) as grains,
        ):
            ana = grains.get(Counter, "ana")
            await ana.ask(Add(5))
            with pytest.raises(ActorFailed) as failed:
                await ana.ask(Boom())
            assert isinstance(failed.value.cause, RuntimeError)
            assert "grain Counter/ana" in str(failed.value)
            assert await ana.ask(Get()) == 5  # the half-done +1000 is gone
            ana.tell(Boom())  # a told failure is logged, the grain keeps serving
            assert await ana.ask(Add(1)) == 6

    run(main())


def test_two_activations_cannot_lose_each_others_updates() -> None:
    """Two runtimes on one store stand for two nodes that disagree on the membership."""

    async def main() -> None:
        provider = MemoryProvider()
        async with (
            ActorSystem("a") as sa,
            ActorSystem("b") as sb,
            VirtualActors(sa, provider) as a,
            VirtualActors(sb, provider) as b,
        ):
            on_a, on_b = a.get(Counter, "x"), b.get(Counter, "x")
            assert await on_a.ask(Get()) == 0
            assert await on_b.ask(Get()) == 0  # both active, both loaded etag 0
            assert await on_a.ask(Add(1)) == 1
            with pytest.raises(ActorFailed) as failed:
                await on_b.ask(Add(10))  # b's save carries the old etag
            assert isinstance(failed.value.cause, StateConflict)
            assert await on_b.ask(Get()) == 1  # b reloaded a's state
            assert await on_b.ask(Add(10)) == 11
            with pytest.raises(ActorFailed):
                await on_a.ask(Add(100))
            assert tally(await provider.load(GrainId("Counter", "x"))) == Tally(11, 2)

    run(main())


def test_many_grains_keep_per_sender_order_and_every_acknowledged_change() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        async with ActorSystem("t") as system, VirtualActors(system, provider) as grains:
            refs = [grains.get(Counter, f"u{i}") for i in range(500)]
            for ref in refs:
                for n in (1, 2, 3):
                    ref.tell(Add(n))
            totals = await asyncio.gather(*(ref.ask(Get()) for ref in refs))
            assert totals == [6] * 500
            assert len(grains.active) == 500
        # leaving the block deactivated everything; the provider has each state
        for ref in refs:
            assert tally(await provider.load(ref.identity)) == Tally(6, 3)

    run(main())


def test_explicit_saving_and_saving_at_deactivation() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        gid = GrainId("LazyCounter", "l")
        async with ActorSystem("t") as system:
            async with VirtualActors(system, provider) as grains:
                lazy = grains.get(LazyCounter, "l")
                await lazy.ask(Add(3))
                assert (await provider.load(gid)).data is None  # not saved yet
                await lazy.ask(Save())
                assert tally(await provider.load(gid)).total == 3
                await lazy.ask(Add(4))
                assert tally(await provider.load(gid)).total == 3
            assert tally(await provider.load(gid)).total == 7  # saved when stopping
            async with VirtualActors(system, provider) as grains:
                lazy = grains.get(LazyCounter, "l")
                assert await lazy.ask(Get()) == 7
                assert await lazy.ask(Reset()) == 0
                assert (await provider.load(gid)).data is None
                await grains.stop()
                with pytest.raises(ActorStopped):
                    grains.get(LazyCounter, "l").tell(Add(1))

    run(main())


def test_deactivation_waits_for_queued_messages() -> None:
    async def main() -> None:
        provider = MemoryProvider()
        async with ActorSystem("t") as system, VirtualActors(system, provider) as grains:
            ana = grains.get(Counter, "ana")
            for _ in range(200):
                ana.tell(Add(1))
            assert await ana.ask(Retire()) == "ana"
            await wait_until(lambda: not grains.active)
            assert tally(await provider.load(ana.identity)).total == 200
            for _ in range(50):
                ana.tell(Add(1))
            stop = asyncio.ensure_future(ana.stop())
            for _ in range(50):
                ana.tell(Add(1))  # arrive while the deactivation is under way
            await stop
            assert await ana.ask(Get()) == 300

    run(main())


class FlakyProvider(MemoryProvider):
    def __init__(self) -> None:
        super().__init__()
        self.fail_loads = 1

    async def load(self, grain: GrainId) -> StoredState:
        if self.fail_loads:
            self.fail_loads -= 1
            raise PersistenceError(grain, "load", OSError("disk unplugged"))
        return await super().load(grain)


def test_a_failed_activation_fails_its_messages_and_the_next_one_retries() -> None:
    async def main() -> None:
        async with (
            ActorSystem("t") as system,
            VirtualActors(system, FlakyProvider()) as grains,
        ):
            ana = grains.get(Counter, "ana")
            with pytest.raises(ActorFailed) as failed:
                await ana.ask(Add(1))
            assert isinstance(failed.value.cause, PersistenceError)
            assert "disk unplugged" in str(failed.value)
            await wait_until(lambda: not grains.active)
            assert await ana.ask(Add(1)) == 1

    run(main())


def test_bad_use_is_refused_clearly() -> None:
    class NoState(Grain[int, int]):
        pass

    async def main() -> None:
        async with (
            ActorSystem("t") as system,
            VirtualActors(system, MemoryProvider()) as grains,
        ):
            with pytest.raises(TypeError, match="state_type"):
                grains.get(NoState, "k")
            with pytest.raises(TypeError, match="grain key is a str"):
                grains.get(Counter, 42)  # type: ignore[arg-type]

            ana = grains.get(Counter, "ana")

            class Impostor(Counter):
                grain_type = "Counter"

            with pytest.raises(ValueError, match="taken"):
                grains.get(Impostor, "k")
            with pytest.raises(LocalProtocolError, match="cannot be watched"):
                ana._watch(ana)

            # a tell from another thread is handed to the loop
            thread = threading.Thread(target=ana.tell, args=(Add(7),))
            thread.start()
            thread.join()
            await wait_until(lambda: bool(grains.active))
            assert await ana.ask(Get()) == 7
            # an ask from another thread (another loop) is refused, naming the grain
            refused: list[BaseException] = []

            def ask_from_elsewhere() -> None:
                try:
                    asyncio.run(ana.ask(Get()))
                except WrongThread as exc:
                    refused.append(exc)

            thread = threading.Thread(target=ask_from_elsewhere)
            thread.start()
            thread.join()
            assert len(refused) == 1
            assert "Counter/ana" in str(refused[0])

    run(main())


def test_grains_persist_in_the_replicated_store(tmp_path: Path) -> None:
    async def main() -> None:
        async with one_member_store(tmp_path) as client, ActorSystem("t") as system:
            provider = StoreProvider(client)
            async with VirtualActors(system, provider) as grains:
                assert await grains.get(Counter, "ana").ask(Add(5)) == 5
            stored = await client.get("/tejido/grains/Counter/ana")
            assert stored is not None
            assert msgspec.msgpack.decode(stored.value, type=Tally) == Tally(5, 1)
            # a later runtime (another node's, say) finds the state in the store
            async with VirtualActors(system, provider) as grains:
                assert await grains.get(Counter, "ana").ask(Add(1)) == 6

    run(main(), timeout_s=60)


operations = st.lists(
    st.tuples(
        st.sampled_from(["ask", "tell", "boom", "stop", "restart"]),
        st.sampled_from(["k0", "k1", "k2"]),
        st.integers(1, 9),
    ),
    max_size=40,
)


@settings(max_examples=25, deadline=None)
@given(operations)
def test_random_operations_match_a_model(ops: list[tuple[str, str, int]]) -> None:
    """Asks, tells, failures, deactivations and whole-runtime restarts in any order: each
    grain's total is the sum of the adds sent to it, in memory and in the store."""

    async def main() -> None:
        provider = MemoryProvider()
        model = {"k0": 0, "k1": 0, "k2": 0}
        async with ActorSystem("t") as system:
            grains = VirtualActors(system, provider)
            await grains.start()
            for op, key, n in ops:
                ref = grains.get(Counter, key)
                if op == "ask":
                    model[key] += n
                    assert await ref.ask(Add(n)) == model[key]
                elif op == "tell":
                    model[key] += n
                    ref.tell(Add(n))
                elif op == "boom":
                    with pytest.raises(ActorFailed):
                        await ref.ask(Boom())
                elif op == "stop":
                    assert await ref.stop() is None
                else:
                    await grains.stop()
                    grains = VirtualActors(system, provider)
                    await grains.start()
            for key, total in model.items():
                assert await grains.get(Counter, key).ask(Get()) == total
            await grains.stop()
        for key, total in model.items():
            stored = await provider.load(GrainId("Counter", key))
            assert (tally(stored).total if stored.data else 0) == total

    run(main())
