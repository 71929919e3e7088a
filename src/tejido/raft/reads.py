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
"""

from __future__ import annotations

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


def reset(node: RaftNode) -> None:
    node.reads = ReadState()


def read(node: RaftNode, request: RequestId, operation: Operation) -> None:
    query = encode_operation(operation)
    state = node.reads
    if node.role is Role.LEADER:
        if lease_valid(node):
            _ready(node, node.log.commit, request, query)
            on_applied(node)
            return
        _pending(node).append(PendingRead(request, None, query))
        _assign(node)
    elif node.config.forward_proposals and node.leader is not None:
        ident = node.next_local_id
        node.next_local_id += 1
        state.awaiting_index[ident] = (request, query)
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
    """Rule 1: give waiting reads the commit index and a fresh heartbeat round."""
    from tejido.raft import replication

    if not node.reads.pending or node.role is not Role.LEADER or not _committed_in_term(node):
        return
    waiting = [r for r in _pending(node) if r.index is None]
    if not waiting:
        return
    replication.send_heartbeats(node)
    for pending in waiting:
        pending.index = node.log.commit
        pending.seq = node.reads.heartbeat_seq
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
    confirmed = [r for r in pending if r.index is not None and r.seq <= seq]
    if not confirmed:
        return
    state.pending = [r for r in pending if r not in confirmed]
    for r in confirmed:
        index = r.index if r.index is not None else node.log.commit
        if r.request is not None:
            _ready(node, index, r.request, r.query)
        elif r.remote is not None:
            dst, ident = r.remote
            node.send(dst, ReadIndexResponse(node.config.group, node.term, ident, index))
    on_applied(node)


def on_commit(node: RaftNode) -> None:
    _assign(node)


def on_became_leader(node: RaftNode) -> None:
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
    state.lease_until = float("-inf")
    state.round_started.clear()


def handle_read_index_request(node: RaftNode, src: NodeId, m: ReadIndexRequest) -> None:
    group = node.config.group
    if node.role is not Role.LEADER:
        error = str(NotLeader(node.leader))
        node.send(src, ReadIndexResponse(group, node.term, m.request, Index(0), error))
        return
    if lease_valid(node):
        node.send(src, ReadIndexResponse(group, node.term, m.request, node.log.commit))
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
