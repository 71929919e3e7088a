"""A read-only view of one node, for invariant checkers, tests and dashboards.

It exposes exactly what the safety properties of the paper (§5.2-5.4, Figure 3) and the
thesis (§3.6.3) talk about: current term, role, the terms of the log, the commit index,
what is durable, and a digest of the applied sequence.

A `NodeView` is a frozen copy: holding one never lets a checker change a node. Live nodes
produce it with `RaftNode.view()`; a crashed node's durable state gives one through
`view_from_storage` (what would survive if it restarted now), so "committed entries are
never lost" can count crashed replicas too.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tejido.core.ids import NodeId
from tejido.core.storage import Recovered
from tejido.raft.types import ConfState, Entry, EntryKind, GroupId, HardState, Index, Role, Term
from tejido.raft.types import Snapshot as StoredSnapshot

__all__ = ["NodeView", "view_from_storage"]


@dataclass(frozen=True, slots=True)
class NodeView:
    node: NodeId
    group: GroupId
    up: bool
    """False for a view rebuilt from a crashed node's durable storage."""
    term: Term
    vote: NodeId | None
    role: Role
    leader: NodeId | None
    commit: Index
    applied: Index
    applied_digest: bytes
    """A hash chain over the applied entries: equal at equal `applied` on every replica."""
    persisted: Index
    """The last log index durable on this node."""
    snapshot_index: Index
    snapshot_term: Term
    log_terms: tuple[Term, ...]
    """Terms of the entries snapshot_index + 1 .. last_index."""
    conf: ConfState

    @property
    def last_index(self) -> Index:
        return Index(self.snapshot_index + len(self.log_terms))

    def term_at(self, index: int) -> Term | None:
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self.log_terms[index - self.snapshot_index - 1]

    def describe(self) -> str:
        leader = "-" if self.leader is None else str(self.leader)
        return (
            f"{self.node}: {self.role.value} term={self.term} vote={self.vote} leader={leader} "
            f"last={self.last_index} commit={self.commit} applied={self.applied} "
            f"snap={self.snapshot_term}/{self.snapshot_index} {self.conf.describe()}"
        )


def view_from_storage(
    node: NodeId, recovered: Recovered, group: GroupId, initial: ConfState
) -> NodeView:
    """What `node` would hold after restarting from `recovered` (its durable storage)."""
    prefix = f"raft/{group}/"
    hard = HardState()
    if (data := recovered.state.get(prefix + "hard")) is not None:
        hard = msgspec.msgpack.decode(data, type=HardState)
    snap_index, snap_term, conf, digest = Index(0), Term(0), initial, b""
    if (data := recovered.state.get(prefix + "snapshot")) is not None:
        snap = msgspec.msgpack.decode(data, type=StoredSnapshot)
        snap_index, snap_term = snap.meta.index, snap.meta.term
        conf, digest = snap.meta.conf, snap.meta.applied_digest
    terms: list[Term] = []
    for record in recovered.records:
        entry = msgspec.msgpack.decode(record, type=Entry)
        if entry.index == snap_index and entry.term != snap_term:
            terms = []
            break
        if entry.index > snap_index:
            terms.append(entry.term)
            if entry.kind is EntryKind.CONFIG:
                conf = msgspec.msgpack.decode(entry.data, type=ConfState)
    return NodeView(
        node=node,
        group=group,
        up=False,
        term=hard.term,
        vote=hard.vote,
        role=Role.FOLLOWER,
        leader=None,
        commit=snap_index,
        applied=snap_index,
        applied_digest=digest,
        persisted=Index(snap_index + len(terms)),
        snapshot_index=snap_index,
        snapshot_term=snap_term,
        log_terms=tuple(terms),
        conf=conf,
    )
