"""Log replication, commitment and applying, with batching, pipelining and flow control.

Rules (paper §5.3-5.4, Figure 2 "AppendEntries RPC"; thesis §10.2 performance):

1. Proposals: only the leader appends new entries, at ``last_index + 1`` in its current term
   (Leader Append-Only, paper Figure 3). A follower forwards proposals to the leader when
   ``forward_proposals`` is on (thesis §6.2), else refuses with `NotLeader`. While the
   leader's entries beyond the commit index exceed ``max_uncommitted_bytes`` a proposal
   fails with "busy" (one entry is always accepted so progress is possible).
   b. A batch (`propose_batch`) becomes consecutive entries appended by one input: one
      storage append, one sync, one AppendEntries per follower (within
      ``max_append_bytes``). It is accepted or refused whole; flow control counts its total
      size (and, as for one entry, accepts it when nothing is uncommitted, like etcd).
   c. Client commands that arrive together (`RaftNode.on_commands`, one input) are appended
      the same way when the leader can take them all; otherwise each is proposed on its
      own, exactly as separate `on_command` inputs would be (so flow control, a transfer
      in progress or a follower's forwarding decide per command, as before).
2. Batching: one AppendEntries carries as many consecutive entries as fit in
   ``max_append_bytes`` (at least one). Pipelining: a follower in REPLICATE gets new appends
   without waiting for acks, up to the in-flight window (progress.py rule 2).
   b. Coalescing: while the runtime has not taken the output batch, entries appended by
      later inputs join the follower's AppendEntries still waiting in the outbox (within
      ``max_append_bytes``), so a burst of proposals costs a few messages, not one each.
      An empty AppendEntries still waiting (it carries a new commit index) becomes the
      append carrying the new entries, so under a steady load the commit index rides on
      the next batch's append instead of taking a message of its own.
   c. Records shipped in process: an AppendEntries whose entries lie within the leader's
      latest storage write carries their storage records, as the undeclared attribute
      ``records`` (never encoded: a message that crossed a wire, or a copy, lacks it), and
      a follower appending them writes those records instead of encoding the entries
      again. They are the encodings of the very entry objects carried (checked by
      identity when attached, and by count when used), so storage gets the same bytes.
3. Consistency check (paper §5.3): the follower accepts entries only after an entry matching
   (prev_index, prev_term); it deletes a conflicting suffix (never a committed entry) and
   appends. A rejection carries a hint (conflicting term and its first index) so the leader
   skips a whole term per round trip (paper §5.3, last paragraphs).
4. Commit (paper §5.4.2): the leader commits the largest index held by a quorum (both halves
   while joint) *only if that entry is from its current term*; earlier entries commit with
   it. The leader's own copy counts only once durable (node.py rule 3d). Followers learn the
   commit index from AppendEntries (capped at the last entry the append verified) and from
   heartbeats (the leader sends min(match, commit)).
   b. Telling followers (``commit_notify_delay_s`` > 0, the store's setting): when the
      new commit index is all a leader would send (every follower already has every
      entry), it holds that AppendEntries back for up to the delay instead of sending it
      in the step that committed. The next proposal's append carries the commit index
      anyway (at one client it comes within a millisecond), so followers get one message
      per write instead of two, and the step's client reply is not written behind two
      socket writes that wake the followers (each wake-up can take the leader's core on
      a small machine). When the delay ends, followers whose latest append carried an
      older commit index get an empty one. Followers learning the commit index later is
      always safe (paper §5.3: they learn it from any later AppendEntries); their
      serializable reads may lag by up to twice the delay.
      The timer is armed for the commit index reached when it was set: when it fires,
      only followers that have not had *that* index get an empty append; if a later
      commit index has not reached some follower yet, the timer is armed again for it
      (so at one client, where each write's append carries the previous commit index,
      the timer sends nothing).
5. Apply in index order, exactly once, only committed entries (State Machine Safety,
   paper §5.4.3). A client's command is answered when its entry is applied: ok with the
   state machine's result if the entry there is the one proposed, fail if another term's
   entry took its index (it was overwritten, so it never committed). The node that
   appended the entry answers, even if it has lost leadership since; for a forwarded
   proposal it sends the result to the follower, which answers its client. A node that
   installs a snapshot past such an entry cannot know its result and answers info.
   b. Committed entries are applied a range at a time: the state machine gets the range's
      commands in one `apply_batch` call (results only when a client waits for one), and
      one `Applied` event per term in the range is reported. A range ends at a
      configuration entry, so its effects (leaving a joint configuration, a removed leader
      stepping down) follow right after it, as they would one entry at a time.
   c. Deferred apply (``defer_follower_apply``, the store's setting): a follower that
      learns a new commit index from an AppendEntries or a heartbeat applies it after the
      input's outputs are carried out (`Process.request_idle`, `on_idle`), not inside
      the input. Its acknowledgement (sent from `on_durable`, once its append is
      durable) then does not wait behind the state machine's work on earlier entries:
      at one client that work was most of what a follower did between reading an
      append and writing it to disk. Any other input but `on_durable` first applies
      what was put off, so messages, timers and commands see the state exactly as if
      it had been applied at once; `on_durable` does not (it only releases messages
      that wait for the disk, and must not be held up by the apply). Only when an entry
      is applied changes, never which entries or in what order.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, cast

from tejido.core.errors import InvariantViolation, LocalProtocolError
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
from tejido.raft.types import (
    ENTRY_OVERHEAD_BYTES,
    Entry,
    EntryKind,
    Index,
    PendingProposal,
    Role,
    Term,
)

if TYPE_CHECKING:
    from tejido.raft.node import RaftNode

_data = attrgetter("data")
_term = attrgetter("term")

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
    "on_commit_timer",
    "on_heartbeat_timer",
    "propose",
    "propose_batch",
    "propose_command",
    "propose_commands",
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


def propose_batch(node: RaftNode, commands: Sequence[bytes]) -> Index | None:
    """Rule 1b: several commands as consecutive entries, all or none. Returns the index of
    the first; None when they were forwarded to the leader (one ForwardProposal each)."""
    if node.role is not Role.LEADER:
        if node.config.forward_proposals and node.leader is not None:
            for data in commands:
                _forward(node, None, data)
            return None
        raise NotLeader(node.leader)
    if not commands:
        raise LocalProtocolError("propose_batch needs at least one command")
    return append_proposals(node, commands, EntryKind.NORMAL)


def append_proposal(
    node: RaftNode, data: bytes, kind: EntryKind = EntryKind.NORMAL, force: bool = False
) -> Index:
    """Append at the leader; `force` skips the flow-control and transfer checks (used for
    the configuration entry that leaves a joint configuration)."""
    return append_proposals(node, (data,), kind, force)


def append_proposals(
    node: RaftNode, commands: Sequence[bytes], kind: EntryKind, force: bool = False
) -> Index:
    """Append `commands` as consecutive entries of `kind` in the current term (rule 1);
    returns the first index."""
    if not force:
        node.refuse_if_transferring()
    size = sum(map(len, commands)) + ENTRY_OVERHEAD_BYTES * len(commands)
    limit = node.config.max_uncommitted_bytes
    used = node.uncommitted_bytes
    if not force and used and used + size > limit:
        raise ProposalRefused(
            f"busy: {node.uncommitted_bytes} uncommitted bytes (max_uncommitted_bytes={limit})"
        )
    node.uncommitted_bytes += size
    log = node.log
    first = log.last_index + 1
    term = node.term
    indexes = cast("Iterable[Index]", range(first, first + len(commands)))
    entries = list(map(Entry, repeat(term), indexes, repeat(kind), commands))
    log.extend(entries, kind)
    node.write_entries(entries)
    broadcast_append(node, send_empty=False)
    return Index(first)


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


def propose_commands(node: RaftNode, batch: Sequence[tuple[RequestId, Operation]]) -> None:
    """Rule 1c: client writes that arrived together, as one batch of entries at the leader
    when it takes them all, else one `propose_command` each."""
    if node.role is Role.LEADER and len(batch) > 1 and node.transferee is None:
        commands = [encode_operation(operation) for _, operation in batch]
        size = sum(map(len, commands)) + ENTRY_OVERHEAD_BYTES * len(commands)
        # Together only when each would have been accepted on its own: a lone batch is
        # accepted whole even over the limit (rule 1b), separate commands are not.
        if node.uncommitted_bytes + size <= node.config.max_uncommitted_bytes:
            first = append_proposals(node, commands, EntryKind.NORMAL)
            pending, term = node.pending_proposals, node.term
            for offset, (request, _) in enumerate(batch):
                pending[Index(first + offset)] = PendingProposal(term, request, None)
            return
    for request, operation in batch:
        propose_command(node, request, operation)


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
    progress = node.progress.get(peer)
    if progress is None or (not send_empty and progress.next > node.log.last_index):
        return  # nothing new to send
    more = _send_append(node, peer, send_empty)
    while more and progress.state is ProgressState.REPLICATE:
        more = _send_append(node, peer, send_empty=False)


def _send_append(node: RaftNode, peer: NodeId, send_empty: bool) -> bool:
    """Send (or extend) one AppendEntries; True when it carried entries and more remain."""
    progress = node.progress.get(peer)
    if progress is None or (not send_empty and progress.next > node.log.last_index):
        return False  # (nothing new to send)
    cfg = node.config
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
    _ship_records(message, _records_of(node, entries))
    node.send(peer, message)
    progress.commit_sent = node.log.commit
    last = entries[-1].index if entries else prev
    progress.on_sent(last, node.log.size_between(progress.next, last))
    if progress.state is ProgressState.REPLICATE:
        node.unsent_appends[peer] = (len(node.out.messages) - 1, message)
    else:
        node.unsent_appends.pop(peer, None)  # only ever the latest append to `peer`
    return bool(entries) and last < node.log.last_index


def _extend_unsent_append(node: RaftNode, peer: NodeId, progress: Progress) -> bool:
    """Rule 2b: while the runtime has not taken the output batch yet, new entries for
    `peer` join the AppendEntries still waiting in the outbox (when that message ends
    right before them and stays within `max_append_bytes`), instead of taking a message
    and an in-flight slot each. An empty AppendEntries still waiting (sent to carry a new
    commit index) is replaced by the one that would be sent now, at its place: same
    `prev`, the entries, the current commit index. Only a runtime that runs several inputs
    before taking the batch sees this (a burst of proposals, or acknowledgements and then
    a proposal)."""
    pending = node.unsent_appends.get(peer)
    if pending is None:
        return False
    position, message = pending
    messages = node.out.messages
    if position >= len(messages) or messages[position][1] is not message:
        del node.unsent_appends[peer]  # taken by the runtime (or replaced)
        return False
    log, cfg = node.log, node.config
    if not message.entries:
        return _fill_unsent_empty_append(node, peer, progress, position, message)
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
    added = log.size_between(progress.next, entries[-1].index)
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
    shipped: tuple[bytes, ...] | None = message.__dict__.get("records")
    if shipped is not None:
        _ship_records(merged, _records_of(node, entries), shipped)
    messages[position] = (peer, merged)
    node.unsent_appends[peer] = (position, merged)
    progress.commit_sent = log.commit
    progress.extend_last_inflight(entries[-1].index, added)
    return True


def _fill_unsent_empty_append(
    node: RaftNode, peer: NodeId, progress: Progress, position: int, message: AppendEntries
) -> bool:
    """Rule 2b for an empty AppendEntries: it becomes exactly the append `_send_append`
    would send now (so the same window and size checks), in its place in the outbox."""
    log, cfg = node.log, node.config
    if (
        message.term != node.term
        or progress.next != message.prev_index + 1
        or progress.next > log.last_index
        or progress.paused(cfg.max_inflight_appends, cfg.max_inflight_bytes)
    ):
        return False
    entries = log.slice(progress.next, cfg.max_append_bytes)
    last = entries[-1].index
    filled = AppendEntries(
        cfg.group, node.term, message.prev_index, message.prev_term, log.commit, tuple(entries)
    )
    _ship_records(filled, _records_of(node, entries))
    node.out.messages[position] = (peer, filled)
    node.unsent_appends[peer] = (position, filled)
    progress.commit_sent = log.commit
    progress.on_sent(last, log.size_between(progress.next, last))
    return True


def _records_of(node: RaftNode, entries: Sequence[Entry]) -> tuple[bytes, ...] | None:
    """Rule 2c: the storage records of `entries` (consecutive entries of the log) when
    they lie within the node's latest storage write, else None."""
    written, records = node.written
    if not entries or not written:
        return None
    start = entries[0].index - written[0].index
    end = start + len(entries)
    if start < 0 or end > len(written):
        return None
    if written[start] is not entries[0] or written[end - 1] is not entries[-1]:
        return None  # (not the same objects: the log changed since that write)
    return records[start:end]


