"""Snapshots, log compaction, chunked InstallSnapshot, and restart recovery.

Rules (paper §7, Figure 13; thesis §5.1-5.4):

1. A node snapshots its own state machine at its applied index (the application asks with
   `take_snapshot`, or every ``snapshot_threshold_entries`` applied entries). The snapshot
   records the index, its term, the configuration in force there and the applied digest.
   b. Staggered: with a threshold T, the node of rank r (its position among the
      `Env.nodes`, of n) snapshots when its applied index crosses one of the points
      ``k * T + r * T // n`` (k >= 1), and at least ``T // 2`` entries after its last
      snapshot. Every
      member applies the same entries, so with the same points they would all encode,
      write and fsync a snapshot at the same moment and a write would wait for the
      slowest of them; staggered, at most one member of a healthy group is slowed down
      at a time and the others still make a quorum. Points are absolute indexes, so a
      snapshot installed from the leader does not bring a follower into its phase.
2. The snapshot is written (``put``) and synced *before* the log is compacted behind it
   (node.py rule 3e): after any crash either the old log or the new snapshot covers every
   committed entry. ``snapshot_keep_entries`` entries before the snapshot stay in the log
   so that followers slightly behind catch up without a snapshot.
3. A leader whose follower needs compacted entries moves it to SNAPSHOT (progress.py) and
   sends the snapshot in chunks of ``snapshot_chunk_bytes``, one chunk per round trip. The
   follower accepts a chunk only at the offset it expects and always answers with the next
   offset it needs, so a lost chunk is resent from there (a heartbeat response also
   triggers a resend); a chunk with offset 0 starts over.
4. A follower installs a complete snapshot only if it is beyond its commit index. It writes
   and syncs the snapshot, and until then accepts no entries; then it keeps the log suffix
   after the snapshot if the entry at the snapshot index matches (paper §7: "retain
   entries following it"), else discards the whole log, restores the state machine, and
   acknowledges once that is durable.
5. Recovery (`recover`): hard state, snapshot and log are read back; log entries at or below
   the snapshot are ignored (a compaction may have been lost), and a log that disagrees with
   the snapshot at its index is discarded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Outcome
from tejido.core.storage import Recovered
from tejido.raft import membership, reads, replication
from tejido.raft.log import RaftLog
from tejido.raft.messages import (
    InstallSnapshot,
    InstallSnapshotResponse,
    SnapshotInstalled,
    SnapshotTaken,
)
from tejido.raft.progress import ProgressState
from tejido.raft.types import Index, Role, Snapshot, SnapshotMeta, Term

if TYPE_CHECKING:
    from tejido.raft.node import RaftNode

__all__ = [
    "handle_install_response",
    "handle_install_snapshot",
    "maybe_take",
    "recover",
    "send_chunk",
    "start_sending",
    "take",
]


# Own snapshots (rules 1-2) -----------------------------------------------------------------
def maybe_take(node: RaftNode) -> None:
    threshold = node.config.snapshot_threshold_entries
    if not threshold:
        return
    taken = node.snapshot.meta.index if node.snapshot else node.log.snapshot_index
    applied = node.log.applied
    if applied - taken < max(1, threshold // 2):
        return
    offset = snapshot_offset(node.env.nodes, node.env.node_id, threshold)  # rule 1b
    if (applied - offset) // threshold > max(0, (taken - offset) // threshold):
        take(node)


def snapshot_offset(nodes: tuple[NodeId, ...], me: NodeId, threshold: int) -> int:
    """Rule 1b: where this node's snapshot points sit within each run of `threshold`."""
    ranked = sorted(nodes)
    if me not in ranked:
        return 0
    return threshold * ranked.index(me) // len(ranked)


def take(node: RaftNode) -> None:
    log = node.log
    index = log.applied
    if index == 0 or (node.snapshot is not None and node.snapshot.meta.index >= index):
        return
    term = log.term_at(index)
    if term is None:
        raise InvariantViolation("snapshot-term", f"no term for applied index {index}")
    meta = SnapshotMeta(index, term, membership.conf_at(node, index), node.applied_digest)
    snap = Snapshot(meta, node.sm.snapshot())
    node.snapshot = snap
    node.put(node.key_snapshot, node.encode(snap))
    node.needs_sync = True
    node.report(SnapshotTaken(index, term))
    node.when_durable(lambda: _compact(node, snap))


def _compact(node: RaftNode, snap: Snapshot) -> None:
    index = Index(snap.meta.index - node.config.snapshot_keep_entries)
    if node.snapshot is not snap or index <= node.log.snapshot_index:
        return  # superseded by a newer snapshot, or nothing to drop yet
    node.log.compact(index)
    node.compact_log(index + 1)
    membership.on_compacted(node, index)


# Leader side (rule 3) -----------------------------------------------------------------------
def start_sending(node: RaftNode, peer: NodeId) -> None:
    if node.snapshot is None:
        raise InvariantViolation("snapshot-available", "log compacted without a snapshot")
    node.progress[peer].become_snapshot(node.snapshot.meta.index)
    send_chunk(node, peer)


