"""Store features on an in-process cluster: sessions, watches (progress, compaction, slow
watchers), membership and leadership transfer, the blocking client."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from store_fixtures import Cluster, kv_client, run_cluster, wait_for

from tejido import kv, rpc
from tejido.core.ids import NodeId
from tejido.mvcc import api
from tejido.store.errors import NotLeader, OutcomeUnknown, StoreError, WatchCancelled
from tejido.store.service import KV, Session, WatchRequest
from tejido.store.watch import Watcher


async def _until_answered(call: Any, attempts: int = 20) -> Any:
    """Repeat `call` while a leader change leaves its outcome unknown (or the member asked
    has no leader yet). Repeating is exactly what the session makes safe: the machine
    answers a repeated (session, seq) from its record, which the assertions check."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except (OutcomeUnknown, NotLeader):
            await asyncio.sleep(0.1)  # back off before the next attempt, not a wait-for
    return await call()


def test_a_retried_session_request_is_applied_once(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        stub = await rpc.connect(KV, cluster.endpoints[0])
        try:
            # An abandoned session (from an attempt whose outcome was unknown) expires.
            session = await _until_answered(stub.open_session)
            put_a = api.PutRequest(key=b"k", value=b"a")
            first = await _until_answered(lambda: stub.put(put_a, session))
            put_b = api.PutRequest(key=b"k", value=b"b")
            again = await _until_answered(lambda: stub.put(put_b, session))  # a retry
            assert again.result.header_revision == first.result.header_revision
            reply = await _until_answered(lambda: stub.range(api.RangeRequest(key=b"k")))
            assert reply.result.kvs[0].value == b"a"
            assert reply.result.kvs[0].version == 1
            nxt = await stub.put(api.PutRequest(key=b"k", value=b"c"), session.next())
            assert nxt.result.header_revision > first.result.header_revision
            with pytest.raises(StoreError, match="session_expired"):
                await stub.put(api.PutRequest(key=b"k", value=b"d"), Session(424242, 1))
        finally:
            await rpc.close(stub)

    run_cluster(tmp_path, body)


def test_watch_history_progress_and_compaction(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            revisions = [(await client.put("p/a", str(i))).header.revision for i in range(5)]
            stream = client.watch("p/", prefix=True, start_revision=revisions[1], progress=True)
            got: list[int] = []
            progress_at: int | None = None
            async for response in stream:
                if response.events:
                    got.extend(e.kv.mod_revision for e in response.events)
                elif len(got) >= 4:
                    progress_at = response.header.revision
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            assert got == revisions[1:]
            assert progress_at is not None
            assert progress_at >= revisions[-1]
            await client.compact(revisions[3])
            with pytest.raises(StoreError, match="compacted"):
                async for _ in client.watch("p/", prefix=True, start_revision=revisions[2]):
                    pass

    run_cluster(tmp_path, body, progress_interval_s=0.2)


def test_a_slow_watcher_is_cancelled_not_buffered_without_bound() -> None:
    hub: Any = SimpleNamespace(limit=3)
    watcher = Watcher(hub, 1, b"k", b"")
    kv_at = [api.KeyValue(b"k", 1, r, r, b"v") for r in range(2, 7)]
    for r, item in enumerate(kv_at, start=2):
        watcher.push(r, [api.Event("PUT", item), api.Event("PUT", api.KeyValue(b"x", 1, r, 1))])
    assert watcher.queued_events == 3  # the fourth revision found the queue full
    assert watcher.cancelled is not None
    assert watcher.cancelled.code == "slow"
    assert "resume from revision 1" in str(watcher.cancelled)

    async def drain() -> None:
        batch = await watcher.next_batch(1.0)
        assert batch is not None
        assert [r for r, _ in batch] == [2, 3, 4]
        with pytest.raises(WatchCancelled):
            await watcher.next_batch(1.0)

    asyncio.run(drain())


def test_a_server_cancels_a_watcher_that_stops_reading(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        stub = await rpc.connect(KV, leader.config.me.client)
        stream: Any = stub.watch(WatchRequest(key=b"s/", range_end=b"s0"))
        first = await stream.__anext__()  # created; then stop reading
        assert first.events == []
        async with kv_client([leader.config.me.client], sessions=False) as writer:
            # Each put is one response; beyond the RPC credit window (64) the server's queue
            # fills up to its limit (8 events) and the watcher is cancelled.
            for i in range(100):
                await writer.put(f"s/{i}", "x")
        await wait_for(lambda: not leader.watches.watchers, 10, "the watcher to be cancelled")
        with pytest.raises(WatchCancelled, match="slow"):
            async for _ in stream:
                pass
        await rpc.close(stub)

    run_cluster(tmp_path, body, watch_buffer_events=8)


def test_membership_and_leader_transfer(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        async with kv_client(cluster.endpoints[:3]) as client:
            listed = await client.member_list()
            assert [m.role for m in listed.members] == ["voter", "voter", "voter", "spare"]
            await client.put("k", "v")
            target = next(i for i in (1, 2, 3) if i != leader.member_id)
            assert (await client.leader_transfer(target)).leader == target  # once it leads
            assert cluster.nodes[target].is_leader
            with pytest.raises(StoreError, match="bad_request"):
                await client.leader_transfer(4)  # not a voter
            added = await client.member_add_learner(4)
            assert added.members[3].role == "learner"
            await cluster.wait_applied()
            promoted = await client.member_promote(4)
            assert promoted.members[3].role == "voter"
            await cluster.wait_applied()
            removed = await client.member_remove(4)
            assert removed.members[3].role == "spare"
            kv_after = await client.get("k")
            assert kv_after is not None

    spare: dict[str, object] = {"voters": (NodeId(1), NodeId(2), NodeId(3))}
    run_cluster(tmp_path, body, n=4, **spare)


def test_blocking_client_from_another_thread(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        results: dict[str, object] = {}

        def work() -> None:
            with kv.BlockingClient(cluster.endpoints) as client:
                client.put("blocking", "yes")
                got = client.get("blocking")
                results["value"] = got.value if got is not None else None
                lease = client.lease_grant(30)
                results["lease"] = client.lease_ttl(lease.id).granted_ttl

        thread = threading.Thread(target=work)
        thread.start()
        await asyncio.to_thread(thread.join, 30)
        assert results == {"value": b"yes", "lease": 30}

    run_cluster(tmp_path, body)
