"""In-process store clusters: three `StoreNode`s in one event loop on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from store_fixtures import Cluster, kv_client, run_cluster, wait_until

from tejido import rpc
from tejido.core.ids import NodeId
from tejido.mvcc import api
from tejido.store.errors import NotApplied, NotLeader, OutcomeUnknown, StoreError
from tejido.store.service import KV


def test_put_get_range_delete(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            put = await client.put("a/1", "one")
            assert put.header.cluster_id == "tejido"
            first_revision = put.header.revision
            await client.put("a/2", "two")
            await client.put("b/1", "other")
            kv = await client.get("a/1")
            assert kv is not None
            assert kv.value == b"one"
            assert kv.mod_revision == first_revision
            prefix = await client.range("a/", prefix=True)
            assert [kv.key for kv in prefix.result.kvs] == [b"a/1", b"a/2"]
            deleted = await client.delete("a/", prefix=True, prev_kv=True)
            assert deleted.result.deleted == 2
            assert sorted(kv.value for kv in deleted.result.prev_kvs) == [b"one", b"two"]
            assert await client.get("a/1") is None
            assert (await client.get("b/1")) is not None

    run_cluster(tmp_path, body)


def test_linearizable_reads_need_a_quorum_serializable_ones_do_not(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            await client.put("k", "v1")
        await cluster.wait_applied()
        survivor = next(i for i, n in cluster.nodes.items() if n is not leader)
        for ident in [i for i in list(cluster.nodes) if i != survivor]:
            await cluster.stop(ident)
        endpoint = cluster.members[NodeId(survivor)].client
        async with kv_client([endpoint], timeout_s=1.0) as alone:
            kv = await alone.get("k", serializable=True)
            assert kv is not None
            assert kv.value == b"v1"
            with pytest.raises((NotApplied, OutcomeUnknown)):
                await alone.get("k")  # no quorum: no linearizable read

    run_cluster(tmp_path, body)


def test_linearizable_read_at_a_follower_sees_the_latest_write(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        follower = next(n for n in cluster.nodes.values() if n is not leader)
        async with (
            kv_client([leader.config.me.client]) as writer,
            kv_client([follower.config.me.client]) as reader,
        ):
            for i in range(20):
                await writer.put("x", str(i))
                kv = await reader.range("x")
                assert kv.result.kvs[0].value == str(i).encode()
                assert kv.header.revision >= 2 + i

    run_cluster(tmp_path, body)


def test_client_fails_over_when_the_leader_stops(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            await client.put("before", "1")
            await cluster.stop(int(leader.member_id))
            put = await client.put("after", "2")  # retried until a new leader takes it
            assert put.header.member_id != leader.member_id
            assert (await client.get("before")) is not None
            after = await client.get("after")
            assert after is not None
            assert after.value == b"2"

    run_cluster(tmp_path, body)


def test_a_client_of_one_follower_gets_through_a_leader_change(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        follower = next(n for n in cluster.nodes.values() if n is not leader)
        async with kv_client([follower.config.me.client]) as client:
            await client.put("n", "0")
            await cluster.stop(int(leader.member_id))
            for i in range(1, 6):  # forwarded while the old leader is gone, then the new one
                await client.put("n", str(i))
            got = await client.get("n")
            assert got is not None
            assert got.value == b"5"
            assert got.version == 6  # each put applied exactly once

    run_cluster(tmp_path, body)


def test_restarted_cluster_recovers_its_data(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            for i in range(30):
                await client.put(f"key/{i:02d}", f"value {i}")
            before = await client.range("key/", prefix=True)
        for ident in list(cluster.nodes):
            await cluster.stop(ident)
        await cluster.start()
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            after = await client.range("key/", prefix=True)
            assert after.result.kvs == before.result.kvs
            assert after.header.revision >= before.header.revision
            await client.put("key/new", "x")
        # One member alone restarted catches up from the others.
        await cluster.restart(1)
        await cluster.wait_applied()
        async with kv_client([cluster.members[NodeId(1)].client]) as one:
            local = await one.get("key/new", serializable=True)
        assert local is not None

    run_cluster(tmp_path, body)


def test_bad_input_gets_typed_errors_and_the_member_keeps_serving(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            with pytest.raises(StoreError, match="request_too_large"):
                await client.put("big", b"x" * (2 * 1024 * 1024))
            put_many = api.PutRequest(key=b"k", value=b"v")
            too_many = api.TxnRequest(success=[put_many] * (api.MAX_TXN_OPS + 1))
            with pytest.raises(StoreError, match="too_many_ops") as info:
                await client.txn(too_many)
            assert info.value.code == "too_many_ops"
            with pytest.raises(StoreError, match="lease_not_found"):
                await client.put("k", "v", lease=987654321)
            with pytest.raises(StoreError, match="lease_not_found"):
                await client.lease_keepalive(987654321)
            with pytest.raises(StoreError, match="bad_request"):
                await client.member_add_learner(42)
            with pytest.raises(StoreError, match="bad_request"):
                await client.lease_grant(0)
            assert (await client.put("still", "serving")).result.header_revision > 1

    run_cluster(tmp_path, body)


def test_txn_compare_and_swap(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            await client.put("lock", "free")
            cas = api.TxnRequest(
                compare=[api.Compare(key=b"lock", target="VALUE", value=b"free")],
                success=[api.PutRequest(key=b"lock", value=b"mine")],
                failure=[api.RangeRequest(key=b"lock")],
            )
            first = await client.txn(cas)
            second = await client.txn(cas)
            assert first.result.succeeded
            assert not second.result.succeeded
            holder = second.result.responses[0]
            assert isinstance(holder, api.RangeResponse)
            assert holder.kvs[0].value == b"mine"

    run_cluster(tmp_path, body)


def test_leases_expire_and_their_keys_go(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            grant = await client.lease_grant(1)
            await client.put("ephemeral", "x", lease=grant.id)
            await client.put("durable", "y")
            ttl = await client.lease_ttl(grant.id, keys=True)
            assert ttl.granted_ttl == 1
            assert 0 < ttl.ttl <= 1
            assert ttl.keys == [b"ephemeral"]
            follower = next(n for n in cluster.nodes.values() if n is not leader)
            stub = await rpc.connect(KV, follower.config.me.client)
            with pytest.raises(NotLeader) as refused:
                await stub.lease_keepalive(grant.id)
            assert refused.value.address == leader.config.me.client
            await rpc.close(stub)

            async def gone() -> bool:
                return await client.get("ephemeral") is None

            await wait_until(gone, 10.0, "the leased key to be deleted")
            assert await client.get("durable") is not None
            listed = await client.leases()
            assert grant.id not in [lease.id for lease in listed.leases]

    run_cluster(tmp_path, body)


def test_watch_sees_every_revision_once_across_a_leader_change(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client, kv_client(cluster.endpoints) as watcher:
            first = await client.put("w/0", "0")
            seen: list[tuple[int, bytes]] = []
            done = asyncio.Event()

            async def consume() -> None:
                stream = watcher.watch("w/", prefix=True, start_revision=first.header.revision)
                async for response in stream:
                    seen.extend((e.kv.mod_revision, e.kv.key) for e in response.events)
                    if len(seen) >= 20:
                        done.set()
                        return

            task = asyncio.create_task(consume())
            for i in range(1, 10):
                await client.put(f"w/{i}", str(i))
            await cluster.stop(int(leader.member_id))
            for i in range(10, 20):
                await client.put(f"w/{i}", str(i))
            await asyncio.wait_for(done.wait(), 20)
            await task
            revisions = [revision for revision, _ in seen]
            assert revisions == sorted(set(revisions))  # ordered, no duplicates
            assert [key for _, key in seen] == [f"w/{i}".encode() for i in range(20)]

    run_cluster(tmp_path, body)


def test_kept_alive_lease_survives_a_leader_change_then_expires(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        history: list[dict[str, object]] = []
        async with kv_client(cluster.endpoints, recorder=history.append) as client:
            grant = await client.lease_grant(1)
            await client.put("held", "x", lease=grant.id)
            keep = True

            async def keepalive() -> None:
                while keep:
                    await client.lease_keepalive(grant.id)
                    await asyncio.sleep(0.2)  # the renewal period (a third of the TTL)

            task = asyncio.create_task(keepalive())
            await cluster.stop(int(leader.member_id))
            await cluster.wait_leader()
            for _ in range(3):  # well past the TTL, across the new leader's reset
                assert await client.get("held") is not None
                await asyncio.sleep(0.5)  # time passing is the point here
            keep = False
            await task

            async def gone() -> bool:
                return await client.get("held") is None

            await wait_until(gone, 10.0, "the lease to expire once no longer kept alive")
        kinds = [(entry["type"], entry["f"]) for entry in history[:4]]
        assert kinds == [
            ("invoke", "lease grant"),
            ("ok", "lease grant"),
            ("invoke", "put"),
            ("ok", "put"),
        ]

    run_cluster(tmp_path, body)


def test_a_member_far_behind_catches_up_from_a_snapshot(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        behind = next(i for i, n in cluster.nodes.items() if n is not leader)
        await cluster.stop(behind)
        async with kv_client(cluster.endpoints) as client:
            for i in range(60):
                await client.put(f"s/{i:02d}", str(i))
        assert leader.raft.log.snapshot_index > 0  # the log behind the snapshot is gone
        await cluster.start(behind)
        await cluster.wait_applied()
        # (It may catch up from a snapshot, or from the appends the leader's mesh queued for
        # it while it was down: both must give it every key.)
        async with kv_client([cluster.members[NodeId(behind)].client]) as one:
            local = await one.range("s/", prefix=True, serializable=True)
        assert [kv.value for kv in local.result.kvs] == [str(i).encode() for i in range(60)]

    run_cluster(tmp_path, body, snapshot_threshold_entries=20)
