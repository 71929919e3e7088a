"""Replication rule 2b: a burst of proposals made before the runtime takes the output batch
joins the AppendEntries still waiting in the outbox, within `max_append_bytes`."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tejido.bench.raft import RaftCoreCluster
from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.raft.messages import AppendEntries
from tejido.raft.node import RaftNode


@pytest.mark.parametrize(("max_append_bytes", "most_per_message"), [(64 * 1024, 50), (200, 1)])
def test_a_burst_of_proposals_coalesces_into_few_appends(
    max_append_bytes: int, most_per_message: int
) -> None:
    cluster = RaftCoreCluster(max_append_bytes=max_append_bytes)
    leader = cluster.leader
    first = leader.log.last_index + 1
    for i in range(50):
        leader.propose(f"{i:04d}".encode() * 32)  # 144 bytes with the entry overhead
    appends = [(dst, m) for dst, m in leader.out.messages if isinstance(m, AppendEntries)]
    for peer in (2, 3):
        mine = [m for dst, m in appends if dst == peer]
        indexes = [e.index for m in mine for e in m.entries]
        assert indexes == list(range(first, first + 50))  # each entry once, in order
        assert max(len(m.entries) for m in mine) == most_per_message
        assert all(sum(e.size_bytes for e in m.entries) <= max(max_append_bytes, 144) for m in mine)
        if most_per_message == 50:
            assert len(mine) == 1
    cluster.run()
    assert leader.log.commit == first + 49
    terms = [tuple(e.term for e in n.log.entries) for n in cluster.nodes.values()]
    assert terms[0] == terms[1] == terms[2]
    assert {n.applied_digest for n in cluster.nodes.values()} == {leader.applied_digest}


def _complete_syncs(node: RaftNode) -> None:
    if node.out.syncs:
        token = node.out.syncs[-1]
        node.out.syncs.clear()
        node.on_durable(token)


def test_an_empty_append_waiting_in_the_outbox_takes_the_next_entries() -> None:
    """Acknowledgements commit a batch (an empty AppendEntries carries the commit index to
    each follower); a proposal handled before the runtime takes the outbox fills that
    append instead of sending a second one."""
    cluster = RaftCoreCluster()
    leader = cluster.leader
    first = leader.propose_batch([b"a%d" % i for i in range(10)])
    assert first is not None
    _complete_syncs(leader)
    appends = list(leader.out.messages)
    leader.out.messages.clear()
    responses = []
    for dst, message in appends:
        follower = cluster.nodes[dst]
        follower.on_message(leader.node_id, message)
        _complete_syncs(follower)
        responses += [(dst, m) for _, m in follower.out.messages]
        follower.out.messages.clear()
    for src, message in responses:
        leader.on_message(src, message)
    assert leader.log.commit == first + 9
    waiting = [(dst, m) for dst, m in leader.out.messages if isinstance(m, AppendEntries)]
    assert sorted(dst for dst, _ in waiting) == [2, 3]
    assert all(not m.entries and m.commit == first + 9 for _, m in waiting)
    second = leader.propose_batch([b"b%d" % i for i in range(5)])
    assert second == first + 10
    filled = [(dst, m) for dst, m in leader.out.messages if isinstance(m, AppendEntries)]
    assert sorted(dst for dst, _ in filled) == [2, 3]  # still one append per follower
    for _, m in filled:
        assert (m.prev_index, m.commit) == (first + 9, first + 9)
        assert [e.index for e in m.entries] == list(range(second, second + 5))
    cluster.run()
    cluster.verify()


def test_pipelined_batches_cost_one_append_and_one_answer_per_follower() -> None:
    cluster = RaftCoreCluster()
    kinds: Counter[str] = Counter()
    for node in cluster.nodes.values():
        handle = node.on_message

        def counting(src: NodeId, message: Message, handle: Any = handle) -> None:
            kinds[type(message).__name__] += 1
            handle(src, message)

        node.on_message = counting  # type: ignore[method-assign]
    batches = [[b"%d.%d" % (r, i) for i in range(20)] for r in range(30)]
    cluster.pump(batches)
    cluster.verify()
    assert cluster.leader.log.commit == cluster.leader.log.last_index
    assert [e.data for e in cluster.leader.log.entries[-600:]] == [c for b in batches for c in b]
    # Two per batch (one to each follower), and one more each to carry the last commit.
    assert kinds == {"AppendEntries": 2 * 30 + 2, "AppendEntriesResponse": 2 * 30 + 2}
