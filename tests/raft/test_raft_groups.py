"""Several Raft groups can share a node: nothing is global, everything is per group."""

from __future__ import annotations

import random

import pytest
from raft_harness import Cluster

from tejido.core.errors import RemoteProtocolError
from tejido.core.ids import NodeId
from tejido.core.protocol import Env, Receive
from tejido.raft import GroupId, RaftConfig, RaftNode, Role
from tejido.raft.messages import Heartbeat
from tejido.raft.types import Index, Term


def test_a_group_other_than_zero_elects_and_commits() -> None:
    cluster = Cluster()
    cluster.run("add-nodes", ["3", "group=7"])
    cluster.run("campaign", ["1"])
    cluster.run("stabilize", [])
    lines = cluster.run("put", ["1", "k", "v"]) + cluster.run("stabilize", [])
    assert any("reply #1 ok" in line for line in lines)
    assert all("group=7" in line for line in lines if "->" in line)
    assert cluster.node(NodeId(1)).role is Role.LEADER


def test_groups_are_namespaced_and_messages_routed_by_group() -> None:
    env = Env(NodeId(1), (NodeId(1), NodeId(2), NodeId(3)), random.Random(1), lambda: 0.0)
    a = RaftNode(env, RaftConfig(group=GroupId(1)))
    b = RaftNode(env, RaftConfig(group=GroupId(2)))
    assert a.key_hard_state != b.key_hard_state
    assert a.timer_election != b.timer_election
    with pytest.raises(RemoteProtocolError):
        a.step(Receive(NodeId(2), Heartbeat(GroupId(2), Term(1), Index(0), 1)))
