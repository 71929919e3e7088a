"""Watches on a follower that installs a snapshot (issue 5, gap 5; `tejido.store.watch`
rule 5): the member cancels its watchers with ``restored`` when Raft replaces its state,
and the client resumes on that member from its last revision + 1. The consumer sees every
revision of the watched prefix exactly once, in order, across the restore (and a lease's
expiry, decided by the leader while the follower was cut off, arrives as a DELETE like any
other event); a resume from a revision the restored state no longer holds fails with a
clear ``compacted`` error instead of skipping history."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import Cluster, kv_client, run_cluster, wait_for

from tejido.store.errors import StoreError
from tejido.store.node import StoreNode

THRESHOLD = 40  # entries between snapshots (and kept behind one): a short log


def _cut_off(node: StoreNode) -> Any:
    """Drop every Raft message `node` receives; returns the handler to put back."""
    mesh = node.host.mesh
    assert mesh is not None
    original = mesh.on_message
    mesh.on_message = lambda src, message: None
    return original


def test_a_watch_on_a_follower_survives_its_snapshot_restore(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        follower = next(node for node in cluster.nodes.values() if node is not leader)
        seen: list[tuple[int, str, bytes]] = []

        async with (
            kv_client(cluster.endpoints) as kv,
            kv_client([follower.client_address or ""]) as at_follower,
        ):
            lease = (await kv.lease_grant(1)).id
            await kv.put("w/leased", "x", lease=lease)
            first = (await kv.put("w/0", "0")).header.revision
            await cluster.wait_applied()

            async def consume() -> None:
                stream = at_follower.watch("w/", prefix=True, start_revision=first)
                async with contextlib.aclosing(stream) as responses:  # type: ignore[type-var]
                    async for response in responses:
                        for event in response.events:
                            seen.append((event.kv.mod_revision, event.type, event.kv.key))

            consumer = asyncio.ensure_future(consume())
            await wait_for(lambda: len(seen) >= 1, 20, "the watch's first event")
            first_index = follower.raft.log.first_index
            handler = _cut_off(follower)
            try:
                last = first
                for i in range(1, 3 * THRESHOLD):  # the leader compacts past the follower
                    last = (await kv.put(f"w/{i % 7}", str(i))).header.revision
                    await kv.put("other/noise", str(i))  # not watched
                await wait_for(
                    lambda: leader.raft.log.first_index > follower.raft.log.last_index,
                    20,
                    "the leader to compact past the follower",
                )
                await wait_for(  # expired by the leader while the follower hears nothing
                    lambda: lease not in leader.lessor.deadlines, 20, "the lease to expire"
                )
                gone = await kv.get("w/leased")
                assert gone is None
            finally:
                follower.host.mesh.on_message = handler  # type: ignore[union-attr]
            await wait_for(
                lambda: follower.raft.log.first_index > first_index, 30, "a snapshot install"
            )
            final = (await kv.put("w/final", "end")).header.revision
            await wait_for(lambda: seen and seen[-1][0] >= final, 30, "the watch to catch up")
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

            revisions = [revision for revision, _, _ in seen]
            assert revisions == sorted(set(revisions))  # in order, no duplicates
            expected: list[int] = []
            async for response in kv.watch("w/", prefix=True, start_revision=first):
                expected.extend(event.kv.mod_revision for event in response.events)
                if expected and expected[-1] >= final:
                    break
            assert revisions == expected  # no gap either: exactly the leader's history
            assert last in revisions
            assert final in revisions
            assert any(kind == "DELETE" and key == b"w/leased" for _, kind, key in seen)
            assert follower.watches.cancellations.get("restored", 0) >= 1  # it was resumed

            # A resume from before the compacted revision is refused, not silently short.
            await kv.compact(final)
            await cluster.wait_applied()
            with pytest.raises(StoreError, match="compacted") as refused:
                async for _ in at_follower.watch("w/", prefix=True, start_revision=first):
                    pass
            assert refused.value.code == "compacted"

    run_cluster(tmp_path, body, snapshot_threshold_entries=THRESHOLD)
