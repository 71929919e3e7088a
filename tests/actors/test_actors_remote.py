"""Remote actors beyond the shared behavioural bodies: spawn on a named node and its
errors, the cluster registry (`find`), what may cross the wire, at-least-once delivery
over dropped connections, TLS between nodes, and node loss (a killed process): watchers
get ``Terminated(NODE_LOST)``, pending asks fail with `NodeLost`, registry entries go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from actors_fixtures import (
    WAIT_S,
    Add,
    Counter,
    Get,
    Peer,
    Probe,
    Recorder,
    Stall,
    Watcher,
    join,
    node_name,
    register_tests,
    run,
)
from test_actors_messaging import Broken

from tejido.actors import (
    ActorFailed,
    ActorNameTaken,
    ActorRef,
    ActorSystem,
    InvalidActorName,
    SpawnFailed,
    Terminated,
    TerminationCause,
)
from tejido.actors.cluster import ClusterConfig, Delivery, MemberDown
from tejido.actors.errors import NodeLost, NotSerializable
from tejido.actors.remote import RemoteActorRef, TypeRegistry
from tejido.net.tls import TLSConfig


@asynccontextmanager
async def node(name: str, *seeds: str, **options: Any) -> AsyncIterator[ActorSystem]:
    options.setdefault("heartbeat_s", 0.05)
    config = ClusterConfig(node=name, seeds=tuple(seeds), **options)
    async with ActorSystem("test", cluster=config) as system:
        register_tests(system)
        yield system


@asynccontextmanager
async def pair(**options: Any) -> AsyncIterator[tuple[ActorSystem, ActorSystem]]:
    """Two nodes in this process, each seeing the other."""
    async with node("a", **options) as a, node("b", a.cluster.address, **options) as b:
        await join(a, "b")
        await join(b, "a")
        yield a, b


@dataclass(frozen=True)
class NotRegistered:
    value: int


def test_spawn_on_a_node_and_its_errors() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            counter = await a.spawn(Counter, 5, node="b", name="counter")
            assert isinstance(counter, RemoteActorRef)
            assert str(counter.path) == "tejido://test@b/user/counter"
            assert b.lookup("/user/counter") is not None  # it lives on b
            counter.tell(Add(2))
            assert await counter.ask(Get(), expect=int) == 7
            with pytest.raises(ActorNameTaken):
                await a.spawn(Counter, node="b", name="counter")
            with pytest.raises(SpawnFailed) as failed:
                await a.spawn(Broken, True, node="b")
            assert isinstance(failed.value.cause, RuntimeError)
            with pytest.raises(InvalidActorName):
                a.spawn(Counter, node="b", name="a/b")
            with pytest.raises(NotSerializable, match="not a registered behaviour"):
                a.spawn(_Unregistered, node="b")
            with pytest.raises(NotSerializable, match="not a registered message type"):
                a.spawn(Counter, NotRegistered(1), node="b")
            with pytest.raises(NodeLost):
                await a.spawn(Counter, node="nowhere")

    run(main())


class _Unregistered(Counter):
    pass


def test_find_looks_across_the_cluster_and_forgets_stopped_actors() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            local = b.spawn(Counter, 1, name="counter")
            found = await a.find("counter")
            assert found == local
            assert isinstance(found, RemoteActorRef)
            assert await found.ask(Get()) == 1
            assert await b.find("/user/counter") == local  # this node first
            assert await a.find("nobody") is None
            await found.stop()
            assert await a.find("counter") is None

    run(main())


def test_names_are_unique_per_node_and_find_prefers_this_node_then_the_lowest_name() -> None:
    async def main() -> None:
        async with (
            node("a") as a,
            node("c", a.cluster.address) as c,
            node("b", a.cluster.address) as b,
        ):
            for system, others in ((a, "bc"), (b, "ac"), (c, "ab")):
                await join(system, *others)
            on_c = c.spawn(Counter, 3, name="x")
            on_b = b.spawn(Counter, 2, name="x")  # allowed: names are per node
            with pytest.raises(ActorNameTaken):
                b.spawn(Counter, 9, name="x")
            assert await c.find("x") == on_c  # this node first
            assert await a.find("x") == on_b  # then the up members by node name
            await on_b.stop()
            assert await a.find("x") == on_c
            assert await b.find("x") == on_c

    run(main())


def test_only_registered_types_cross_the_wire_and_errors_keep_their_type() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            probe = Probe()
            recorder = b.spawn(Recorder, probe, name="rec")
            remote = await a.find("rec")
            assert remote is not None
            with pytest.raises(NotSerializable, match="NotRegistered"):
                remote.tell(NotRegistered(1))
            with pytest.raises(NotSerializable):
                remote.tell(asyncio.Event())
            # plain data, a registered type, and a reference (resolved to the local actor)
            assert await remote.ask({"k": [1, "x"]}) == {"k": [1, "x"]}
            assert await remote.ask(Add(3)) == Add(3)
            echoed = await remote.ask(remote)
            assert echoed == recorder
            assert probe.items[-1] is recorder  # b resolved its own actor to the local ref
            # an int beyond 64 bits cannot travel, as a message or as a reply
            with pytest.raises(NotSerializable, match="int"):
                await remote.ask(2**70)
            b.spawn(Counter, 2**70, name="big")
            big = await a.find("big")
            assert big is not None
            with pytest.raises(NotSerializable, match="int"):
                await big.ask(Get(), timeout=WAIT_S)
            assert await remote.ask(7) == 7  # and the link is fine
            # an actor failure arrives with its cause rebuilt as the builtin exception
            counter = await a.spawn(Counter, node="b")
            with pytest.raises(ActorFailed) as failed:
                await counter.ask(_boom())
            assert isinstance(failed.value.cause, ValueError)
            assert "bad input" in str(failed.value)

    run(main())


def _boom() -> Any:
    from actors_fixtures import Boom

    return Boom("bad input")


async def _drops(
    delivery: Delivery, count: int = 3000, chunk: int = 300
) -> tuple[list[Any], dict[str, int]]:
    """Tell `count` numbers from a to a recorder on b, aborting a's link to b (and b's
    side of it) right after each chunk was queued: the chunk's frames are discarded."""
    async with pair(delivery=delivery, retry_min_s=0.05) as (a, b):
        probe = Probe()
        b.spawn(Recorder, probe, name="rec")
        remote = await a.find("rec")
        assert remote is not None
        assert a.remoting is not None
        links = a.remoting.cluster._links
        for start in range(0, count, chunk):
            for value in range(start, start + chunk):
                remote.tell(value)
            link = links[b.cluster.address]
            if link.conn is not None:
                link.conn.abort()  # loses what was queued this loop iteration
            await asyncio.sleep(0)  # let the link notice and redial
        # a marker told after everything: under at-least-once it is delivered last
        remote.tell("end")
        if delivery is Delivery.AT_LEAST_ONCE:
            await probe.expect_item(lambda item: item == "end")
        else:
            await remote.ask("flush")  # asks are at most once too: this one is not lost
        return list(probe.items), dict(a.remoting.stats())


