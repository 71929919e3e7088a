"""Membership changes by joint consensus, learners, and removing the leader.

Rules (thesis §4.1-4.3; paper §6):

1. A configuration is a log entry (kind CONFIG) and takes effect on every server as soon as
   it is in its log, committed or not (thesis §4.1). Deleting it from the log (a conflict)
   reverts to the previous configuration, so the node keeps the history of configurations
   in its log above the snapshot's.
2. Changing the voters goes through the joint configuration C_old,new (thesis §4.3, paper
   §6): the leader appends C_old,new; from then on elections and commitment need majorities
   of both C_old and C_new. When C_old,new commits the leader appends C_new; when C_new
   commits the change is complete. Only one change may be in progress: a new one is refused
   while the latest configuration is joint or not yet committed.
3. Learners (thesis §4.2.1) receive the log but neither vote nor count toward any quorum.
   Adding or removing learners only, with the voters unchanged, is a single-step change.
   A node becomes a voter only from learner, and only once it has caught up (its match
   index reached the leader's commit index), so a new voter does not stall commitment.
4. Removing the leader (thesis §4.2.2): a leader not in C_new keeps leading while C_new is
   replicated, without counting itself in C_new's majority, and steps down once C_new
   commits. A node that is not a voter of its latest configuration never campaigns.
5. Member records: a change may carry an opaque record (an address) per member; every
   later configuration keeps the records of its members and drops those of members it
   no longer has, so whoever applies a configuration learns how to reach each member
   (the runtime reads them; etcd keeps member URLs in its cluster membership the same
   way, etcd.io/docs/v3.5/op-guide/runtime-configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId
from tejido.raft.errors import ProposalRefused
from tejido.raft.messages import ConfigChanged, SteppedDown
from tejido.raft.progress import Progress
from tejido.raft.types import ConfState, Entry, EntryKind, Index, Role, SnapshotMeta

if TYPE_CHECKING:
    from tejido.raft.node import RaftNode

__all__ = [
    "change",
    "conf_at",
    "decode_conf",
    "on_compacted",
    "on_config_applied",
    "on_config_appended",
    "on_snapshot_restored",
    "on_truncated",
]

_conf_decoder = msgspec.msgpack.Decoder(ConfState)


def decode_conf(data: bytes) -> ConfState:
    return _conf_decoder.decode(data)


def conf_at(node: RaftNode, index: int) -> ConfState:
    """The configuration in force at `index` (the latest one at or before it)."""
    conf = node.conf_history[0][1]
    for at, candidate in node.conf_history:
        if at > index:
            break
        conf = candidate
    return conf


def change(
    node: RaftNode,
    voters: tuple[NodeId, ...],
    learners: tuple[NodeId, ...],
    addresses: Mapping[NodeId, str] | None = None,
) -> Index:
    """Rules 2-3 and 5, leader side: propose the next configuration."""
    from tejido.raft import replication

    node.leader_or_raise()
    node.refuse_if_transferring()
    current = node.conf
    if current.joint or node.conf_history[-1][0] > node.log.commit:
        raise ProposalRefused("busy: a configuration change is in progress")
    new_voters = tuple(sorted(set(voters)))
    new_learners = tuple(sorted(set(learners) - set(new_voters)))
    if not new_voters:
        raise LocalProtocolError("a configuration needs at least one voter")
    for voter in new_voters:
        if voter in current.voters:
            continue
        if voter not in current.learners:
            raise LocalProtocolError(f"node {voter} must join as a learner first (rule 3)")
        progress = node.progress.get(voter)
        if progress is None or progress.match < node.log.commit:
            raise ProposalRefused(f"busy: learner {voter} has not caught up yet")
    records = _records(current, addresses, {*new_voters, *current.voters, *new_learners})
    if new_voters == current.voters:
        new = ConfState(new_voters, (), new_learners, records)
    else:
        new = ConfState(new_voters, current.voters, new_learners, records)
    return replication.append_proposal(node, msgspec.msgpack.encode(new), EntryKind.CONFIG)


def on_config_appended(node: RaftNode, entry: Entry) -> None:
    """Rule 1: the new configuration is in force from now on."""
    conf = decode_conf(entry.data)
    node.conf_history.append((entry.index, conf))
    node.report(ConfigChanged(entry.index, conf))
    _sync_progress(node)


def on_truncated(node: RaftNode, from_index: int) -> None:
    """Rule 1: configurations removed from the log stop being in force."""
    while len(node.conf_history) > 1 and node.conf_history[-1][0] >= from_index:
        node.conf_history.pop()


def on_config_applied(node: RaftNode, entry: Entry) -> None:
    """Rules 2 and 4, at the leader, once a configuration entry commits."""
    if node.role is not Role.LEADER or entry.index != node.conf_history[-1][0]:
        return
    from tejido.raft import replication

    conf = decode_conf(entry.data)
    if conf.joint:
        leave = ConfState(
            conf.voters, (), conf.learners, _records(conf, None, {*conf.voters, *conf.learners})
        )
        replication.append_proposal(
            node, msgspec.msgpack.encode(leave), EntryKind.CONFIG, force=True
        )
    elif node.node_id not in conf.voters:
        node.report(SteppedDown(node.term, "removed from the configuration"))
        node.become_follower(node.term, None)


def on_compacted(node: RaftNode, index: int) -> None:
    base = conf_at(node, index)
    node.conf_history = [(Index(index), base)] + [
        (at, conf) for at, conf in node.conf_history if at > index
    ]


def on_snapshot_restored(node: RaftNode, meta: SnapshotMeta | None) -> None:
    """Rebuild the history: the snapshot's configuration, then those in the log."""
    base = (meta.index, meta.conf) if meta is not None else node.conf_history[0]
    node.conf_history = [base]
    for entry in node.log.entries:
        if entry.kind is EntryKind.CONFIG:
            node.conf_history.append((entry.index, decode_conf(entry.data)))
    _sync_progress(node)


def _records(
    current: ConfState, added: Mapping[NodeId, str] | None, members: set[NodeId]
) -> tuple[tuple[NodeId, str], ...]:
    """Rule 5: the current records plus `added`, for `members` only, sorted by id."""
    records = dict(current.addresses)
    records.update(added or {})
    return tuple(sorted((m, text) for m, text in records.items() if m in members))


def _sync_progress(node: RaftNode) -> None:
    """A leader replicates to every member of the configuration in force, and no one else."""
    if node.role is not Role.LEADER:
        return
    members = [m for m in node.conf.members() if m != node.node_id]
    for member in members:
        if member not in node.progress:
            node.progress[member] = Progress(Index(node.log.last_index + 1))
    for peer in [p for p in node.progress if p not in members]:
        del node.progress[peer]
