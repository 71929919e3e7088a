"""Where a member fsyncs (`tejido.store.node` rule 10): a follower on its event loop when
its disk is idle; the leader on its loop only while few client requests wait on it (else
on the worker thread, so that it reads requests and acknowledgements while its own disk
works); the choice follows a leadership transfer both ways."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store_fixtures import Cluster, kv_client, run_cluster, wait_for

from tejido.net.wal import WalStorage
from tejido.store.node import LEADER_INLINE_SYNC_MAX_WAITING, StoreNode


def _storage(node: StoreNode) -> WalStorage:
    storage = node.host.storage
    assert isinstance(storage, WalStorage)
    return storage


def _modes_match_roles(cluster: Cluster) -> bool:
    for node in cluster.nodes.values():
        mode = _storage(node).inline_sync
        if node.is_leader:
            if not callable(mode):
                return False
        elif mode is not True:
            return False
    return True


async def _leader_and_its_mode(cluster: Cluster) -> tuple[StoreNode, Callable[[], bool]]:
    """The leader once every member's mode matches its role, and the leader's predicate."""
    leader = await cluster.wait_leader()
    await wait_for(lambda: _modes_match_roles(cluster), what="sync modes by role")
    mode = _storage(leader).inline_sync
    assert callable(mode)
    return leader, mode


def test_followers_fsync_on_the_loop_the_leader_when_few_wait_and_a_transfer_swaps(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        leader, mode = await _leader_and_its_mode(cluster)
        assert leader.host.outstanding == 0
        assert mode() is True  # nothing waits: the leader may fsync on its loop
        async with kv_client(cluster.endpoints) as kv:
            await kv.put("k", "v")
            target = next(i for i in (1, 2, 3) if i != leader.member_id)
            reply = await kv.leader_transfer(target)
            assert reply.leader == target
            await wait_for(lambda: _modes_match_roles(cluster), what="swapped modes")
            assert callable(_storage(cluster.nodes[target]).inline_sync)
            assert _storage(leader).inline_sync is True
            await kv.put("k", "w")  # followers acknowledge through inline rounds
            got = await kv.get("k")
            assert got is not None
            assert got.value == b"w"

    run_cluster(tmp_path, body)


def test_the_leader_keeps_its_fsync_on_the_worker_while_many_requests_wait(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        leader, mode = await _leader_and_its_mode(cluster)
        # Requests that wait on the leader: futures the host answers when they apply.
        waiting = [leader.host.submit(_put(i)) for i in range(LEADER_INLINE_SYNC_MAX_WAITING)]
        assert leader.host.outstanding == LEADER_INLINE_SYNC_MAX_WAITING
        assert mode() is True
        waiting.append(leader.host.submit(_put(LEADER_INLINE_SYNC_MAX_WAITING)))
        assert mode() is False
        for future in waiting:
            outcome = await future
            assert outcome.type == "ok"
        assert leader.host.outstanding == 0
        assert mode() is True

    run_cluster(tmp_path, body)


def _put(i: int) -> object:
    from tejido.core.operations import Operation
    from tejido.mvcc import api
    from tejido.store import ops

    return Operation("store", data=ops.command(api.PutRequest(key=b"k%d" % i, value=b"v")))
