"""The fast quorum computations against naive oracles (like etcd's quorum/quick_test.go)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tejido.core.ids import NodeId
from tejido.raft.quorum import VoteResult, committed_index, joint_committed_index, vote_result
from tejido.raft.types import ConfState

voter_sets = st.lists(st.integers(1, 9), min_size=1, max_size=7, unique=True).map(
    lambda ids: tuple(sorted(NodeId(i) for i in ids))
)
match_maps = st.dictionaries(st.integers(1, 9), st.integers(0, 20))


def naive_committed(voters: tuple[NodeId, ...], match: dict[int, int]) -> int:
    """The largest index held by a strict majority: try every candidate index."""
    best = 0
    for candidate in range(21):
        holders = sum(1 for v in voters if match.get(v, 0) >= candidate)
        if holders * 2 > len(voters):
            best = max(best, candidate)
    return best


@settings(max_examples=400)
@given(voter_sets, match_maps)
def test_committed_index_matches_oracle(voters: tuple[NodeId, ...], match: dict[int, int]) -> None:
    assert committed_index(voters, lambda v: match.get(v, 0)) == naive_committed(voters, match)


@settings(max_examples=400)
@given(voter_sets, voter_sets, match_maps)
def test_joint_committed_index_is_min_of_halves(
    new: tuple[NodeId, ...], old: tuple[NodeId, ...], match: dict[int, int]
) -> None:
    conf = ConfState(new, old)
    expected = min(naive_committed(new, match), naive_committed(old, match))
    assert joint_committed_index(conf, lambda v: match.get(v, 0)) == expected


def naive_vote(voters: tuple[NodeId, ...], votes: dict[int, bool]) -> VoteResult:
    granted = [v for v in voters if votes.get(v) is True]
    undecided = [v for v in voters if v not in votes]
    if len(granted) * 2 > len(voters):
        return VoteResult.WON
    if (len(granted) + len(undecided)) * 2 > len(voters):
        return VoteResult.PENDING
    return VoteResult.LOST


@settings(max_examples=400)
@given(voter_sets, voter_sets, st.dictionaries(st.integers(1, 9), st.booleans()), st.booleans())
def test_vote_result_matches_oracle(
    new: tuple[NodeId, ...],
    old: tuple[NodeId, ...],
    votes: dict[int, bool],
    joint: bool,
) -> None:
    conf = ConfState(new, old if joint else ())
    halves = [naive_vote(new, votes)] + ([naive_vote(old, votes)] if joint else [])
    if VoteResult.LOST in halves:
        expected = VoteResult.LOST
    elif all(h is VoteResult.WON for h in halves):
        expected = VoteResult.WON
    else:
        expected = VoteResult.PENDING
    assert vote_result(conf, {NodeId(k): v for k, v in votes.items()}) == expected
