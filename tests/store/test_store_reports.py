"""Which Raft reports make a member re-check its leader and lessor (`tejido.store.node`
rule 6): role, term and configuration changes do; the reports every write makes
(`Committed`, `SnapshotTaken`, `Applied` while no configuration waits for its apply) do
not."""

from __future__ import annotations

from pathlib import Path

from store_fixtures import Cluster, run_cluster, wait_for

from tejido.core.ids import NodeId
from tejido.raft.messages import Applied, BecameFollower, Committed, SnapshotTaken
from tejido.raft.types import Index, Term


def test_per_write_reports_schedule_no_recheck_role_changes_do(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        node = next(n for n in cluster.nodes.values() if n is not leader)
        await wait_for(lambda: not node._check_pending, what="no re-check pending")
        node._confs_pending = False
        for event in (
            Committed(Index(7)),
            SnapshotTaken(Index(7), Term(1)),
            Applied(Index(5), Index(7), Term(1)),
        ):
            node._raft_reported(event)
            assert not node._check_pending, event
        node._confs_pending = True  # a configuration waits for its apply (rule 9)
        node._raft_reported(Applied(Index(8), Index(8), Term(1)))
        assert node._check_pending
        node._after_report()
        assert not node._check_pending
        node._raft_reported(BecameFollower(Term(9), NodeId(1)))
        assert node._check_pending

    run_cluster(tmp_path, body)