def send_chunk(node: RaftNode, peer: NodeId) -> None:
    progress = node.progress.get(peer)
    snap = node.snapshot
    if progress is None or snap is None or progress.state is not ProgressState.SNAPSHOT:
        return
    if progress.pending_snapshot != snap.meta.index:
        progress.become_snapshot(snap.meta.index)  # a newer snapshot replaced the old one
    offset = progress.snapshot_offset
    chunk = snap.data[offset : offset + node.config.snapshot_chunk_bytes]
    done = offset + len(chunk) >= len(snap.data)
    node.send(peer, InstallSnapshot(node.config.group, node.term, snap.meta, offset, chunk, done))


def handle_install_response(node: RaftNode, src: NodeId, m: InstallSnapshotResponse) -> None:
    progress = node.progress.get(src) if node.role is Role.LEADER else None
    if progress is None:
        return
    progress.recent_active = True
    if m.done:
        if progress.on_accepted(m.index):
            replication.maybe_commit(node)
        replication.send_entries(node, src, send_empty=True)
    elif progress.state is ProgressState.SNAPSHOT and m.index == progress.pending_snapshot:
        progress.snapshot_offset = m.next_offset
        send_chunk(node, src)


# Follower side (rule 4) ---------------------------------------------------------------------
def handle_install_snapshot(node: RaftNode, src: NodeId, m: InstallSnapshot) -> None:
    replication.heard_from_leader(node, src)
    group, meta = node.config.group, m.meta
    if meta.index <= node.log.commit:
        done = InstallSnapshotResponse(group, node.term, meta.index, len(m.data), True)
        node.send_when_durable(src, done)
        return
    if node.installing is not None:
        return  # the acknowledgement follows once the install is durable
    incoming = node.incoming_snapshot
    if m.offset == 0:
        incoming = (m, bytearray())
    elif incoming is None or incoming[0].meta != meta or len(incoming[1]) != m.offset:
        expected = len(incoming[1]) if incoming is not None and incoming[0].meta == meta else 0
        node.send(src, InstallSnapshotResponse(group, node.term, meta.index, expected, False))
        return
    incoming[1].extend(m.data)
    node.incoming_snapshot = incoming
    if not m.done:
        received = len(incoming[1])
        node.send(src, InstallSnapshotResponse(group, node.term, meta.index, received, False))
        return
    node.incoming_snapshot = None
    snap = Snapshot(meta, bytes(incoming[1]))
    node.installing = meta.index
    node.put(node.key_snapshot, node.encode(snap))
    node.needs_sync = True
    node.when_durable(lambda: _install(node, snap, src))


def _install(node: RaftNode, snap: Snapshot, leader: NodeId) -> None:
    node.installing = None
    meta, log = snap.meta, node.log
    if meta.index > log.commit:
        keep_suffix = meta.index <= log.last_index and log.term_at(meta.index) == meta.term
        if not keep_suffix and log.last_index >= log.first_index:
            node.truncate_log(log.first_index)
        node.compact_log(meta.index + 1)
        if not keep_suffix:
            node.pending_syncs = type(node.pending_syncs)(
                (t, Index(min(c, meta.index))) for t, c in node.pending_syncs
            )
        log.restore(meta.index, meta.term)
        node.sm.restore(snap.data)
        node.applied_digest = meta.applied_digest
        node.snapshot = snap
        membership.on_snapshot_restored(node, meta)
        for index in sorted(i for i in node.pending_proposals if i <= meta.index):
            pending = node.pending_proposals.pop(index)  # its result is unknown here
            if pending.request is not None:
                node.reply(pending.request, Outcome("info", error="snapshot installed past it"))
        node.needs_sync = True
        node.report(SnapshotInstalled(meta.index, meta.term))
        reads.on_applied(node)
    response = InstallSnapshotResponse(node.config.group, node.term, meta.index, 0, True)
    node.send_when_durable(leader, response)


# Recovery (rule 5) ----------------------------------------------------------------------------
def recover(node: RaftNode, recovered: Recovered) -> None:
    state = recovered.state
    if (data := state.get(node.key_hard_state)) is not None:
        hard = node.decode_hard_state(data)
        node.term, node.vote = hard.term, hard.vote
    base, base_term = Index(0), Term(0)
    if (data := state.get(node.key_snapshot)) is not None:
        snap = node.decode_snapshot(data)
        base, base_term = snap.meta.index, snap.meta.term
        node.snapshot = snap
        node.log = RaftLog(base, base_term)
        node.sm.restore(snap.data)
        node.applied_digest = snap.meta.applied_digest
        node.conf_history = [(base, snap.meta.conf)]
    if recovered.first_index == 0 and not recovered.records:
        node.compact_log(base + 1)  # keep storage index == Raft index (log.py)
        node.needs_sync = True
        return
    if recovered.first_index > base + 1:
        raise InvariantViolation(
            "snapshot-before-compaction",
            f"log starts at {recovered.first_index} but the snapshot ends at {base}",
        )
    entries = [node.decode_entry(record) for record in recovered.records]
    for position, entry in enumerate(entries):
        if entry.index != recovered.first_index + position:
            raise InvariantViolation("log-record-index", f"record {position} holds {entry}")
    at_base = [e for e in entries if e.index == base]
    keep = [e for e in entries if e.index > base]
    if base and at_base and at_base[0].term != base_term:
        keep = []
    if not keep and recovered.next_index > max(recovered.first_index, base + 1):
        node.truncate_log(max(recovered.first_index, base + 1))
    if recovered.first_index < base + 1:
        node.compact_log(base + 1)
    for entry in keep:
        node.log.append(entry)
    node.log.persisted = node.log.last_index
    membership.on_snapshot_restored(node, None)