def _ship_records(
    message: AppendEntries, records: tuple[bytes, ...] | None, before: tuple[bytes, ...] = ()
) -> None:
    """Rule 2c: attach the records of `message.entries` (`before` + `records`)."""
    if records is not None:
        message.__dict__["records"] = before + records if before else records


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
    if entries:
        if entries[0].index > log.last_index:
            new = entries  # the common case: everything is beyond our end
        else:
            new = entries[log.first_new(entries) :]
            if new and new[0].index <= log.last_index:
                node.truncate_entries(new[0].index)
        if new:
            log.extend(new)
            records: tuple[bytes, ...] | None = m.__dict__.get("records")
            if records is not None and len(records) == len(m.entries):
                records = records[len(records) - len(new) :]  # (`new` ends m.entries)
            else:
                records = None
            node.write_entries(new, records)
    last_new = Index(prev + len(entries))
    if log.commit_to(min(m.commit, last_new)):
        _follower_apply(node)
    node.send_when_durable(src, AppendEntriesResponse(group, term, True, last_new))


def handle_heartbeat(node: RaftNode, src: NodeId, m: Heartbeat) -> None:
    heard_from_leader(node, src)
    if node.installing is None and node.log.commit_to(min(m.commit, node.log.last_index)):
        _follower_apply(node)
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
    me, progresses = node.env.node_id, node.progress

    def match(voter: NodeId) -> int:
        if voter == me:
            return log.persisted
        progress = progresses.get(voter)
        return progress.match if progress is not None else 0

    conf = node.conf
    if conf.outgoing or not conf.voters:
        index = min(joint_committed_index(conf, match), log.last_index)
    else:  # the common case, inline: the (n // 2 + 1)-th largest match (quorum.py rule 1)
        matches = [match(voter) for voter in conf.voters]
        matches.sort(reverse=True)
        index = Index(min(matches[len(matches) // 2], log.last_index))
    if index <= log.commit or log.term_at(index) != node.term:
        return False
    # `uncommitted_bytes` counts the entries `append_proposals` added this term: every
    # entry after the term's no-op. Take out those now committed.
    node.uncommitted_bytes -= log.size_between(max(log.commit, node.term_start) + 1, index)
    log.commit_to(index)
    node.report(Committed(Index(index)))
    apply_committed(node)
    if node.role is Role.LEADER:
        delay = node.config.commit_notify_delay_s
        last = log.last_index
        if delay > 0 and all(p.next > last for p in progresses.values()):  # rule 4b
            if not node.commit_notify_armed:
                node.commit_notify_armed = True
                node.commit_notify_index = index
                node.set_timer(node.timer_commit, delay)
        else:
            broadcast_append(node)
        reads.on_commit(node)
    return True


def on_commit_timer(node: RaftNode) -> None:
    """Rule 4b: the held-back commit index goes to followers that have not had it."""
    node.commit_notify_armed = False
    if node.role is not Role.LEADER:
        return
    due, commit = node.commit_notify_index, node.log.commit
    behind = False
    for peer, progress in node.progress.items():
        if progress.commit_sent < due:
            send_entries(node, peer, send_empty=True)
        elif progress.commit_sent < commit:
            behind = True
    if behind:  # a later commit index no append has carried yet: its own delay
        node.commit_notify_armed = True
        node.commit_notify_index = commit
        node.set_timer(node.timer_commit, node.config.commit_notify_delay_s)


def _follower_apply(node: RaftNode) -> None:
    """Rule 5c: apply now, or once this input's outputs have left."""
    if node.config.defer_follower_apply:
        if not node.apply_deferred:
            node.apply_deferred = True
            node.request_idle()
    else:
        apply_committed(node)


def apply_deferred(node: RaftNode) -> None:
    """Rule 5c: apply what a follower put off (at `on_idle`, or first thing in any other
    input but `on_durable`, so every input sees the state as if applied at once)."""
    node.apply_deferred = False
    apply_committed(node)


def apply_committed(node: RaftNode) -> None:
    """Rule 5, a committed range at a time (each range ends at a configuration entry, so
    that `membership.on_config_applied` runs right after its entry)."""
    log = node.log
    while log.applied < log.commit:
        first, last = Index(log.applied + 1), log.commit
        for at, _ in node.conf_history:
            if first <= at <= last:
                last = at
                break
        _apply_range(node, first, last)
    reads.on_applied(node)
    snapshot.maybe_take(node)


def _apply_range(node: RaftNode, first: Index, last: Index) -> None:
    log = node.log
    base = log.snapshot_index
    entries = log.entries[first - base - 1 : last - base]
    pending = node.pending_proposals
    waiting = _pending_between(pending, first, last)
    if not log.special_between(first, last):  # all NORMAL
        results = node.apply_batch(list(map(_data, entries)), bool(waiting))
        positions: dict[int, int] | None = None
    else:  # a no-op or a configuration entry: the state machine sees only the others
        normal = [e for e in entries if e.kind is EntryKind.NORMAL]
        results = node.apply_batch([e.data for e in normal], bool(waiting))
        positions = {e.index: position for position, e in enumerate(normal)}
    log.applied = last
    _report_applied(node, entries)
    for index in waiting:
        proposal = pending.pop(index)
        entry = entries[index - first]
        result: bytes | None = None
        if proposal.term == entry.term and entry.kind is EntryKind.NORMAL:
            result = results[index - first if positions is None else positions[index]]
        _answer(node, proposal, result)
    if entries[-1].kind is EntryKind.CONFIG:
        membership.on_config_applied(node, entries[-1])


def _pending_between(pending: dict[Index, PendingProposal], first: int, last: int) -> list[Index]:
    """The indexes in first..last someone waits for, in order."""
    if not pending:
        return []
    if last - first < len(pending):
        return [Index(i) for i in range(first, last + 1) if i in pending]
    return sorted(i for i in pending if first <= i <= last)


def _report_applied(node: RaftNode, entries: list[Entry]) -> None:
    """One `Applied` event per term in the range (terms never decrease along the log)."""
    start = 0
    while start < len(entries):
        term = entries[start].term
        end = (
            len(entries)
            if entries[-1].term == term
            else (bisect_right(entries, term, lo=start, key=_term))
        )
        node.report(Applied(entries[start].index, entries[end - 1].index, term))
        start = end


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
