"""Remote objects on two in-process nodes: export, registry, typed proxies, values and
references, callbacks, and the errors a caller gets for bad names, bad arguments and
interfaces that cannot pass a reference."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from remote_fixtures import (
    Counter,
    CounterImpl,
    Events,
    Listener,
    Overdrawn,
    Point,
    Publisher,
    PublisherImpl,
    RecordingListener,
    Shape,
    run,
)

import tejido.remote as remote
import tejido.rpc as rpc
from tejido.core.errors import LocalProtocolError
from tejido.remote.interfaces import interface_of
from tejido.rpc import BadArguments


async def two_nodes(lease_s: float = 5.0) -> tuple[remote.RemoteNode, remote.RemoteNode]:
    server = await remote.start(lease_s=lease_s)
    client = await remote.start(lease_s=lease_s, registry=server.address)
    return server, client


def test_export_lookup_call_by_value() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            counter = CounterImpl()
            ref = await server.bind("counter", counter, Counter)
            assert ref.address == server.address
            assert ref.interface == "Counter"
            assert len(ref.object_id) >= 24  # unguessable

            proxy = await client.lookup("counter", Counter)
            assert isinstance(proxy, Counter)
            assert remote.ref_of(proxy) == ref
            assert await proxy.add(2) == 2
            assert await proxy.add(3) == 5
            assert counter.total == 5
            # Dataclasses and Structs travel by value, in and out.
            shape = Shape("square", [Point(0, 0), Point(2, 0), Point(2, 2), Point(0, 2)])
            assert await proxy.centroid(shape) == Point(1.0, 1.0)
            # Declared errors arrive as their own class.
            with pytest.raises(Overdrawn, match="only 5 left"):
                await proxy.withdraw(9)
            # Streaming methods are plain RPC streams.
            assert [n async for n in proxy.count_to(4)] == [1, 2, 3, 4]
            # The same reference gives the same proxy while it lives.
            assert await client.lookup("counter", Counter) is proxy

    run(body())


def test_registry_list_rebind_unbind_and_errors() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            first, second = CounterImpl(), CounterImpl()
            await server.bind("b", first, Counter)
            await client.bind("a", RecordingListener(), Listener)  # client's own object
            assert await client.list() == ["a", "b"]
            assert await server.list() == ["a", "b"]

            with pytest.raises(remote.AlreadyBound, match="'b' is already bound"):
                await server.bind("b", second, Counter)
            await server.rebind("b", second, Counter)
            proxy = await client.lookup("b", Counter)
            await proxy.add(7)
            assert (first.total, second.total) == (0, 7)

            await client.unbind("b")
            assert await client.list() == ["a"]
            with pytest.raises(remote.NotBound, match=r"no object is bound to 'b' \(bound: 'a'\)"):
                await client.lookup("b", Counter)
            with pytest.raises(remote.NotBound, match="'nothing'"):
                await client.unbind("nothing")
            with pytest.raises(BadArguments, match="'a' is bound to a Listener, not a Counter"):
                await client.lookup("a", Counter)
            with pytest.raises(BadArguments, match="1 to 200 characters"):
                await client.bind("", first, Counter)
            with pytest.raises(BadArguments, match="control characters"):
                await client.bind("tab\there", remote.ref_of(proxy))
            with pytest.raises(LocalProtocolError, match="needs the interface"):
                await client.bind("x", first)

    run(body())


def test_callbacks_during_a_call_and_later() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            publisher = PublisherImpl()
            await server.bind("pub", publisher, Publisher)
            proxy = await client.lookup("pub", Publisher)

            mine, other = RecordingListener(), RecordingListener()
            # The server calls `mine` back before subscribe returns.
            assert await proxy.subscribe("news", mine) == 1
            assert mine.seen == [("news", 0)]
            assert await proxy.subscribe("news", other) == 2

            # The server holds proxies of the client's listeners and calls them later.
            held = publisher.topics["news"]
            assert all(isinstance(listener, remote.RemoteNode) is False for listener in held)
            assert [type(listener).__name__ for listener in held] == ["ListenerProxy"] * 2
            assert await proxy.publish("news", 42) == 2
            assert await mine.wait_for(2) == [("news", 0), ("news", 42)]
            assert await other.wait_for(2) == [("news", 0), ("news", 42)]

            # A reference that comes back to its own node is the object itself.
            assert await proxy.listeners("news") == [mine, other]
            assert await proxy.first("news") is mine
            assert await proxy.first("sport") is None

            # Passing the same object again gives an equal reference: unsubscribe finds it.
            assert await proxy.unsubscribe("news", mine) is True
            assert await proxy.unsubscribe("news", mine) is False
            assert await proxy.publish("news", 43) == 1
            assert (await other.wait_for(3))[-1] == ("news", 43)
            assert mine.seen == [("news", 0), ("news", 42)]

    run(body())


def test_remote_results_are_proxies_of_fresh_objects() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            await server.bind("pub", PublisherImpl(), Publisher)
            proxy = await client.lookup("pub", Publisher)
            one = await proxy.make_counter()
            two = await proxy.make_counter()
            assert isinstance(one, Counter)
            assert one != two
            assert await one.add(1) == 1
            assert await two.add(10) == 10
            assert await one.value() == 1
            assert server.lease_holders(remote.ref_of(one)) == [client.holder]

    run(body())


def test_passing_something_that_is_not_the_interface() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            await server.bind("pub", PublisherImpl(), Publisher)
            await server.bind("counter", CounterImpl(), Counter)
            proxy = await client.lookup("pub", Publisher)
            counter = await client.lookup("counter", Counter)
            with pytest.raises(BadArguments, match=r"parameter 'listener'.*str does not implement"):
                await proxy.subscribe("t", "not a listener")  # type: ignore[arg-type]
            with pytest.raises(BadArguments, match="a reference to a Counter, not a Listener"):
                await proxy.subscribe("t", counter)  # type: ignore[arg-type]
            with pytest.raises(BadArguments, match="subscribe"):
                await proxy.subscribe("t")  # type: ignore[call-arg]
            with pytest.raises(BadArguments, match=r"does not implement Counter.add"):
                server.export(object(), Counter)
            # The server kept serving.
            assert await counter.add(1) == 1

    run(body())


def test_proxy_of_a_released_object_and_calls_after_unexport() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            counter = CounterImpl()
            ref = server.export(counter, Counter)
            proxy = await client.proxy(ref, Counter)
            assert await proxy.add(1) == 1
            assert server.unexport(ref) is True
            with pytest.raises(remote.NoSuchObject, match=ref.object_id):
                await proxy.add(1)
            remote.release(proxy)
            with pytest.raises(remote.NoSuchObject, match="no longer exists"):
                await client.proxy(ref, Counter)
            with pytest.raises(remote.NoSuchObject, match="no longer exists on this node"):
                await server.proxy(ref, Counter)

    run(body())


@dataclasses.dataclass
class Holder:
    listener: Listener


def test_interfaces_that_cannot_pass_references_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match=r"InField.take parameter 'holder'.*inside it"):

        @remote.remote
        class InField:
            async def take(self, holder: Holder) -> None:
                raise NotImplementedError

    with pytest.raises(LocalProtocolError, match=r"InUnion.take.*'value'.*Listener \| int"):

        @remote.remote
        class InUnion:
            async def take(self, value: list[Listener | int]) -> None:
                raise NotImplementedError

    with pytest.raises(LocalProtocolError, match=r"Keys.take.*keys cannot be remote"):

        @remote.remote
        class Keys:
            async def take(self, value: dict[Listener, int]) -> None:
                raise NotImplementedError

    with pytest.raises(LocalProtocolError, match=r"Streams.watch: a streaming method cannot"):

        @remote.remote
        class Streams:
            def watch(self, listener: Listener) -> AsyncIterator[int]:
                raise NotImplementedError

    with pytest.raises(LocalProtocolError, match="is not a remote interface"):
        interface_of(CounterImpl)


def test_nested_references_in_containers() -> None:
    @remote.remote
    class Hub:
        async def fan(self, many: list[Listener], named: dict[str, Listener | None]) -> int:
            raise NotImplementedError

        async def pair(self) -> tuple[Listener, int]:
            raise NotImplementedError

    class HubImpl(Hub):
        def __init__(self) -> None:
            self.kept: list[Listener] = []

        async def fan(self, many: list[Listener], named: dict[str, Listener | None]) -> int:
            self.kept = [*many, *(value for value in named.values() if value is not None)]
            for listener in self.kept:
                await listener.notify("fan", len(self.kept))
            return len(self.kept)

        async def pair(self) -> tuple[Listener, int]:
            return self.kept[0], 7

    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            hub = await client.proxy(server.export(HubImpl(), Hub), Hub)
            one, two = RecordingListener(), RecordingListener()
            assert await hub.fan([one], {"b": two, "c": None}) == 2
            assert one.seen == [("fan", 2)]
            assert two.seen == [("fan", 2)]
            assert await hub.pair() == (one, 7)

    run(body())


@remote.remote
class Chain:
    """Mentions itself and an interface declared after it: read at first use."""

    async def next(self) -> Chain | None:
        raise NotImplementedError

    async def greet(self, other: Greeter) -> str:
        raise NotImplementedError


@remote.remote
class Greeter:
    async def name(self) -> str:
        raise NotImplementedError


class ChainImpl(Chain):
    def __init__(self, after: Chain | None = None) -> None:
        self.after = after

    async def next(self) -> Chain | None:
        return self.after

    async def greet(self, other: Greeter) -> str:
        return f"hello {await other.name()}"


class GreeterImpl(Greeter):
    async def name(self) -> str:
        return "greeter"


def test_interfaces_that_mention_themselves_or_later_ones() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            head = await client.proxy(server.export(ChainImpl(ChainImpl()), Chain), Chain)
            second = await head.next()
            assert isinstance(second, Chain)
            assert await second.next() is None
            assert await head.greet(GreeterImpl()) == "hello greeter"

    run(body())


def test_concurrent_requests_for_a_new_reference_share_one_proxy_and_lease() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            events = Events(server)
            ref = server.export(CounterImpl(), Counter)
            proxies = await asyncio.gather(*(client.proxy(ref, Counter) for _ in range(10)))
            assert all(proxy is proxies[0] for proxy in proxies)
            assert events.count("leased", ref.object_id) == 1
            remote.release(proxies[0])
            await events.wait("cleaned", ref.object_id)
            assert server.lease_holders(ref) == []

    run(body())


def test_bad_references_from_a_raw_client_get_clear_errors() -> None:
    async def body() -> None:
        server, client = await two_nodes()
        async with server, client:
            pub_ref = server.export(PublisherImpl(), Publisher, pin=True)
            counter_ref = server.export(CounterImpl(), Counter, pin=True)
            # A plain RPC client speaking the wire interface, bypassing the proxy's checks.
            raw = rpc.Client(server.address)
            stub = raw.stub(interface_of(Publisher).wire, object_id=pub_ref.object_id)
            try:
                with pytest.raises(BadArguments, match="reference to a Counter, not a Listener"):
                    await stub.subscribe("t", counter_ref)
                ghost = remote.RemoteRef(server.address, "no-such-id", "Listener")
                # (NoSuchObject travels as the RPC code "unknown": a raw client gets that.)
                with pytest.raises(rpc.UnknownMethod, match="'no-such-id' no longer exists"):
                    await stub.subscribe("t", ghost)
                with pytest.raises(BadArguments, match="parameter 'listener'"):
                    await stub.subscribe("t", "not a reference")
                # The server kept serving everyone.
                counter = await client.proxy(counter_ref, Counter)
                assert await counter.add(1) == 1
            finally:
                await raw.close()

    run(body())
