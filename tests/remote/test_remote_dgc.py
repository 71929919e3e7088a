"""Distributed GC with leases: objects live while some node holds a lease (or while they
are pinned or bound), and are released once every lease has expired or been given back.

Every test waits for the export events the node reports (`Events`), never for a fixed
time; leases are short (a fraction of a second) so that expiry happens quickly."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from remote_fixtures import Counter, CounterImpl, Events, Publisher, PublisherImpl, run

import tejido.remote as remote
import tejido.rpc as rpc

LEASE_S = 0.5
#: For the tests that count renewals: long enough that a loaded machine does not miss two
#: renewals in a row (they come every third of a lease): a stall of the test process up to
#: two thirds of it costs nothing.
LONG_LEASE_S = 1.0
#: For the test whose client is another process, which the machine stalls on its own.
PROCESS_LEASE_S = 2.0
#: For tests where a lease must not expire: a loaded machine can stall the test process for
#: more than a short lease (a full `gc.collect()` of a big test worker, time slices lost to
#: other processes), and a lease that expires meanwhile is expiry, not what the test is about.
STEADY_LEASE_S = 30.0
HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def test_an_export_nobody_takes_is_released_after_its_transit_lease() -> None:
    async def body() -> None:
        async with await remote.start(lease_s=LEASE_S) as node:
            events = Events(node)
            ref = node.export(CounterImpl(), Counter)
            assert node.is_exported(ref)
            await node.wait_released(ref)
            assert not node.is_exported(ref)
            kinds = [e.kind for e in events.events if e.object_id == ref.object_id]
            assert kinds == ["exported", "released"]

    run(body())


def test_a_live_client_keeps_the_object_over_several_lease_periods() -> None:
    async def body() -> None:
        server = await remote.start(lease_s=LONG_LEASE_S)
        client = await remote.start(lease_s=LONG_LEASE_S, registry=server.address)
        async with server, client:
            events = Events(server)
            await server.bind("publisher", PublisherImpl(), Publisher)
            publisher = await client.lookup("publisher", Publisher)
            counter = await publisher.make_counter()
            ref = remote.ref_of(counter)
            # Renewals come every lease/3: nine of them span three lease periods.
            await events.wait("renewed", ref.object_id, count=9)
            assert server.is_exported(ref)
            assert events.count("expired", ref.object_id) == 0
            assert server.lease_holders(ref) == [client.holder]
            assert await counter.add(5) == 5

            # Giving the proxy up cleans the lease; the object goes once its transit ends.
            remote.release(counter)
            await events.wait("cleaned", ref.object_id)
            await server.wait_released(ref)
            assert events.count("expired", ref.object_id) == 0  # cleaned, not expired

    run(body())


def test_a_garbage_collected_proxy_gives_its_lease_back() -> None:
    async def body() -> None:
        server = await remote.start(lease_s=STEADY_LEASE_S)
        client = await remote.start(lease_s=STEADY_LEASE_S, registry=server.address)
        async with server, client:
            events = Events(server)
            await server.bind("publisher", PublisherImpl(), Publisher)
            publisher = await client.lookup("publisher", Publisher)
            counter = await publisher.make_counter()
            ref = remote.ref_of(counter)
            assert server.lease_holders(ref) == [client.holder]
            del counter
            gc.collect()
            await events.wait("cleaned", ref.object_id)
            assert server.lease_holders(ref) == []
            assert client.leases.held(server.address) == [remote.ref_of(publisher).object_id]
            # Only its transit lease keeps it now (release after that: the tests above).
            assert server.is_exported(ref)
            assert events.count("expired", ref.object_id) == 0

    run(body())


def test_one_lost_renewal_does_not_lose_the_lease() -> None:
    """A renewal that gets no answer is followed at once by one that still arrives in time."""

    async def body() -> None:
        lease_s = 3.0  # a renewal period of 1 s: the retry has that long to arrive
        server = await remote.start(lease_s=lease_s)
        client = await remote.start(lease_s=lease_s, registry=server.address)
        async with server, client:
            events = Events(server)
            ref = server.export(CounterImpl(), Counter)
            counter = await client.proxy(ref, Counter)
            assert server.lease_holders(ref) == [client.holder]
            dirty = client.leases._dirty
            lost: list[list[str]] = []

            async def lose_the_first(
                holdings: object, object_ids: list[str], timeout_s: float
            ) -> object:
                if not lost:  # the request is lost: the call waits out its deadline
                    lost.append(object_ids)
                    await asyncio.sleep(timeout_s)
                    raise rpc.DeadlineExceeded("renewal lost")
                return await dirty(holdings, object_ids, timeout_s)  # type: ignore[arg-type]

            client.leases._dirty = lose_the_first  # type: ignore[method-assign]
            event = await events.wait_any(("renewed", "expired"), ref.object_id)
            assert lost == [[ref.object_id]]
            assert event.kind == "renewed", [e.kind for e in events.events]
            assert server.lease_holders(ref) == [client.holder]
            remote.release(counter)

    run(body())


def test_pinned_and_bound_objects_outlive_their_leases() -> None:
    async def body() -> None:
        server = await remote.start(lease_s=LEASE_S)
        client = await remote.start(lease_s=LEASE_S, registry=server.address)
        async with server, client:
            events = Events(server)
            pinned = server.export(CounterImpl(), Counter, pin=True)
            bound = await server.bind("counter", CounterImpl(), Counter)
            for ref in (pinned, bound):
                proxy = await client.proxy(ref, Counter)
                remote.release(proxy)
                await events.wait("cleaned", ref.object_id)
                # The last lease is gone, and the object is still served.
                assert server.is_exported(ref)
            # A further object exported later goes through its whole transit lease while
            # the pinned and bound ones stay.
            passing = server.export(CounterImpl(), Counter)
            await server.wait_released(passing)
            assert server.is_exported(pinned)
            assert server.is_exported(bound)
            # Unbinding lets the bound one go.
            await client.unbind("counter")
            await server.wait_released(bound)
            assert server.is_exported(pinned)

    run(body())


def test_a_registry_on_another_node_holds_a_lease_on_what_it_binds() -> None:
    async def body() -> None:
        registry = await remote.start(lease_s=LONG_LEASE_S)
        owner = await remote.start(lease_s=LONG_LEASE_S, registry=registry.address)
        async with registry, owner:
            events = Events(owner)
            ref = await owner.bind("counter", CounterImpl(), Counter)
            assert owner.lease_holders(ref) == [registry.holder]
            await events.wait("renewed", ref.object_id, count=6)  # two lease periods
            assert owner.is_exported(ref)
            await owner.unbind("counter")
            await events.wait("cleaned", ref.object_id)
            await owner.wait_released(ref)

    run(body())


@pytest.mark.integration
def test_killing_a_client_process_releases_its_objects_after_the_lease() -> None:
    async def body() -> None:
        async with await remote.start(lease_s=PROCESS_LEASE_S) as server:
            events = Events(server)
            await server.bind("publisher", PublisherImpl(), Publisher)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC)])}
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "remote_dgc_client.py"),
                server.address,
                str(PROCESS_LEASE_S),
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            try:
                assert process.stdout is not None
                line = await process.stdout.readline()
                assert line, "the client process exited before holding the object"
                hello = json.loads(line)
                object_id, holder = hello["object_id"], hello["holder"]
                ref = remote.RemoteRef(server.address, object_id, "Counter")
                # The client holds a lease and renews it.
                await events.wait("renewed", object_id, count=3)
                assert server.lease_holders(ref) == [holder]
                assert server.is_exported(ref)

                process.send_signal(signal.SIGKILL)
                assert await process.wait() == -signal.SIGKILL
                await server.wait_released(ref)
                # Released because the dead client's lease expired, not because it cleaned.
                mine = [e for e in events.events if e.object_id == object_id]
                assert [e.kind for e in mine][-2:] == ["expired", "released"]
                assert mine[-2].holder == holder
                assert events.count("cleaned", object_id) == 0
                # The publisher (bound, so held by the registry) is still there.
                assert await server.list() == ["publisher"]
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()

    run(body(), timeout_s=30.0)