def test_at_least_once_delivers_everything_exactly_once_over_dropped_connections() -> None:
    async def main() -> None:
        items, stats = await _drops(Delivery.AT_LEAST_ONCE)
        assert items == [*range(3000), "end"]  # every message once, in order
        assert stats["resent"] > 0  # the drops really lost frames that were sent again

    run(main(), timeout_s=60)


def test_at_most_once_loses_what_a_dropped_connection_held() -> None:
    async def main() -> None:
        items, _ = await _drops(Delivery.AT_MOST_ONCE)
        numbers = [item for item in items if isinstance(item, int)]
        assert len(numbers) < 3000  # lost, not duplicated:
        assert numbers == sorted(set(numbers))  # what arrives is in order, once

    run(main(), timeout_s=60)


def test_nodes_talk_over_mutual_tls(tmp_path: Path) -> None:
    from tejido.net import certs

    certs.init_ca(tmp_path, "test")
    for name in ("a", "b"):
        certs.issue(tmp_path, name)

    async def main() -> None:
        tls = {name: TLSConfig.from_dir(tmp_path, name) for name in ("a", "b")}
        async with node("a", tls=tls["a"]) as a, node("b", a.cluster.address, tls=tls["b"]) as b:
            await join(a, "b")
            await join(b, "a")
            counter = await a.spawn(Counter, 4, node="b")
            assert await counter.ask(Add(1)) == 5
            # a node without a certificate of the cluster CA cannot join
            async with node("c", a.cluster.address) as c:
                events = c.cluster.subscribe()
                await events.next(WAIT_S)  # itself
                with pytest.raises(TimeoutError):
                    await events.next(0.5)
                assert [m.node for m in c.cluster.members()] == ["c"]

    run(main())


