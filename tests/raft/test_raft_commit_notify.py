"""A leader may hold back the AppendEntries that only carries a new commit index
(`tejido.raft.replication` rule 4b, ``commit_notify_delay_s``): the step that commits
sends nothing to followers that already have every entry and arms the ``commit`` timer; a
proposal before the timer carries the commit index in its append, so the timer then sends
nothing; the timer alone sends it to followers that lack it. With no delay (the Raft
default) the commit index leaves in the committing step, as before."""

from __future__ import annotations

import pytest
from raft_harness import Cluster

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.raft import reads
from tejido.raft.config import RaftConfig
from tejido.raft.messages import AppendEntries


def _cluster(delay: float) -> Cluster:
    cluster = Cluster(seed=3)
    cluster.run("add-nodes", ["3", f"commit-notify-delay-s={delay}"])
    cluster.run("campaign", ["1"])
    cluster.run("stabilize", [])
    return cluster


def _commit_to_followers(cluster: Cluster) -> list[tuple[int, int]]:
    """(follower, commit) of every AppendEntries the leader has queued, without entries."""
    return [
        (int(dst), int(m.commit))
        for src, dst, m in cluster.queue
        if src == 1 and isinstance(m, AppendEntries) and not m.entries
    ]


def _write_until_committed(cluster: Cluster, value: int) -> int:
    """Propose a write at the leader, deliver the appends and the acknowledgements; the
    leader commits it. Returns the committed index."""
    leader = cluster.node(NodeId(1))
    cluster.command(NodeId(1), Operation("write", "k", value))
    cluster.complete_syncs(NodeId(1))
    cluster.deliver_all([NodeId(2), NodeId(3)])  # the appends
    for follower in (NodeId(2), NodeId(3)):
        cluster.complete_syncs(follower)  # their acknowledgements leave once durable
    cluster.deliver_all([NodeId(1)])
    assert leader.log.commit == leader.log.last_index
    return int(leader.log.commit)


def test_the_commit_only_append_waits_for_the_timer() -> None:
    cluster = _cluster(0.002)
    commit = _write_until_committed(cluster, 1)
    assert _commit_to_followers(cluster) == []  # nothing sent by the committing step
    timer = "raft/0/commit"
    assert timer in cluster.slots[NodeId(1)].timers
    cluster.fire(NodeId(1), "commit")
    assert sorted(_commit_to_followers(cluster)) == [(2, commit), (3, commit)]
    cluster.stabilize()
    for follower in (NodeId(2), NodeId(3)):
        assert cluster.node(follower).log.commit == commit


def test_a_proposal_before_the_timer_carries_the_commit_index() -> None:
    cluster = _cluster(0.002)
    commit = _write_until_committed(cluster, 1)
    cluster.command(NodeId(1), Operation("write", "k", 2))
    carried = [
        (int(dst), int(m.commit))
        for src, dst, m in cluster.queue
        if src == 1 and isinstance(m, AppendEntries) and m.entries
    ]
    assert sorted(carried) == [(2, commit), (3, commit)]
    cluster.fire(NodeId(1), "commit")
    assert _commit_to_followers(cluster) == []  # both had it: nothing more to send


def test_without_a_delay_the_commit_index_leaves_at_once() -> None:
    cluster = _cluster(0.0)
    commit = _write_until_committed(cluster, 1)
    assert sorted(_commit_to_followers(cluster)) == [(2, commit), (3, commit)]
    assert "raft/0/commit" not in cluster.slots[NodeId(1)].timers


def test_a_negative_delay_is_refused_naming_it() -> None:
    with pytest.raises(LocalProtocolError, match="commit_notify_delay_s=-1"):
        RaftConfig(commit_notify_delay_s=-1).validate()


def test_a_commit_made_while_the_timer_runs_gets_a_timer_of_its_own() -> None:
    cluster = _cluster(0.002)
    first = _write_until_committed(cluster, 1)
    # The second write's appends carry the first commit index; it commits while the
    # timer armed for the first is still running.
    second = _write_until_committed(cluster, 2)
    assert second > first
    assert _commit_to_followers(cluster) == []
    cluster.fire(NodeId(1), "commit")
    assert _commit_to_followers(cluster) == []  # both had the index the timer was for
    assert "raft/0/commit" in cluster.slots[NodeId(1)].timers  # armed again, for `second`
    cluster.fire(NodeId(1), "commit")
    assert sorted(_commit_to_followers(cluster)) == [(2, second), (3, second)]
    cluster.stabilize()
    for follower in (NodeId(2), NodeId(3)):
        assert cluster.node(follower).log.commit == second
    assert "raft/0/commit" not in cluster.slots[NodeId(1)].timers


def test_a_lease_read_at_a_follower_gets_the_held_back_commit_index_at_once() -> None:
    cluster = Cluster(seed=3)
    cluster.run("add-nodes", ["3", "commit-notify-delay-s=0.002", "lease-reads=true"])
    cluster.run("campaign", ["1"])
    cluster.run("stabilize", [])
    cluster.fire(NodeId(1), "heartbeat")  # a confirmed heartbeat round: the lease
    cluster.stabilize()
    assert reads.lease_valid(cluster.node(NodeId(1)))
    commit = _write_until_committed(cluster, 1)
    follower = cluster.node(NodeId(2))
    assert follower.log.commit < commit  # held back by the leader (rule 4b)
    request = cluster.command(NodeId(2), Operation("read", "k"))
    cluster.deliver_all([NodeId(1)])  # the ReadIndex request: served from the lease
    assert (2, commit) in _commit_to_followers(cluster)  # pushed with the answer
    cluster.deliver_all([NodeId(2)])
    assert follower.log.commit == commit
    outcome = cluster.replies[request]
    assert outcome.type == "ok"
    assert outcome.value == 1
