"""A member fsyncs on its event loop only while it follows (`tejido.store.node` rule 10):
the leader keeps its fsync on the worker thread so that it reads acknowledgements while its
own disk works, and the choice follows a leadership transfer both ways."""

from __future__ import annotations

from pathlib import Path

from store_fixtures import Cluster, kv_client, run_cluster, wait_for

from tejido.net.wal import WalStorage


def _modes(cluster: Cluster) -> dict[int, bool]:
    modes = {}
    for ident, node in cluster.nodes.items():
        storage = node.host.storage
        assert isinstance(storage, WalStorage)
        modes[ident] = storage.inline_sync
    return modes


def _expected(cluster: Cluster) -> dict[int, bool]:
    return {ident: not node.is_leader for ident, node in cluster.nodes.items()}


def test_only_followers_fsync_on_the_loop_and_a_transfer_swaps_the_modes(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        await wait_for(lambda: _modes(cluster) == _expected(cluster), what="sync modes by role")
        assert sorted(_modes(cluster).values()) == [False, True, True]
        async with kv_client(cluster.endpoints) as kv:
            await kv.put("k", "v")
            target = next(i for i in (1, 2, 3) if i != leader.member_id)
            reply = await kv.leader_transfer(target)
            assert reply.leader == target
            await wait_for(lambda: _modes(cluster) == _expected(cluster), what="swapped modes")
            assert _modes(cluster)[target] is False
            assert _modes(cluster)[int(leader.member_id)] is True
            await kv.put("k", "w")  # followers acknowledge through inline rounds
            got = await kv.get("k")
            assert got is not None
            assert got.value == b"w"

    run_cluster(tmp_path, body)