@pytest.mark.integration
def test_a_killed_node_is_lost_for_watchers_asks_and_the_registry() -> None:
    victim = Peer(node_name("victim"), timeout_s=2.0)

    async def main() -> None:
        config = ClusterConfig(
            node=node_name(), seeds=(victim.address,), heartbeat_s=0.1, failure_timeout_s=2.0
        )
        async with ActorSystem("test", cluster=config) as system:
            register_tests(system)
            await join(system, victim.name)
            events = system.cluster.subscribe()
            counter = await system.spawn(Counter, node=victim.name, name="counter")
            stall = await system.spawn(Stall, node=victim.name)
            probe = Probe()
            watcher = system.spawn(Watcher, probe)
            await watcher.ask(counter)  # watching once this returns
            assert await system.find("counter") == counter
            pending = asyncio.ensure_future(stall.ask("hello?", timeout=30))
            assert await counter.ask(Add(1)) == 1  # the node is alive and serving
            victim.kill()
            [terminated] = await probe.expect(1)
            assert terminated == Terminated(counter, TerminationCause.NODE_LOST)
            with pytest.raises(NodeLost):
                await pending
            async with asyncio.timeout(WAIT_S):
                async for event in events:
                    if isinstance(event, MemberDown) and event.member.node == victim.name:
                        assert event.reason == "lost"
                        break
            assert await system.find("counter") is None
            # a tell to the lost node is a dead letter here; watching it again answers at once
            counter.tell(Add(1))
            assert system.dead_letters[-1].recipient == counter.path
            await watcher.ask(counter)
            second = await probe.expect(2)
            assert second[1].cause is TerminationCause.NODE_LOST

    try:
        run(main())
    finally:
        victim.stop()


def test_refs_compare_equal_across_nodes() -> None:
    async def main() -> None:
        async with pair() as (a, b):
            local = b.spawn(Counter, name="x")
            remote: ActorRef[Any] | None = await a.find("x")
            assert remote is not None
            assert remote == local
            assert hash(remote) == hash(local)
            assert await remote is remote  # a found reference exists already

    run(main())


def test_garbage_and_unknown_types_from_a_peer_cost_nothing_else() -> None:
    import msgspec

    from tejido.actors.messages import DeadLetterReason
    from tejido.actors.wire import Join, Payload, Tell, encode_frame
    from tejido.net.connection import connect
    from tejido.net.handshake import Hello

    async def main() -> None:
        async with node("a") as a:
            probe = Probe()
            recorder = a.spawn(Recorder, probe, name="rec")
            path = recorder.path
            # a hand-made peer: the handshake, its Join, then frames of every kind of bad
            conn = await connect(a.cluster.address, Hello("test", "rogue", "actors"))
            conn.send(encode_frame(Join("rogue", "127.0.0.1:9", 1)))
            conn.send(b"\xc1 not msgpack")
            unknown = Payload("no.such.Type", msgspec.Raw(msgspec.msgpack.encode([1])))
            conn.send(encode_frame(Tell(path.elements, path.uid, unknown)))
            wrong = Payload(
                TypeRegistry.default_name(Add), msgspec.Raw(msgspec.msgpack.encode("x"))
            )
            conn.send(encode_frame(Tell(path.elements, path.uid, wrong)))
            good = Payload("", msgspec.Raw(msgspec.msgpack.encode("still here")))
            conn.send(encode_frame(Tell(path.elements, path.uid, good)))
            assert await probe.expect(1) == ["still here"]
            assert a.remoting is not None
            assert a.remoting.stats()["bad_frames"] == 1
            reasons = [d.reason for d in a.dead_letters]
            assert reasons.count(DeadLetterReason.UNDECODABLE) == 2
            conn.close()

    run(main())


def test_a_reference_to_a_stopped_actor_of_this_node_behaves_as_stopped() -> None:
    from tejido.actors import ActorStopped, DeadLetterReason
    from tejido.actors.wire import RefData

    async def main() -> None:
        async with node("a") as a:
            assert a.remoting is not None
            counter = a.spawn(Counter, name="gone")
            data = a.remoting.ref_data(counter)
            assert a.remoting.resolve(data) is counter  # alive: the local reference
            await counter.stop()
            ghost = a.remoting.resolve(RefData(data.node, data.system, data.elements, data.uid))
            assert ghost == counter
            ghost.tell(Add(1))
            assert a.dead_letters[-1].reason is DeadLetterReason.STOPPED
            with pytest.raises(ActorStopped):
                await ghost.ask(Get())
            probe = Probe()
            watcher = a.spawn(Watcher, probe)
            await watcher.ask(ghost)
            [terminated] = await probe.expect(1)
            assert terminated.cause is TerminationCause.STOPPED
            await ghost.stop()  # already stopped: returns

    run(main())


def test_the_blocking_facade_is_a_cluster_node_too() -> None:
    from tejido.actors import BlockingActorSystem

    with BlockingActorSystem("test", node="a") as a:
        a.call(register_tests)
        address = a.call(lambda system: system.cluster.address)
        with BlockingActorSystem("test", node="b", seeds=[address]) as b:
            b.call(register_tests)
            a.run(join(a.system, "b"))
            b.run(join(b.system, "a"))
            counter = a.spawn(Counter, 2, name="counter", node="b")
            assert isinstance(counter.ref, RemoteActorRef)
            counter.tell(Add(3))
            assert counter.ask(Get(), timeout=WAIT_S, expect=int) == 5
            found = a.run(a.system.find("counter"))
            assert found == counter.ref
