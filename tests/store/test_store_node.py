"""In-process store clusters: three `StoreNode`s in one event loop on loopback."""

from __future__ import annotations

from pathlib import Path

from store_fixtures import Cluster, run_cluster

from tejido.store.client import Client


def test_put_get_range_delete(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with Client(cluster.endpoints) as client:
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
