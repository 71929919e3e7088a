"""Leases on a real 3-member cluster (loopback sockets, disks): event-driven expiry
(`tejido.store.lessor` rule 5), a new leader extending remaining TTLs (rule 4, etcd's
documented behaviour), and the keep-alive stream (`KV.lease_keepalive_stream`,
`Client.keepalive`): many leases over one stream, across a leader change, ending with
`lease_not_found` once a lease is revoked."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_fixtures import Cluster, kv_client, run_cluster, wait_for, wait_until

from tejido.store.errors import StoreError


def test_expiry_is_timed_for_the_next_deadline_not_polled(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        lessor = leader.lessor
        assert lessor.next_wake is None  # no leases: no timer at all
        assert lessor.wakeups == 0
        async with kv_client(cluster.endpoints) as kv:
            granted_at = time.monotonic()
            lease = (await kv.lease_grant(1)).id
            await kv.put("session/a", "x", lease=lease)
            long_lived = (await kv.lease_grant(60)).id
            # The timer stands for the short lease's deadline, about 1 s from its grant.
            await wait_for(lambda: lessor.next_wake is not None, 10, "the lessor's timer")
            wake = lessor.next_wake
            assert wake is not None
            assert granted_at < wake <= time.monotonic() + 1.0

            async def gone() -> bool:
                return await kv.get("session/a") is None

            await wait_until(gone, 20, "the lease's key to be deleted")
            assert time.monotonic() - granted_at >= 1.0  # never before its TTL
            leases = {status.id for status in (await kv.leases()).leases}
            assert lease not in leases
            assert long_lived in leases
            # Woken for the deadline (and at most a retry or two on a loaded machine),
            # not every few milliseconds; now timed for the 60 s lease only.
            assert 1 <= lessor.wakeups <= 4
            await wait_for(
                lambda: lessor.next_wake is not None and lessor.next_wake > time.monotonic() + 30,
                10,
                "the timer to move to the 60 s lease",
            )
            await kv.lease_revoke(long_lived)
            await wait_for(lambda: lessor.next_wake is None, 10, "the timer to be disarmed")

    run_cluster(tmp_path, body)


def test_a_new_leader_gives_every_lease_its_full_ttl_again(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        old = await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as kv:
            lease = (await kv.lease_grant(5)).id
            await kv.put("lock/owner", "me", lease=lease)
            await wait_for(
                lambda: 0 <= old.lessor.remaining(lease) < 3.5, 20, "1.5 s of the TTL to pass"
            )
            left_before = old.lessor.remaining(lease)
            target = next(i for i, node in cluster.nodes.items() if node is not old)
            await kv.leader_transfer(target)
            new = cluster.nodes[target]
            await wait_for(lambda: new.is_leader, 20, f"member {target} to lead")
            left_after = new.lessor.remaining(lease)
            # Reset to the granted TTL from the moment it noticed it leads (rule 4).
            assert left_after > left_before + 1.0
            assert left_after <= 5.0
            assert not old.lessor.deadlines  # a follower keeps no deadlines
            reply = await kv.lease_ttl(lease)
            assert reply.granted_ttl == 5
            assert (await kv.get("lock/owner")) is not None

    run_cluster(tmp_path, body)


def test_one_stream_keeps_many_leases_alive_across_a_leader_change(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as kv:
            leases = [(await kv.lease_grant(1)).id for _ in range(3)]
            for lease in leases:
                await kv.put(f"svc/{lease}", "up", lease=lease)
            renewed: dict[int, int] = dict.fromkeys(leases, 0)
            transferred = asyncio.Event()

            async def keep() -> None:
                async with contextlib.aclosing(kv.keepalive(*leases)) as stream:  # type: ignore[type-var]
                    async for reply in stream:
                        renewed[reply.id] += 1
                        if min(renewed.values()) >= 4:
                            transferred.set()

            keeper = asyncio.ensure_future(keep())
            await asyncio.wait_for(transferred.wait(), 30)
            # Three TTLs have passed: without the stream the keys would be gone.
            for lease in leases:
                assert await kv.get(f"svc/{lease}") is not None
            target = next(i for i, node in cluster.nodes.items() if node is not leader)
            await kv.leader_transfer(target)
            await wait_for(lambda: cluster.nodes[target].is_leader, 20, "the transfer")
            before = dict(renewed)
            await wait_for(
                lambda: all(renewed[lease] >= before[lease] + 4 for lease in leases),
                30,
                "renewals through the new leader",
            )
            for lease in leases:
                assert await kv.get(f"svc/{lease}") is not None
            assert not keeper.done()
            await kv.lease_revoke(leases[1])  # the stream must now end by itself
            with pytest.raises(StoreError, match="lease_not_found") as ended:
                await asyncio.wait_for(keeper, 20)
            assert ended.value.code == "lease_not_found"
            assert str(leases[1]) in str(ended.value)

    run_cluster(tmp_path, body)


def test_the_stream_refuses_on_a_follower_and_answers_zero_for_an_unknown_lease(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        from tejido import rpc
        from tejido.store.errors import NotLeader
        from tejido.store.service import KV

        leader = await cluster.wait_leader()
        follower = next(node for node in cluster.nodes.values() if node is not leader)

        async def ids(*values: int) -> AsyncIterator[int]:
            for value in values:
                yield value

        stub = await rpc.connect(KV, leader.client_address or "", cluster="tejido")
        try:
            async with kv_client(cluster.endpoints) as kv:
                lease = (await kv.lease_grant(30)).id
            replies = [r async for r in stub.lease_keepalive_stream(ids(lease, 999_999))]
            assert [(r.id, r.ttl) for r in replies] == [(lease, 30), (999_999, 0)]
        finally:
            await rpc.close(stub)
        stub = await rpc.connect(KV, follower.client_address or "", cluster="tejido")
        try:
            with pytest.raises(NotLeader) as refused:
                _ = [r async for r in stub.lease_keepalive_stream(ids(lease))]
            assert refused.value.address == leader.client_address
        finally:
            await rpc.close(stub)

    run_cluster(tmp_path, body)
