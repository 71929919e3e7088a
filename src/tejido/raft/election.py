"""Leader election: timeouts, PreVote, votes, CheckQuorum and leadership transfer.

Rules (paper §5.2 and §5.4.1; thesis §3.10, §4.2.3, §6.2, §9.6):

1. A follower (or candidate) that hears nothing from a leader for a randomized election
   timeout, drawn from ``[T, 2T)`` with the node's seeded rng, campaigns (paper §5.2). Only
   voters of the node's current configuration campaign; learners never do.
2. PreVote (thesis §9.6): with ``pre_vote`` the node first asks "would you vote for me in
   term + 1?" without changing any term. A peer says yes only if the candidate's log is at
   least as up-to-date as its own (paper §5.4.1) and it has not heard from a leader within
   the minimum election timeout. Only with a quorum of yeses does the node campaign for real.
3. A real campaign increments the term and votes for itself, and asks every other voter
   once that is durable (node.py rules 3b-3c); its own vote counts from then on. Each
   server grants at most one vote per term, first come first served, to a candidate whose
   log is up-to-date; the grant is persisted before it is sent (node.py rule 3b). A
   majority (in both halves of a joint configuration) wins (paper §5.2, thesis §4.3).
4. Disruptive servers (thesis §4.2.3): with ``check_quorum`` a server that heard from a
   leader within the election timeout ignores RequestVote with a higher term, unless the
   request comes from a leadership transfer. With ``lease_reads``, a server that
   restarted less than an election timeout ago also ignores them: it cannot know whether
   it acknowledged a leader's heartbeat just before crashing, and leases (reads.py rule 2)
   rely on that. (This costs up to an election timeout of availability after a restart,
   so it is on only when leases are.)
5. CheckQuorum (thesis §6.2): every election timeout the leader checks that a quorum
   (itself included) was heard from since the last check, and steps down otherwise.
6. Leadership transfer (thesis §3.10): the leader stops accepting proposals, brings the
   target up to date, then sends TimeoutNow; the target campaigns at once, skipping PreVote,
   and its RequestVote carries ``transfer`` so voters ignore rule 4. The transfer is
   abandoned after an election timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId
from tejido.raft import reads, replication
from tejido.raft.errors import NotLeader
from tejido.raft.messages import (
    BecameCandidate,
    BecameLeader,
    BecamePreCandidate,
    PreVote,
    PreVoteResponse,
    RequestVote,
    RequestVoteResponse,
    SteppedDown,
    TimeoutNow,
)
from tejido.raft.progress import Progress
from tejido.raft.quorum import VoteResult, vote_result
from tejido.raft.types import Entry, EntryKind, Index, Role, Term

if TYPE_CHECKING:
    from tejido.raft.node import RaftNode

__all__ = [
    "campaign",
    "handle_pre_vote",
    "handle_request_vote",
    "handle_timeout_now",
    "handle_vote_response",
    "in_lease",
    "on_check_quorum",
    "on_election_timeout",
    "reset_election_timer",
    "transfer_leadership",
]


def reset_election_timer(node: RaftNode) -> None:
    """Rule 1: a fresh randomized timeout in [T, 2T)."""
    timeout = node.config.election_timeout_s
    node.set_timer(node.timer_election, node.env.rng.uniform(timeout, 2 * timeout))


def heard_from_leader_recently(node: RaftNode) -> bool:
    if node.role is Role.LEADER:
        return True
    contact = node.last_leader_contact
    return (
        node.leader is not None
        and contact is not None
        and node.now() - contact < node.config.election_timeout_s
    )


def in_lease(node: RaftNode) -> bool:
    """Rule 4: ignore higher-term RequestVotes while a leader is known to be alive, and,
    with leases, for one election timeout after a restart (a restart forgets when we last
    heard from the leader; a leader's read lease counts on us not voting)."""
    if not node.config.check_quorum:
        return False
    restarted = node.started_at is not None and node.config.lease_reads
    just_restarted = restarted and node.now() - (node.started_at or 0.0) < (
        node.config.election_timeout_s
    )
    return heard_from_leader_recently(node) or just_restarted


def on_election_timeout(node: RaftNode) -> None:
    if node.role is Role.LEADER:
        return
    reset_election_timer(node)
    campaign(node, transfer=False)


def campaign(node: RaftNode, transfer: bool) -> None:
    if node.role is Role.LEADER or not node.conf.is_voter(node.node_id):
        reset_election_timer(node)
        return
    if node.config.pre_vote and not transfer:
        _pre_campaign(node)
    else:
        _campaign(node, transfer)


def _pre_campaign(node: RaftNode) -> None:
    node.role = Role.PRE_CANDIDATE
    node.leader = None
    node.votes = {node.node_id: True}
    next_term = Term(node.term + 1)
    node.report(BecamePreCandidate(next_term))
    reset_election_timer(node)
    request = PreVote(node.config.group, next_term, node.log.last_index, node.log.last_term)
    for peer in _other_voters(node):
        node.send(peer, request)
    _tally(node)


def _campaign(node: RaftNode, transfer: bool) -> None:
    node.role = Role.CANDIDATE
    node.leader = None
    node.term = Term(node.term + 1)
    node.vote = node.node_id
    node.votes = {}
    node.persist_hard_state()
    node.report(BecameCandidate(node.term))
    reset_election_timer(node)
    # Rule 3 / node.py rule 3c: our own vote counts once the vote for ourselves is durable.
    node.send_when_durable(
        node.node_id, RequestVoteResponse(node.config.group, node.term, granted=True)
    )
    request = RequestVote(
        node.config.group, node.term, node.log.last_index, node.log.last_term, transfer
    )
    # node.py rule 3b: the request leaves once the new term and our vote are durable, so a
    # crash cannot make us campaign (and lead) in this term a second time.
    for peer in _other_voters(node):
        node.send_when_durable(peer, request)


def _other_voters(node: RaftNode) -> list[NodeId]:
    conf = node.conf
    voters = sorted({*conf.voters, *conf.outgoing})
    return [v for v in voters if v != node.node_id]


def handle_pre_vote(node: RaftNode, src: NodeId, m: PreVote) -> None:
    """Rule 2; the caller (check_term) already dropped pre-votes with a stale term."""
    granted = (
        m.term > node.term
        and not heard_from_leader_recently(node)
        and node.log.is_up_to_date(m.last_index, m.last_term)
    )
    node.send(src, PreVoteResponse(node.config.group, m.term if granted else node.term, granted))


def handle_request_vote(node: RaftNode, src: NodeId, m: RequestVote) -> None:
    """Rule 3: at most one vote per term, only for an up-to-date log, persisted first."""
    can_vote = node.vote == src or (node.vote is None and node.leader is None)
    granted = can_vote and node.log.is_up_to_date(m.last_index, m.last_term)
    if granted:
        node.vote = src
        node.persist_hard_state()
        reset_election_timer(node)
    node.send_when_durable(src, RequestVoteResponse(node.config.group, node.term, granted))


def handle_vote_response(
    node: RaftNode, src: NodeId, m: PreVoteResponse | RequestVoteResponse
) -> None:
    if isinstance(m, PreVoteResponse):
        # A grant names the proposed term; a refusal names the voter's (not higher) term.
        if node.role is not Role.PRE_CANDIDATE or (m.granted and m.term != node.term + 1):
            return
    elif node.role is not Role.CANDIDATE or m.term != node.term:
        return
    node.votes[src] = m.granted
    _tally(node)


def _tally(node: RaftNode) -> None:
    match vote_result(node.conf, node.votes):
        case VoteResult.WON:
            if node.role is Role.PRE_CANDIDATE:
                _campaign(node, transfer=False)
            else:
                become_leader(node)
        case VoteResult.LOST:
            node.become_follower(node.term, None)
        case VoteResult.PENDING:
            pass


def become_leader(node: RaftNode) -> None:
    """Paper §5.2-5.4.2: reset every follower's progress and start the term with a no-op."""
    node.role = Role.LEADER
    node.leader = node.node_id
    node.votes = {}
    node.transferee = None
    node.uncommitted_bytes = 0
    next_index = Index(node.log.last_index + 1)
    node.term_start = next_index
    node.progress = {
        peer: Progress(next_index) for peer in node.conf.members() if peer != node.node_id
    }
    node.cancel_timer(node.timer_election)
    node.set_timer(node.timer_heartbeat, node.config.heartbeat_interval_s)
    if node.config.check_quorum:
        node.set_timer(node.timer_check_quorum, node.config.election_timeout_s)
    node.report(BecameLeader(node.term))
    reads.on_became_leader(node)
    noop = Entry(node.term, next_index, EntryKind.NOOP)
    node.log.append(noop)
    node.write_entries([noop])
    replication.broadcast_append(node)


def on_check_quorum(node: RaftNode) -> None:
    """Rule 5."""
    if node.role is not Role.LEADER:
        return
    active = {node.node_id: True}
    for peer, progress in node.progress.items():
        if progress.recent_active:
            active[peer] = True
        progress.recent_active = False
    if vote_result(node.conf, active) is not VoteResult.WON:
        node.report(SteppedDown(node.term, "check-quorum: no quorum heard from"))
        node.become_follower(node.term, None)
        return
    node.set_timer(node.timer_check_quorum, node.config.election_timeout_s)


def transfer_leadership(node: RaftNode, target: NodeId) -> None:
    """Rule 6, leader side."""
    if node.role is not Role.LEADER:
        raise NotLeader(node.leader)
    if target == node.node_id or not node.conf.is_voter(target):
        raise LocalProtocolError(f"cannot transfer leadership to {target}: not another voter")
    node.transferee = target
    node.set_timer(node.timer_transfer, node.config.election_timeout_s)
    maybe_send_timeout_now(node, target)


def maybe_send_timeout_now(node: RaftNode, peer: NodeId) -> None:
    progress = node.progress.get(peer)
    if node.transferee != peer or progress is None:
        return
    if progress.match == node.log.last_index:
        node.send(peer, TimeoutNow(node.config.group, node.term))
    else:
        replication.send_entries(node, peer)


def handle_timeout_now(node: RaftNode, src: NodeId, m: TimeoutNow) -> None:
    """Rule 6, target side: campaign now, skipping PreVote."""
    if node.role is Role.LEADER:
        return
    campaign(node, transfer=True)
