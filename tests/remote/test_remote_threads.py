"""Proxies shared between threads and tasks: blocking proxies hammered from a thread pool,
one async proxy awaited from several threads' own event loops and from many tasks at once,
and the clear error for a blocking call made on the node's own loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
from remote_fixtures import Counter, CounterImpl, Overdrawn

import tejido.remote as remote
import tejido.remote.blocking as blocking
from tejido.core.errors import LocalProtocolError
from tejido.remote.proxy import submit

THREADS = 8
CALLS_PER_THREAD = 25


def test_blocking_proxy_from_a_thread_pool() -> None:
    with blocking.start() as server, blocking.start(registry=server.address) as client:
        counter = CounterImpl()
        server.bind("counter", counter, Counter)
        assert client.list() == ["counter"]
        proxy = client.lookup("counter", Counter)

        def hammer(_: int) -> list[int]:
            return [proxy.add(1) for _ in range(CALLS_PER_THREAD)]

        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            results = [total for totals in pool.map(hammer, range(THREADS)) for total in totals]

        expected = THREADS * CALLS_PER_THREAD
        assert counter.total == expected
        assert proxy.value() == expected
        assert len(results) == expected
        assert max(results) == expected
        assert all(1 <= total <= expected for total in results)
        # Typed form, and declared errors through the blocking proxy.
        assert proxy.call(lambda c: c.value()) == expected
        with pytest.raises(Overdrawn):
            proxy.withdraw(expected + 1)
        with pytest.raises(AttributeError, match="no blocking method 'count_to'"):
            proxy.count_to  # noqa: B018


def test_one_async_proxy_from_other_threads_loops_and_many_tasks() -> None:
    with blocking.start() as server, blocking.start(registry=server.address) as client:
        counter = CounterImpl()
        server.bind("counter", counter, Counter)
        shared = client.lookup("counter", Counter).proxy  # the async proxy

        async def many(count: int) -> list[int]:
            # Awaited on this thread's own loop: every call hops to the node's loop.
            return await asyncio.gather(*(shared.add(1) for _ in range(count)))

        def in_own_loop(_: int) -> list[int]:
            return asyncio.run(many(CALLS_PER_THREAD))

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = [total for totals in pool.map(in_own_loop, range(4)) for total in totals]
        assert len(results) == 4 * CALLS_PER_THREAD
        assert counter.total == 4 * CALLS_PER_THREAD

        # Many tasks on the node's own loop, sharing the proxy.
        on_node = submit(client.node.loop, many(100)).result(timeout=10)
        assert len(on_node) == 100
        assert counter.total == 4 * CALLS_PER_THREAD + 100


def test_a_blocking_call_on_the_nodes_own_loop_is_refused() -> None:
    with blocking.start() as server, blocking.start(registry=server.address) as client:
        server.bind("counter", CounterImpl(), Counter)
        proxy = client.lookup("counter", Counter)

        async def inside() -> int:
            return proxy.add(1)  # would wait for its own loop

        with pytest.raises(LocalProtocolError, match="own event loop thread"):
            submit(client.node.loop, inside()).result(timeout=10)
        assert proxy.add(1) == 1  # the node is fine afterwards


def test_node_calls_off_the_loop_are_refused() -> None:
    with blocking.start() as node:
        with pytest.raises(LocalProtocolError, match="must run on the node's event loop"):
            node.node.export(CounterImpl(), Counter)
        ref = node.export(CounterImpl(), Counter, pin=True)
        assert node.node.is_exported(ref)
        assert isinstance(ref, remote.RemoteRef)


def test_a_blocking_lookup_of_a_local_object() -> None:
    with blocking.start() as node:
        counter = CounterImpl()
        node.bind("counter", counter, Counter)
        local = node.lookup("counter", Counter)
        assert local.proxy is counter  # the reference came home: the object itself
        assert local.add(2) == 2
        with pytest.raises(LocalProtocolError, match="local object"):
            local.ref  # noqa: B018
