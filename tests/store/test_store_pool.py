"""Clients of one event loop share their connections to a member (`tejido.store.pool`,
`tejido.store.client` rule 7)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from store_fixtures import Cluster, kv_client, run_cluster

from tejido import rpc
from tejido.store import pool
from tejido.store.errors import NotApplied


def _closed(stub: object) -> bool:
    return bool(rpc.client_of(stub)._closed)


def test_clients_share_one_connection_until_the_last_closes(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        address = cluster.endpoints[leader.config.member_id - 1]
        # Different endpoint orders, as a load spread over the members gives them: both
        # move to the leader, and there they share one connection.
        first = kv_client(cluster.endpoints)
        second = kv_client(list(reversed(cluster.endpoints)))
        await asyncio.gather(first.put("a", "1"), second.put("b", "2"))
        assert first._stubs[address] is second._stubs[address]
        shared = first._stubs[address]
        await first.close()
        assert not _closed(shared)
        assert (await second.get("a")).value == b"1"  # still served by the connection
        await second.close()
        assert _closed(shared)
        assert pool.pooled_count() == 0

    run_cluster(tmp_path, body)


def test_concurrent_first_calls_make_one_connection(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        clients = [kv_client([cluster.endpoints[0]]) for _ in range(5)]
        stubs = await asyncio.gather(*(c._stub(cluster.endpoints[0]) for c in clients))
        assert len({id(s) for s in stubs}) == 1
        assert pool.pooled_count() == 1
        for client in clients:
            await client.close()
        assert _closed(stubs[0])

    run_cluster(tmp_path, body)


def test_other_settings_or_opting_out_get_their_own_connection(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        address = cluster.endpoints[0]
        base = kv_client([address], timeout_s=20.0)
        other_timeout = kv_client([address], timeout_s=21.0)
        own = kv_client([address], timeout_s=20.0, share_connections=False)
        stubs = [await c._stub(address) for c in (base, other_timeout, own)]
        assert len({id(s) for s in stubs}) == 3
        await own.close()
        assert _closed(stubs[2])
        assert not _closed(stubs[0])
        await base.close()
        await other_timeout.close()
        assert _closed(stubs[0])
        assert _closed(stubs[1])

    run_cluster(tmp_path, body)


def test_a_broken_connection_leaves_the_pool_and_closes_with_its_last_user(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        address = cluster.endpoints[0]
        seeing, holding = kv_client([address]), kv_client([address])
        old = await seeing._stub(address)
        assert await holding._stub(address) is old
        await seeing._drop(address)  # what a client does when its call fails on it
        assert not _closed(old)  # `holding` still uses it
        fresh = kv_client([address])
        new = await fresh._stub(address)
        assert new is not old  # a new acquisition connects afresh
        assert await seeing._stub(address) is new
        await holding.close()
        assert _closed(old)
        assert not _closed(new)
        await seeing.close()
        await fresh.close()
        assert _closed(new)
        assert pool.pooled_count() == 0

    run_cluster(tmp_path, body)


def test_a_failed_connect_fails_every_waiter_and_leaves_nothing(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        dead = cluster.endpoints[2]
        await cluster.stop(3)
        clients = [kv_client([dead], timeout_s=2.0) for _ in range(3)]
        results = await asyncio.gather(*(c._stub(dead) for c in clients), return_exceptions=True)
        assert all(isinstance(r, rpc.Unavailable) for r in results), results
        assert pool.pooled_count() == 0
        with pytest.raises(NotApplied):  # a call that could reach no member
            await clients[0].put("k", "v")
        for client in clients:
            await client.close()

    run_cluster(tmp_path, body)


def test_shared_clients_fail_over_together(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        clients = [kv_client(cluster.endpoints) for _ in range(3)]
        await asyncio.gather(*(c.put(f"k{i}", "before") for i, c in enumerate(clients)))
        await cluster.stop(leader.config.member_id)
        await asyncio.gather(*(c.put(f"k{i}", "after") for i, c in enumerate(clients)))
        for i, client in enumerate(clients):
            assert (await client.get(f"k{i}")).value == b"after"
        new = await cluster.wait_leader()
        address = cluster.endpoints[new.config.member_id - 1]
        held = [c._stubs[address] for c in clients]
        assert all(s is held[0] for s in held)  # one connection to the new leader
        for client in clients:
            await client.close()
        assert pool.pooled_count() == 0
        assert _closed(held[0])

    run_cluster(tmp_path, body)
