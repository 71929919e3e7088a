"""Forwarded proposals survive message duplication: appended once, answered once."""

from __future__ import annotations

from raft_harness import Cluster

from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.raft.messages import ForwardProposal


def test_a_duplicated_forward_is_appended_once() -> None:
    cluster = Cluster()
    for command in ("add-nodes 3", "campaign 1", "stabilize"):
        words = command.split()
        cluster.run(words[0], words[1:])
    request = cluster.command(NodeId(2), Operation("cas", "k", (None, 1)))
    [forward] = [m for m in cluster.queue if isinstance(m[2], ForwardProposal)]
    cluster.queue.append(forward)  # the network delivers a second copy
    cluster.stabilize()
    leader = cluster.node(NodeId(1))
    casts = [e for e in leader.log.entries if e.data == forward[2].data]
    assert len(casts) == 1
    assert cluster.replies[request].type == "ok"
