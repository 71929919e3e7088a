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
from types import SimpleNamespace

import pytest
from store_fixtures import Cluster, kv_client, run_cluster, wait_for, wait_until

from tejido.core.operations import Operation
from tejido.mvcc import api
from tejido.mvcc.machine import StoreStateMachine
from tejido.raft.kv import encode_operation
from tejido.store import ops
from tejido.store.errors import NotLeader, StoreError
from tejido.store.lessor import Lessor


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
            assert (await kv.leader_transfer(target)).leader == target  # answered once it leads
            new = cluster.nodes[target]
            assert new.is_leader
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
            assert (await kv.leader_transfer(target)).leader == target  # answered once it leads
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


# ---------------------------------------------------------------- the lessor alone


class _FakeNode:
    """What the lessor reads of a member: role, term, machine, proposals."""

    def __init__(self) -> None:
        self.machine = StoreStateMachine()
        self.is_leader = True
        self.raft = SimpleNamespace(term=1)
        self.proposed: list[list[int]] = []

    def grant(self, lease: int, ttl: int) -> None:
        operation = Operation("store", data=ops.command(api.LeaseGrant(ttl=ttl, id=lease)))
        self.machine.apply(encode_operation(operation))

    def not_leader(self) -> Exception:
        return NotLeader(2, "127.0.0.1:1")

    async def propose(self, command: bytes) -> bytes:
        decoded = api.decode_command(command).op
        assert isinstance(decoded, api.LeaseExpire)
        self.proposed.append(list(decoded.ids))
        return b""


def test_the_lessor_arms_one_timer_for_the_earliest_moment_something_is_due() -> None:
    async def main() -> None:
        node = _FakeNode()
        lessor = Lessor(node, retry_s=2.0)  # type: ignore[arg-type]
        now = [100.0]
        lessor.clock = lambda: now[0]
        lessor.start()
        assert lessor.next_wake is None  # no leases: no timer
        node.grant(7, 10)
        node.grant(8, 30)
        lessor.changed()
        assert lessor.next_wake == 110.0  # the earliest deadline
        now[0] = 105.0
        assert lessor.keepalive(7) == 10  # moves 7 to 115: the timer stays early
        assert lessor.next_wake == 110.0
        lessor._fire()  # it fires early (at 110 on the real clock): nothing is due yet
        assert node.proposed == []
        assert lessor.next_wake == 115.0  # re-armed for the new earliest deadline
        now[0] = 115.0
        lessor._fire()
        await asyncio.sleep(0)  # the expiry proposal runs as a task
        assert node.proposed == [[7]]
        assert lessor.next_wake == 117.0  # the retry of lease 7 (rule 3), before 8's 130
        node.grant(9, 1)  # granted a moment ago; keep-alive before changed_soon ran
        assert lessor.keepalive(9) == 1
        assert lessor.next_wake == 116.0  # timed at once, not left without a timer
        node.raft.term = 2  # a new term: every lease gets its full TTL again (rule 4)
        lessor.changed()
        assert lessor.deadlines == {7: 125.0, 8: 145.0, 9: 116.0}
        node.is_leader = False  # a follower keeps no deadlines and no timer
        lessor.changed()
        assert lessor.deadlines == {}
        assert lessor.next_wake is None
        with pytest.raises(NotLeader):
            lessor.keepalive(8)
        lessor.stop()

    asyncio.run(main())
