"""Replication rule 2b: a burst of proposals made before the runtime takes the output batch
joins the AppendEntries still waiting in the outbox, within `max_append_bytes`."""

from __future__ import annotations

import pytest

from tejido.bench.raft import RaftCoreCluster
from tejido.raft.messages import AppendEntries


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
