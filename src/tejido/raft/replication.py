"""Log replication, commitment and applying, with batching, pipelining and flow control.

Rules (paper §5.3-5.4, Figure 2 "AppendEntries RPC"; thesis §10.2 performance):

1. Proposals: only the leader appends new entries, at ``last_index + 1`` in its current term
   (Leader Append-Only, paper Figure 3). A follower forwards proposals to the leader when
   ``forward_proposals`` is on (thesis §6.2), else refuses with `NotLeader`. While the
   leader's entries beyond the commit index exceed ``max_uncommitted_bytes`` a proposal
   fails with "busy" (one entry is always accepted so progress is possible).
2. Batching: one AppendEntries carries as many consecutive entries as fit in
   ``max_append_bytes`` (at least one). Pipelining: a follower in REPLICATE gets new appends
   without waiting for acks, up to the in-flight window (progress.py rule 2).
   b. Coalescing: while the runtime has not taken the output batch, entries appended by
      later inputs join the follower's AppendEntries still waiting in the outbox (within
      ``max_append_bytes``), so a burst of proposals costs a few messages, not one each.
3. Consistency check (paper §5.3): the follower accepts entries only after an entry matching
   (prev_index, prev_term); it deletes a conflicting suffix (never a committed entry) and
   appends. A rejection carries a hint (conflicting term and its first index) so the leader
   skips a whole term per round trip (paper §5.3, last paragraphs).
4. Commit (paper §5.4.2): the leader commits the largest index held by a quorum (both halves
   while joint) *only if that entry is from its current term*; earlier entries commit with
   it. The leader's own copy counts only once durable (node.py rule 3d). Followers learn the
   commit index from AppendEntries (capped at the last entry the append verified) and from
   heartbeats (the leader sends min(match, commit)).
5. Apply in index order, exactly once, only committed entries (State Machine Safety,
   paper §5.4.3). A client's command is answered when its entry is applied: ok with the
   state machine's result if the entry there is the one proposed, fail if another term's
   entry took its index (it was overwritten, so it never committed). The node that
   appended the entry answers, even if it has lost leadership since; for a forwarded
   proposal it sends the result to the follower, which answers its client. A node that
   installs a snapshot past such an entry cannot know its result and answers info.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation, Outcome
from tejido.raft import election, membership, reads, snapshot
from tejido.raft.errors import NotLeader, ProposalRefused
from tejido.raft.kv import encode_operation
from tejido.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Applied,
    Committed,
    ForwardProposal,
    ForwardProposalResponse,
    Heartbeat,
    HeartbeatResponse,
)
from tejido.raft.progress import Progress, ProgressState
from tejido.raft.quorum import joint_committed_index
from tejido.raft.types import Entry, EntryKind, Index, PendingProposal, Role, Term

if TYPE_CHECKING:
    from tejido.raft.node import RaftNode

FORWARDS_REMEMBERED = 4096
"""How many forwarded proposals a node remembers to drop duplicated copies."""

__all__ = [
    "FORWARDS_REMEMBERED",
    "broadcast_append",
    "handle_append_entries",
    "handle_append_response",
    "handle_forward_proposal",
    "handle_forward_response",
    "handle_heartbeat",
    "handle_heartbeat_response",
    "maybe_commit",
    "on_heartbeat_timer",
    "propose",
    "propose_command",
    "send_entries",
]


# Proposals (rule 1) ---------------------------------------------------------------------------
def propose(node: RaftNode, data: bytes, kind: EntryKind = EntryKind.NORMAL) -> Index | None:
    if node.role is not Role.LEADER:
        if node.config.forward_proposals and node.leader is not None:
            _forward(node, None, data)
            return None
        raise NotLeader(node.leader)
    return append_proposal(node, data, kind)


def append_proposal(
    node: RaftNode, data: bytes, kind: EntryKind = EntryKind.NORMAL, force: bool = False
) -> Index:
    """Append at the leader; `force` skips the flow-control and transfer checks (used for
    the configuration entry that leaves a joint configuration)."""
    if not force:
        node.refuse_if_transferring()
    entry = Entry(node.term, Index(node.log.last_index + 1), kind, data)
    limit = node.config.max_uncommitted_bytes
    used = node.uncommitted_bytes
    if not force and used and used + entry.size_bytes > limit:
        raise ProposalRefused(
            f"busy: {node.uncommitted_bytes} uncommitted bytes (max_uncommitted_bytes={limit})"
        )
    node.uncommitted_bytes += entry.size_bytes
    node.log.append(entry)
    node.write_entries([entry])
    broadcast_append(node, send_empty=False)
    return entry.index


def propose_command(node: RaftNode, request: RequestId, operation: Operation) -> None:
    """A client write: append it at the leader, or forward it, or refuse."""
    data = encode_operation(operation)
    if node.role is not Role.LEADER and node.config.forward_proposals and node.leader is not None:
        _forward(node, request, data)
        return
    try:
        index = propose(node, data)
    except (NotLeader, ProposalRefused) as error:
        node.reply(request, Outcome("fail", error=str(error)))
        return
    if index is not None:
        node.pending_proposals[index] = PendingProposal(node.term, request, None)


def _forward(node: RaftNode, request: RequestId | None, data: bytes) -> None:
    if node.leader is None:
        raise NotLeader(None)
    ident = node.next_local_id
    node.next_local_id += 1
    if request is not None:
        node.forwarded[ident] = request
    node.send(node.leader, ForwardProposal(node.config.group, node.term, ident, data))


def handle_forward_proposal(node: RaftNode, src: NodeId, m: ForwardProposal) -> None:
    """Append a follower's proposal; answer once applied (rule 5), or refuse now. A copy
    of a proposal already seen (the network duplicates messages) is ignored: appending it
    again would apply it twice, and a refusal followed by an append would contradict it."""
    group, term = node.config.group, node.term
    seen = node.forwards_seen
    if (src, m.request) in seen:
        return
    seen[(src, m.request)] = None
    if len(seen) > FORWARDS_REMEMBERED:
        del seen[next(iter(seen))]
    try:
        if node.role is not Role.LEADER:
            raise NotLeader(node.leader)
        index = append_proposal(node, m.data)
    except (NotLeader, ProposalRefused) as error:
        node.send(src, ForwardProposalResponse(group, term, m.request, error=str(error)))
        return
    node.pending_proposals[index] = PendingProposal(node.term, None, (src, m.request))


def handle_forward_response(node: RaftNode, src: NodeId, m: ForwardProposalResponse) -> None:
    request = node.forwarded.pop(m.request, None)
    if request is None:
        return
    if m.result is None:
        node.reply(request, Outcome("fail", error=m.error or "refused by the leader"))
    else:
        node.reply(request, node.outcome_of(m.result))


# Sending (rule 2) -----------------------------------------------------------------------------
def broadcast_append(node: RaftNode, send_empty: bool = True) -> None:
    for peer in node.progress:
        send_entries(node, peer, send_empty)


def send_entries(node: RaftNode, peer: NodeId, send_empty: bool = False) -> None:
    """Send what the window allows: one probe, or a pipeline of batches."""
    sent = _send_append(node, peer, send_empty)
    progress = node.progress.get(peer)
    while sent and progress is not None and progress.state is ProgressState.REPLICATE:
        sent = _send_append(node, peer, send_empty=False)


def _send_append(node: RaftNode, peer: NodeId, send_empty: bool) -> bool:
    progress = node.progress.get(peer)
    cfg = node.config
    if progress is None:
        return False
    if progress.state is ProgressState.REPLICATE and _extend_unsent_append(node, peer, progress):
        return progress.next <= node.log.last_index  # more to send only if it was full
    if progress.paused(cfg.max_inflight_appends, cfg.max_inflight_bytes):
        return False
    prev = Index(progress.next - 1)
    prev_term = node.log.term_at(prev)
    if prev_term is None:
        snapshot.start_sending(node, peer)
        return False
    entries = (
        node.log.slice(progress.next, cfg.max_append_bytes) if prev < node.log.last_index else []
    )
    if not entries and not send_empty:
        return False
    message = AppendEntries(cfg.group, node.term, prev, prev_term, node.log.commit, tuple(entries))
    node.send(peer, message)
    last = entries[-1].index if entries else prev
    progress.on_sent(last, sum(e.size_bytes for e in entries))
    if entries and progress.state is ProgressState.REPLICATE:
        node.unsent_appends[peer] = (len(node.out.messages) - 1, message)
    return bool(entries)


def _extend_unsent_append(node: RaftNode, peer: NodeId, progress: Progress) -> bool:
    """Rule 2b: while the runtime has not taken the output batch yet, new entries for
    `peer` join the AppendEntries still waiting in the outbox (when that message ends
    right before them and stays within `max_append_bytes`), instead of taking a message
    and an in-flight slot each. Only a runtime that runs several inputs before taking the
    batch sees this (a burst of proposals)."""
    pending = node.unsent_appends.get(peer)
    if pending is None:
        return False
    position, message = pending
    messages = node.out.messages
    if position >= len(messages) or messages[position][1] is not message:
        del node.unsent_appends[peer]  # taken by the runtime (or replaced)
        return False
    log, cfg = node.log, node.config
    last = message.entries[-1].index
    if (
        message.term != node.term
        or progress.next != last + 1
        or last >= log.last_index
        or not progress.inflights
        or progress.inflights[-1][0] != last
    ):
        return False
    size = progress.inflights[-1][1]
    entries = log.slice(progress.next, cfg.max_append_bytes - size)
    added = sum(e.size_bytes for e in entries)
    if size + added > cfg.max_append_bytes or (
        progress.inflight_bytes + added > cfg.max_inflight_bytes
    ):
        return False
    merged = AppendEntries(
        cfg.group,
        node.term,
        message.prev_index,
        message.prev_term,
        log.commit,
        message.entries + tuple(entries),
    )
    messages[position] = (peer, merged)
    node.unsent_appends[peer] = (position, merged)
    progress.extend_last_inflight(entries[-1].index, added)
    return True


# Follower side (rule 3) -----------------------------------------------------------------------
def heard_from_leader(node: RaftNode, src: NodeId) -> None:
    if node.role is Role.LEADER:
        raise InvariantViolation(
            "election-safety", f"two leaders in term {node.term}: {node.node_id} and {src}"
        )
    if node.role is not Role.FOLLOWER or node.leader != src:
        node.become_follower(node.term, src)
    node.last_leader_contact = node.now()
    election.reset_election_timer(node)


def handle_append_entries(node: RaftNode, src: NodeId, m: AppendEntries) -> None:
    heard_from_leader(node, src)
    if node.installing is not None:
        return  # snapshot.py rule 4: nothing is appended until the snapshot is durable
    group, term, log = node.config.group, node.term, node.log
    prev, prev_term, entries = m.prev_index, m.prev_term, m.entries
    if prev < log.commit:
        # Everything up to the commit index is known to match (Log Matching).
        entries = tuple(e for e in entries if e.index > log.commit)
        if not entries or entries[0].index != log.commit + 1:
            node.send_when_durable(src, AppendEntriesResponse(group, term, True, log.commit))
            return
        prev, prev_term = log.commit, log.term_at(log.commit) or Term(0)
    if not log.matches(prev, prev_term):
        hint_term, hint_index = log.conflict_hint(prev)
        reject = AppendEntriesResponse(group, term, False, prev, hint_index, hint_term)
        node.send_when_durable(src, reject)
        return
    new = list(entries[log.first_new(entries) :])
    if new:
        if new[0].index <= log.last_index:
            node.truncate_entries(new[0].index)
        for entry in new:
            log.append(entry)
        node.write_entries(new)
    last_new = Index(prev + len(entries))
    if log.commit_to(min(m.commit, last_new)):
        apply_committed(node)
    node.send_when_durable(src, AppendEntriesResponse(group, term, True, last_new))


def handle_heartbeat(node: RaftNode, src: NodeId, m: Heartbeat) -> None:
    heard_from_leader(node, src)
    if node.installing is None and node.log.commit_to(min(m.commit, node.log.last_index)):
        apply_committed(node)
    node.send(src, HeartbeatResponse(node.config.group, node.term, m.seq))


# Leader side ---------------------------------------------------------------------------------
def handle_append_response(node: RaftNode, src: NodeId, m: AppendEntriesResponse) -> None:
    progress = node.progress.get(src) if node.role is Role.LEADER else None
    if progress is None:
        return
    progress.recent_active = True
    if m.success:
        cfg = node.config
        was_paused = progress.paused(cfg.max_inflight_appends, cfg.max_inflight_bytes)
        committed = False
        if progress.on_accepted(m.index):
            committed = maybe_commit(node)  # a commit broadcasts appends to everyone
            election.maybe_send_timeout_now(node, src)
        # A follower that was waiting (probe) may not know the commit index yet.
        send_entries(node, src, send_empty=was_paused and not committed)
        return
    next_hint = m.hint_index
    if m.hint_term:
        last_of_term = node.log.last_index_of_term(m.hint_term, m.index)
        if last_of_term is not None:
            next_hint = Index(last_of_term + 1)
    if progress.on_rejected(m.index, next_hint):
        send_entries(node, src, send_empty=True)


def maybe_commit(node: RaftNode) -> bool:
    """Rule 4; on success, tell the followers (an append carries the commit index)."""
    if node.role is not Role.LEADER:
        return False
    log = node.log

    def match(voter: NodeId) -> int:
        if voter == node.node_id:
            return log.persisted
        progress = node.progress.get(voter)
        return progress.match if progress is not None else 0

    index = min(joint_committed_index(node.conf, match), log.last_index)
    if index <= log.commit or log.term_at(index) != node.term:
        return False
    # `uncommitted_bytes` counts the entries `append_proposal` added this term (every entry
    # of this term but the no-op); take out those now committed. After the term's first
    # commit it equals the size of every entry past the commit index (all of them this
    # term's proposals).
    term = node.term
    start = log.commit - log.snapshot_index
    node.uncommitted_bytes -= sum(
        e.size_bytes
        for e in log.entries[start : index - log.snapshot_index]
        if e.term == term and e.kind is not EntryKind.NOOP
    )
    log.commit_to(index)
    node.report(Committed(Index(index)))
    apply_committed(node)
    if node.role is Role.LEADER:
        broadcast_append(node)
        reads.on_commit(node)
    return True


def apply_committed(node: RaftNode) -> None:
    """Rule 5."""
    log = node.log
    apply, advance_digest, report = node.sm.apply, node.advance_digest, node.report
    normal = EntryKind.NORMAL
    while log.applied < log.commit:
        entry = log.entries[log.applied - log.snapshot_index]  # the entry at applied + 1
        result: bytes | None = None
        if entry.kind is normal:
            result = apply(entry.data)
        log.applied = entry.index
        advance_digest(entry)
        report(Applied(entry.index, entry.term))
        pending = node.pending_proposals.pop(entry.index, None)
        if pending is not None:
            _answer(node, pending, None if pending.term != entry.term else result)
        if entry.kind is EntryKind.CONFIG:
            membership.on_config_applied(node, entry)
    reads.on_applied(node)
    snapshot.maybe_take(node)


def _answer(node: RaftNode, pending: PendingProposal, result: bytes | None) -> None:
    """Rule 5: `result` None means another term's entry took the index (fail)."""
    error = "overwritten by a newer leader" if result is None else None
    if pending.request is not None:
        outcome = Outcome("fail", error=error) if result is None else node.outcome_of(result)
        node.reply(pending.request, outcome)
    elif pending.origin is not None:
        dst, ident = pending.origin
        response = ForwardProposalResponse(node.config.group, node.term, ident, result, error)
        node.send(dst, response)


# Heartbeats ---------------------------------------------------------------------------------
def on_heartbeat_timer(node: RaftNode) -> None:
    if node.role is not Role.LEADER:
        return
    node.set_timer(node.timer_heartbeat, node.config.heartbeat_interval_s)
    send_heartbeats(node)


def send_heartbeats(node: RaftNode) -> None:
    seq = reads.start_round(node)
    for peer, progress in node.progress.items():
        commit = Index(min(progress.match, node.log.commit))
        node.send(peer, Heartbeat(node.config.group, node.term, commit, seq))


def handle_heartbeat_response(node: RaftNode, src: NodeId, m: HeartbeatResponse) -> None:
    progress = node.progress.get(src) if node.role is Role.LEADER else None
    if progress is None:
        return
    progress.on_heartbeat_response(node.config.max_inflight_appends, node.config.max_inflight_bytes)
    reads.on_round_acknowledged(node, src, m.seq)
    if progress.state is ProgressState.SNAPSHOT:
        snapshot.send_chunk(node, src)  # resume a chunk that may have been lost
    elif progress.match < node.log.last_index:
        send_entries(node, src, send_empty=True)
