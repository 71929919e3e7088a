"""Automatic compaction (`tejido.store.compaction`): the leader keeps the last N
revisions, every member compacts at the same point, and the config refuses bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_fixtures import Cluster, kv_client, run_cluster, wait_for

from tejido.core.errors import BadInput
from tejido.core.ids import NodeId
from tejido.store.config import MemberAddress, StoreConfig, config_from_dict
from tejido.store.errors import StoreError

RETAIN = 20


def test_the_leader_keeps_the_last_revisions_and_every_member_compacts(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            first = (await client.put("c/k", "0")).header.revision
            last = first
            for i in range(1, 3 * RETAIN):
                last = (await client.put(f"c/k{i % 3}", str(i))).header.revision
            # Rule 1: compaction trails the newest revision by at least RETAIN and by at
            # most RETAIN plus a few steps (thresholds crossed while one was in flight).
            step = max(1, RETAIN // 4)
            await wait_for(
                lambda: all(
                    last - RETAIN - 3 * step <= n.machine.compacted_revision <= last - RETAIN
                    for n in cluster.nodes.values()
                ),
                30,
                "every member compacted behind the retained window",
            )
            compacted = min(n.machine.compacted_revision for n in cluster.nodes.values())
            assert compacted > first
            with pytest.raises(StoreError, match="compacted"):
                await client.get("c/k", revision=first)
            # Inside the window, history is still there.
            kept = await client.get("c/k1", revision=last - RETAIN + 1)
            assert kept is not None

    run_cluster(tmp_path, body, auto_compaction_revisions=RETAIN)


def test_without_the_option_nothing_is_compacted(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            first = (await client.put("n/k", "0")).header.revision
            for i in range(2 * RETAIN):
                await client.put("n/other", str(i))
            await cluster.wait_applied()
            assert all(n.machine.compacted_revision == 0 for n in cluster.nodes.values())
            old = await client.get("n/k", revision=first)
            assert old is not None

    run_cluster(tmp_path, body)


def test_a_negative_or_non_integer_retention_is_refused(tmp_path: Path) -> None:
    members = {NodeId(1): MemberAddress("127.0.0.1:0", "127.0.0.1:0")}
    with pytest.raises(BadInput, match="auto_compaction_revisions"):
        StoreConfig(NodeId(1), members, tmp_path, auto_compaction_revisions=-1).validate()
    table = {"1": {"peer": "127.0.0.1:0", "client": "127.0.0.1:0"}}
    with pytest.raises(BadInput, match="auto_compaction_revisions"):
        config_from_dict(
            {"id": 1, "data_dir": "d", "members": table, "auto_compaction_revisions": "x"},
            base=tmp_path,
            where="test",
        )
    parsed = config_from_dict(
        {"id": 1, "data_dir": "d", "members": table, "auto_compaction_revisions": 7},
        base=tmp_path,
        where="test",
    )
    assert parsed.auto_compaction_revisions == 7
