"""Linearizable reads without writing to the log: ReadIndex, leases, follower reads.

Rules (thesis §6.4 and §6.4.1; paper §8):

1. ReadIndex (thesis §6.4): the leader may answer a read only once it has committed an entry
   of its own term (its no-op), so that its commit index is at least every index committed
   before the read arrived. It records ``read index = commit index``, starts a heartbeat
   round (numbered `seq`), and once a quorum (itself included, both halves while joint) has
   acknowledged round `seq` or a later one, it knows no newer leader existed when the read
   arrived. The read is served when the state machine has applied the read index.
2. Leases (thesis §6.4.1): when a quorum acknowledges a heartbeat round the leader started at
   local time t, it holds a lease until ``t + election_timeout_s - max_clock_drift``: with
   CheckQuorum no follower grants a vote (election.py rule 4), and no one campaigns, until an
   election timeout after it last heard from the leader, which is after t. *Assumption:* over
   one election timeout, no two clocks' progress differs by more than ``max_clock_drift``
   seconds. A leader transferring leadership does not use its lease (TimeoutNow bypasses
   rule 4). With ``lease_reads`` the leader serves reads at its commit index while the lease
   holds, without a heartbeat round.
3. Follower reads: a follower asks the leader for a read index (ReadIndexRequest); the
   leader runs rule 1 (or 2) and answers with the index; the follower serves the read from
   its own state machine once it has applied that index.
4. A leader that loses leadership fails the reads it has not confirmed (a read has no
   effect, so "fail" is exact); confirmed reads are still served at their index.
5. One read round at a time (etcd's read loop batches the same way): reads that arrive
   while a round started for earlier reads is unconfirmed wait, unassigned, and all get
   the next round together, started as soon as that one is confirmed. Each read still
   gets a commit index and a heartbeat round both taken after it arrived (rule 1), so
   this only changes how many reads share a round, not what a read may return. Reads
   given in one input (`read_many`) share one round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation, Outcome
from tejido.raft.errors import NotLeader
from tejido.raft.kv import encode_operation
from tejido.raft.messages import ReadIndexRequest, ReadIndexResponse
from tejido.raft.quorum import joint_committed_index
from tejido.raft.types import Index, Role

if TYPE_CHECKING:
    from tejido.raft.node import RaftNode

__all__ = [
    "handle_read_index_request",
    "handle_read_index_response",
    "lease_valid",
    "on_applied",
    "on_became_leader",
    "on_commit",
    "on_leadership_lost",
    "on_round_acknowledged",
    "read",
    "read_many",
    "reset",
    "start_round",
]


@dataclass(slots=True)
class PendingRead:
    """A read waiting at the leader for its heartbeat round (rule 1)."""

    request: RequestId | None
    """A local client's request, or None for a follower's ReadIndexRequest."""
    remote: tuple[NodeId, int] | None
    query: bytes
    index: Index | None = None
    seq: int = 0


@dataclass(slots=True)
class ReadState:
    heartbeat_seq: int = 0
    round_started: dict[int, float] = field(default_factory=dict)
    """Local start time of each heartbeat round not yet acknowledged by a quorum."""
    lease_until: float = float("-inf")
    pending: list[PendingRead] = field(default_factory=list)
    awaiting_index: dict[int, tuple[RequestId, bytes]] = field(default_factory=dict)
    """Follower reads waiting for the leader's ReadIndexResponse."""
    ready: list[tuple[Index, RequestId, bytes]] = field(default_factory=list)
    """Confirmed reads waiting for the state machine to apply their index."""
    read_round: int = 0
    """The heartbeat round every assigned pending read waits for; 0: none (rule 5)."""


def reset(node: RaftNode) -> None:
    node.reads = ReadState()


def read(node: RaftNode, request: RequestId, operation: Operation) -> None:
    read_many(node, ((request, operation),))


def read_many(node: RaftNode, batch: Sequence[tuple[RequestId, Operation]]) -> None:
    """Client reads that arrived in one input: at the leader they share one round (rule 5)."""
    state = node.reads
    if node.role is Role.LEADER:
        if lease_valid(node):
            commit = node.log.commit
            for request, operation in batch:
                _ready(node, commit, request, encode_operation(operation))
            on_applied(node)
            return
        pending = state.pending
        for request, operation in batch:
            pending.append(PendingRead(request, None, encode_operation(operation)))
        _assign(node)
        return
    for request, operation in batch:
        if node.config.forward_proposals and node.leader is not None:
            ident = node.next_local_id
            node.next_local_id += 1
            state.awaiting_index[ident] = (request, encode_operation(operation))
            node.send(node.leader, ReadIndexRequest(node.config.group, node.term, ident))
        else:
            node.reply(request, Outcome("fail", error=str(NotLeader(node.leader))))


def lease_valid(node: RaftNode) -> bool:
    return (
        node.config.lease_reads
        and node.role is Role.LEADER
        and node.transferee is None
        and _committed_in_term(node)
        and node.now() < node.reads.lease_until
    )


