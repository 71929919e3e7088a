"""A follower applies newly committed entries after its outputs have left
(`tejido.raft.replication` rule 5c, ``defer_follower_apply``): the input that teaches it a
commit index asks for `on_idle` instead of applying; `on_durable` releases its
acknowledgement without applying; `on_idle`, or any other input first, applies. Which
entries are applied, and in what order, does not change (the harness checks every
applied entry against every other node's)."""

from __future__ import annotations

from raft_harness import Cluster

from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.raft.messages import AppendEntries, AppendEntriesResponse, Heartbeat
from tejido.raft.node import RaftNode

LEADER, FOLLOWER = NodeId(1), NodeId(2)


def _cluster(defer: bool) -> Cluster:
    cluster = Cluster(seed=5)
    options = [f"defer-follower-apply={str(defer).lower()}", "commit-notify-delay-s=0.002"]
    cluster.run("add-nodes", ["3", *options])  # (the commit index rides on the next append)
    cluster.run("campaign", ["1"])
    cluster.run("stabilize", [])
    return cluster


def _commit_one_and_append_another(cluster: Cluster) -> tuple[int, AppendEntries]:
    """Write 1 commits everywhere it can; write 2's append to the follower (carrying
    write 1's commit index) is taken out of the queue. Returns (commit, that append)."""
    cluster.command(LEADER, Operation("write", "k", 1))
    cluster.stabilize([LEADER, NodeId(3)])  # node 3 acknowledges: write 1 commits
    leader = cluster.node(LEADER)
    commit = int(leader.log.commit)
    assert commit == int(leader.log.last_index)
    cluster.stabilize([FOLLOWER])  # the follower appends write 1 (not yet told it commits)
    cluster.command(LEADER, Operation("write", "k", 2))
    appends = [
        (i, m)
        for i, (src, dst, m) in enumerate(cluster.queue)
        if src == LEADER and dst == FOLLOWER and isinstance(m, AppendEntries) and m.entries
    ]
    i, append = appends[-1]
    del cluster.queue[i]
    assert append.commit == commit
    return commit, append


def test_the_follower_acknowledges_before_it_applies() -> None:
    cluster = _cluster(defer=True)
    commit, append = _commit_one_and_append_another(cluster)
    follower = cluster.node(FOLLOWER)
    assert isinstance(follower, RaftNode)
    applied = int(follower.log.applied)
    assert applied < commit

    follower.on_message(LEADER, append)
    assert follower.log.commit == commit  # learned...
    assert follower.log.applied == applied  # ...but not applied inside the input
    assert follower.apply_deferred
    assert follower.out.idle
    token = follower.out.syncs[-1]

    follower.on_durable(token)  # the append is durable: the acknowledgement leaves
    acks = [m for _, m in follower.out.messages if isinstance(m, AppendEntriesResponse)]
    assert acks
    assert acks[-1].success
    assert follower.log.applied == applied  # still not applied

    follower.on_idle()  # the batch has been carried out
    assert follower.log.applied == commit
    assert not follower.apply_deferred


def _follower_given_the_append(defer: bool) -> tuple[int, RaftNode]:
    """The follower right after handling write 2's append; returns (commit, follower)."""
    cluster = _cluster(defer)
    commit, append = _commit_one_and_append_another(cluster)
    follower = cluster.node(FOLLOWER)
    follower.on_message(LEADER, append)
    return commit, follower


def test_any_other_input_applies_what_was_put_off_first() -> None:
    commit, follower = _follower_given_the_append(defer=True)
    assert follower.log.applied < commit
    heartbeat = Heartbeat(follower.config.group, follower.term, follower.log.commit, 0)
    follower.on_message(LEADER, heartbeat)
    assert follower.log.applied == commit
    assert not follower.apply_deferred


def test_without_the_option_the_follower_applies_inside_the_input() -> None:
    commit, follower = _follower_given_the_append(defer=False)
    assert follower.log.applied == commit
    assert not follower.out.idle


def test_deferred_and_immediate_apply_reach_the_same_state() -> None:
    results = []
    for defer in (True, False):
        cluster = _cluster(defer)
        for value in range(1, 8):
            cluster.command(LEADER, Operation("write", "k", value))
            cluster.stabilize()
        cluster.fire(LEADER, "heartbeat")  # carries the last commit index
        cluster.stabilize()
        nodes = [cluster.node(NodeId(i)) for i in (1, 2, 3)]
        assert len({n.log.applied for n in nodes}) == 1
        assert len({n.applied_digest for n in nodes}) == 1
        results.append((nodes[0].log.applied, nodes[0].applied_digest, cluster.idles > 0))
    assert results[0][:2] == results[1][:2]
    assert results[0][2] is True  # the deferred run did go through on_idle
    assert results[1][2] is False
