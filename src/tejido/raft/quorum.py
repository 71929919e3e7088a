"""Quorum arithmetic: commit indexes and vote tallies for simple and joint configurations.

Rules (paper §5.3-5.4, thesis §4.3):

1. In a simple configuration of n voters, an index is committed once a majority
   (n // 2 + 1) of voters hold it: the committed index is the (n // 2 + 1)-th largest
   match index. An empty configuration commits everything (it imposes no constraint); this
   makes the joint rule below uniform.
2. In a joint configuration C_old,new an index is committed only when it is committed in
   *both* C_old and C_new: the minimum of the two committed indexes.
3. An election is won with a majority of granted votes in every half; lost once a majority
   of rejections in either half makes winning impossible; pending otherwise.

The fast commit computation sorts only the voters' match indexes; `tests/raft` compares it
with a naive oracle (try every candidate index, count holders) using hypothesis.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence

from tejido.core.ids import NodeId
from tejido.raft.types import ConfState, Index

__all__ = ["VoteResult", "committed_index", "joint_committed_index", "vote_result"]

_UNBOUNDED = Index(2**62)


class VoteResult(enum.Enum):
    WON = "won"
    LOST = "lost"
    PENDING = "pending"


def committed_index(voters: Sequence[NodeId], match: Callable[[NodeId], int]) -> Index:
    """The largest index a majority of `voters` hold (rule 1)."""
    if not voters:
        return _UNBOUNDED
    indexes = sorted((match(v) for v in voters), reverse=True)
    return Index(indexes[len(voters) // 2])


def joint_committed_index(conf: ConfState, match: Callable[[NodeId], int]) -> Index:
    """Rule 2: committed in C_new and, while joint, in C_old too."""
    index = committed_index(conf.voters, match)
    if conf.outgoing:
        index = Index(min(index, committed_index(conf.outgoing, match)))
    return index


def _majority_result(voters: Sequence[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    if not voters:
        return VoteResult.WON
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    quorum = len(voters) // 2 + 1
    if granted >= quorum:
        return VoteResult.WON
    if rejected > len(voters) - quorum:
        return VoteResult.LOST
    return VoteResult.PENDING


def vote_result(conf: ConfState, votes: Mapping[NodeId, bool]) -> VoteResult:
    """Rule 3 over a map of recorded votes (absent = not heard yet)."""
    new = _majority_result(conf.voters, votes)
    old = _majority_result(conf.outgoing, votes) if conf.outgoing else VoteResult.WON
    if VoteResult.LOST in (new, old):
        return VoteResult.LOST
    if new is VoteResult.WON and old is VoteResult.WON:
        return VoteResult.WON
    return VoteResult.PENDING
