"""Staggered snapshot points (`tejido.raft.snapshot` rule 1b): members applying the same
entries take their snapshots at different indexes, one rank's offset apart, at least half a
threshold after their last one."""

from __future__ import annotations

from raft_harness import Cluster

from tejido.core.ids import NodeId
from tejido.raft.snapshot import snapshot_offset

THRESHOLD = 30


def _snapshots(cluster: Cluster) -> dict[int, list[int]]:
    """Every snapshot index each node took so far (from its SnapshotTaken reports)."""
    taken: dict[int, list[int]] = {1: [], 2: [], 3: []}
    for line in cluster.lines:
        node, _, rest = line.partition(": ")
        if rest.startswith("SnapshotTaken"):
            taken[int(node)].append(int(rest.split("index=")[1].split()[0]))
    return taken


def test_offsets_spread_ranks_over_one_threshold() -> None:
    nodes = (NodeId(1), NodeId(2), NodeId(3))
    assert [snapshot_offset(nodes, n, 30) for n in nodes] == [0, 10, 20]
    assert snapshot_offset(nodes, NodeId(9), 30) == 0  # not a starting member: rank 0
    assert snapshot_offset((NodeId(5),), NodeId(5), 30) == 0


def test_members_snapshot_at_staggered_indexes() -> None:
    cluster = Cluster(seed=1)
    cluster.run("add-nodes", ["3", f"snapshot-threshold-entries={THRESHOLD}"])
    cluster.run("campaign", ["1"])
    cluster.run("stabilize", [])
    lines: list[str] = []
    for i in range(100):  # one at a time: each index is applied on its own
        lines += cluster.run("put", ["1", f"k{i % 7}", str(i)])
        lines += cluster.run("stabilize", [])
    cluster.lines = lines
    taken = _snapshots(cluster)
    applied = cluster.node(NodeId(1)).log.applied
    assert applied >= 100
    for node, indexes in taken.items():
        offset = THRESHOLD * (node - 1) // 3
        assert indexes, f"node {node} took no snapshot"
        # each snapshot at a point k * T + offset (applied one entry at a time) ...
        assert all((index - offset) % THRESHOLD == 0 for index in indexes), (node, indexes)
        # ... and at least T // 2 entries after the previous one
        gaps = [b - a for a, b in zip([0, *indexes], indexes, strict=False)]
        assert min(gaps) >= THRESHOLD // 2, (node, indexes)
    # no two members ever snapshot at the same index
    every = [index for indexes in taken.values() for index in indexes]
    assert len(every) == len(set(every)), taken