def _committed_in_term(node: RaftNode) -> bool:
    return node.log.term_at(node.log.commit) == node.term


def _pending(node: RaftNode) -> list[PendingRead]:
    return node.reads.pending


def _ready(node: RaftNode, index: Index, request: RequestId, query: bytes) -> None:
    node.reads.ready.append((index, request, query))


def _assign(node: RaftNode) -> None:
    """Rule 1: give waiting reads the commit index and a fresh heartbeat round, unless a
    round for earlier reads is still unconfirmed (rule 5: they get the next one)."""
    from tejido.raft import replication

    state = node.reads
    if (
        not state.pending
        or state.read_round
        or node.role is not Role.LEADER
        or not _committed_in_term(node)
    ):
        return
    replication.send_heartbeats(node)
    commit, seq = node.log.commit, state.heartbeat_seq
    for pending in state.pending:  # (none is assigned: rule 5)
        pending.index = commit
        pending.seq = seq
    state.read_round = seq
    _confirm(node)


def start_round(node: RaftNode) -> int:
    state = node.reads
    state.heartbeat_seq += 1
    state.round_started[state.heartbeat_seq] = node.now()
    return state.heartbeat_seq


def on_round_acknowledged(node: RaftNode, src: NodeId, seq: int) -> None:
    progress = node.progress.get(src)
    if progress is not None and seq > progress.read_seq:
        progress.read_seq = seq
        _confirm(node)


def _confirm(node: RaftNode) -> None:
    state = node.reads
    started, pending, current = state.round_started, state.pending, state.heartbeat_seq

    def acked(voter: NodeId) -> int:
        if voter == node.node_id:
            return current
        progress = node.progress.get(voter)
        return progress.read_seq if progress is not None else 0

    seq = min(joint_committed_index(node.conf, acked), current)
    if seq in started:
        state.lease_until = max(state.lease_until, started[seq] + node.config.lease_duration_s)
    for old in [s for s in started if s <= seq]:
        del started[old]
    if not state.read_round or seq < state.read_round:
        return  # every assigned read waits for `read_round` (rule 5)
    state.read_round = 0
    confirmed: list[PendingRead] = []
    waiting: list[PendingRead] = []
    for r in pending:
        (waiting if r.index is None else confirmed).append(r)
    state.pending = waiting
    for r in confirmed:
        index = r.index if r.index is not None else node.log.commit
        if r.request is not None:
            _ready(node, index, r.request, r.query)
        elif r.remote is not None:
            dst, ident = r.remote
            node.send(dst, ReadIndexResponse(node.config.group, node.term, ident, index))
    on_applied(node)
    if waiting:
        _assign(node)  # the reads that arrived during that round (rule 5)


def on_commit(node: RaftNode) -> None:
    _assign(node)


def on_became_leader(node: RaftNode) -> None:
    node.reads.read_round = 0
    node.reads.lease_until = float("-inf")
    node.reads.round_started.clear()


def on_leadership_lost(node: RaftNode) -> None:
    """Rule 4."""
    state = node.reads
    for r in state.pending:
        if r.request is not None:
            node.reply(r.request, Outcome("fail", error="leadership lost before the read"))
        elif r.remote is not None:
            dst, ident = r.remote
            error = "leadership lost before the read"
            node.send(dst, ReadIndexResponse(node.config.group, node.term, ident, Index(0), error))
    state.pending = []
    state.read_round = 0
    state.lease_until = float("-inf")
    state.round_started.clear()


def handle_read_index_request(node: RaftNode, src: NodeId, m: ReadIndexRequest) -> None:
    group = node.config.group
    if node.role is not Role.LEADER:
        error = str(NotLeader(node.leader))
        node.send(src, ReadIndexResponse(group, node.term, m.request, Index(0), error))
        return
    if lease_valid(node):
        commit = node.log.commit
        progress = node.progress.get(src)
        if progress is not None and progress.commit_sent < commit:
            # The follower waits to apply `commit`: send it now rather than when the
            # held-back commit index leaves (replication rule 4b).
            from tejido.raft import replication

            replication.send_entries(node, src, send_empty=True)
        node.send(src, ReadIndexResponse(group, node.term, m.request, commit))
        return
    _pending(node).append(PendingRead(None, (src, m.request), b""))
    _assign(node)


def handle_read_index_response(node: RaftNode, src: NodeId, m: ReadIndexResponse) -> None:
    entry = node.reads.awaiting_index.pop(m.request, None)
    if entry is None:
        return
    request, query = entry
    if m.error is not None:
        node.reply(request, Outcome("fail", error=m.error))
        return
    _ready(node, m.index, request, query)
    on_applied(node)


def on_applied(node: RaftNode) -> None:
    """Serve every confirmed read whose index the state machine has reached."""
    ready = node.reads.ready
    if not ready:
        return
    applied = node.log.applied
    serve = [r for r in ready if r[0] <= applied]
    if not serve:
        return
    node.reads.ready = [r for r in ready if r[0] > applied]
    for _, request, query in serve:
        node.reply(request, node.outcome_of(node.sm.read(query)))
