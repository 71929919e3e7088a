"""`RaftNode.on_commands` (replication rule 1c): client commands that arrive together are
one input. Checked against the same commands given one `on_command` each: the same log,
the same outcomes, fewer messages."""

from __future__ import annotations

from tejido.bench.raft import RaftCoreCluster
from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation, Outcome
from tejido.raft.config import RaftConfig
from tejido.raft.messages import AppendEntries, ForwardProposal, Heartbeat
from tejido.raft.node import RaftNode


class _Cluster(RaftCoreCluster):
    """Keeps every reply instead of dropping it at the end of a round."""

    def __init__(self, **options: object) -> None:
        self.replies: dict[NodeId, dict[RequestId, Outcome]] = {}
        super().__init__(**options)  # type: ignore[arg-type]

    def _drop_the_rest(self) -> None:
        for node in self.nodes.values():
            mine = self.replies.setdefault(node.node_id, {})
            mine.update(node.out.replies)
        super()._drop_the_rest()


def _commands() -> list[tuple[RequestId, Operation]]:
    ops = [
        Operation("write", "x", 1),
        Operation("write", "y", 2),
        Operation("read", "x"),
        Operation("cas", "x", (1, 3)),
        Operation("write", "z", 4),
        Operation("read", "z"),
        Operation("append", "s", "a"),
    ]
    return [(RequestId(100 + i), op) for i, op in enumerate(ops)]


def _entries(node: RaftNode) -> list[bytes]:
    return [e.data for e in node.log.entries if e.data]


def _appends_to(node: RaftNode, peer: int) -> int:
    return sum(1 for dst, m in node.out.messages if dst == peer and isinstance(m, AppendEntries))


def test_a_burst_is_one_batch_with_the_outcomes_of_separate_commands() -> None:
    together, apart = _Cluster(), _Cluster()
    together.leader.on_commands(_commands())
    assert _appends_to(together.leader, 2) == 1  # every write of the burst in one append
    for request, operation in _commands():
        apart.leader.on_command(request, operation)
    assert _appends_to(apart.leader, 2) >= 1
    together.run()
    apart.run()
    assert _entries(together.leader) == _entries(apart.leader)
    answers = together.replies[NodeId(1)]
    assert answers == apart.replies[NodeId(1)]
    assert sorted(answers) == [request for request, _ in _commands()]
    assert {outcome.type for outcome in answers.values()} == {"ok"}
    assert answers[RequestId(105)].value == 4  # the read after the write it follows
    for cluster in (together, apart):
        digests = {n.applied_digest for n in cluster.nodes.values()}
        assert len(digests) == 1


def test_a_burst_too_large_for_flow_control_is_decided_command_by_command() -> None:
    """Over ``max_uncommitted_bytes`` together: each command is proposed on its own, so
    the first fits (nothing is uncommitted) and the others are refused as busy, exactly
    as separate inputs."""
    config = RaftConfig(max_uncommitted_bytes=200)
    burst = [(RequestId(i), Operation("write", f"k{i}", "v" * 100)) for i in range(1, 4)]
    together, apart = _Cluster(config=config), _Cluster(config=config)
    together.leader.on_commands(burst)
    for request, operation in burst:
        apart.leader.on_command(request, operation)
    refused = [r for r, outcome in together.leader.out.replies if outcome.type == "fail"]
    assert refused == [RequestId(2), RequestId(3)]
    assert all("busy" in (outcome.error or "") for _, outcome in together.leader.out.replies)
    together.run()
    apart.run()
    assert _entries(together.leader) == _entries(apart.leader)
    assert together.replies[NodeId(1)] == apart.replies[NodeId(1)]


def test_a_follower_forwards_each_command_of_a_burst() -> None:
    cluster = _Cluster(config=RaftConfig(forward_proposals=True))
    follower = cluster.nodes[NodeId(2)]
    burst = [(RequestId(i), Operation("write", f"k{i}", i)) for i in range(1, 4)]
    follower.on_commands(burst)
    forwarded = [m for _, m in follower.out.messages if isinstance(m, ForwardProposal)]
    assert len(forwarded) == 3
    cluster.run()
    answers = cluster.replies[NodeId(2)]
    assert sorted(answers) == [RequestId(1), RequestId(2), RequestId(3)]
    assert {outcome.type for outcome in answers.values()} == {"ok"}


def _heartbeats(node: RaftNode) -> list[Heartbeat]:
    return [m for _, m in node.out.messages if isinstance(m, Heartbeat)]


def test_reads_share_rounds_one_round_at_a_time() -> None:
    """Reads rule 5: a burst of reads is one heartbeat round; reads arriving while it is
    unconfirmed start no round of their own and get the next one, together, as soon as
    the first is confirmed; every read is answered with the value written before it."""
    cluster = _Cluster()
    leader = cluster.leader
    leader.on_command(RequestId(1), Operation("write", "x", 7))
    cluster.run()
    first = [(RequestId(10 + i), Operation("read", "x")) for i in range(5)]
    leader.on_commands(first)
    round_one = _heartbeats(leader)
    assert len(round_one) == 2  # one round: a heartbeat to each follower
    leader.on_commands([(RequestId(20 + i), Operation("read", "x")) for i in range(5)])
    leader.on_command(RequestId(30), Operation("read", "x"))
    assert _heartbeats(leader) == round_one  # no second round while the first is out
    assert not leader.out.replies
    cluster.run()
    answers = cluster.replies[NodeId(1)]
    expected = [RequestId(10 + i) for i in range(5)] + [RequestId(20 + i) for i in range(5)]
    for request in [*expected, RequestId(30)]:
        assert answers[request] == Outcome("ok", 7)
