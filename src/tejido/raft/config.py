"""Configuration of one Raft group on one node; every field is named with its unit.

Rules (checked by `RaftConfig.validate`, which the node calls at construction):

1. ``heartbeat_interval_s < election_timeout_s``: followers must hear from a live leader
   well before their election timer fires (paper §5.2, "broadcastTime << electionTimeout").
2. The election timeout of each round is drawn uniformly from
   ``[election_timeout_s, 2 * election_timeout_s)`` with the node's seeded `Env.rng`
   (paper §5.2, randomized timeouts).
3. Lease reads need CheckQuorum: the lease is only sound when followers refuse votes while
   they hear from a leader (thesis §6.4.1), and ``max_clock_drift`` must be smaller than the
   election timeout (the lease lasts ``election_timeout_s - max_clock_drift``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId
from tejido.raft.types import DEFAULT_GROUP, GroupId

__all__ = ["RaftConfig"]


@dataclass(frozen=True, slots=True)
class RaftConfig:
    group: GroupId = DEFAULT_GROUP
    initial_voters: tuple[NodeId, ...] | None = None
    """The voters of a brand-new group; None means every node in `Env.nodes`. A node that
    joins later starts with ``()``: it waits for the leader to contact it."""
    election_timeout_s: float = 1.0
    heartbeat_interval_s: float = 0.1
    max_append_bytes: int = 64 * 1024
    """Upper bound on the entry bytes in one AppendEntries (at least one entry is sent)."""
    max_inflight_appends: int = 64
    """Appends in flight to one follower in the replicate state (pipelining window)."""
    max_inflight_bytes: int = 1024 * 1024
    """Entry bytes in flight to one follower; beyond it the leader waits for acks."""
    max_uncommitted_bytes: int = 4 * 1024 * 1024
    """Entry bytes the leader holds uncommitted; beyond it proposals fail with "busy"."""
    commit_notify_delay_s: float = 0.0
    """How long a leader may hold back an AppendEntries that only carries a new commit
    index (replication rule 4b); 0 sends it at once."""
    defer_follower_apply: bool = False
    """A follower applies newly committed entries after its outputs have left (its
    acknowledgement included) rather than before (replication rule 5c)."""
    pre_vote: bool = True
    check_quorum: bool = True
    lease_reads: bool = False
    """Serve linearizable reads from the leader's lease instead of a heartbeat round."""
    max_clock_drift: float = 0.1
    """Seconds by which the clocks' progress may differ over one election timeout."""
    forward_proposals: bool = True
    """A follower forwards proposals (and reads) to the leader instead of refusing them."""
    snapshot_chunk_bytes: int = 64 * 1024
    snapshot_threshold_entries: int = 0
    """Take a snapshot after this many applied entries beyond the last one; 0 = never (the
    application may still call `RaftNode.take_snapshot`)."""
    snapshot_keep_entries: int = 0
    """Entries kept in the log behind a snapshot, so that a follower only slightly behind
    catches up from the log rather than from a whole snapshot."""

    def validate(self) -> None:
        if not 0 < self.heartbeat_interval_s < self.election_timeout_s:
            raise LocalProtocolError(
                f"heartbeat_interval_s={self.heartbeat_interval_s} must be positive and below "
                f"election_timeout_s={self.election_timeout_s}"
            )
        if self.lease_reads and not self.check_quorum:
            raise LocalProtocolError("lease_reads needs check_quorum (thesis §6.4.1)")
        if not 0 <= self.max_clock_drift < self.election_timeout_s:
            raise LocalProtocolError(
                f"max_clock_drift={self.max_clock_drift} must be in [0, election_timeout_s)"
            )
        if not self.commit_notify_delay_s >= 0:
            raise LocalProtocolError(
                f"commit_notify_delay_s={self.commit_notify_delay_s} must be >= 0"
            )
        if self.snapshot_keep_entries < 0 or self.snapshot_threshold_entries < 0:
            raise LocalProtocolError("snapshot_keep_entries and _threshold_entries must be >= 0")
        for name in (
            "max_append_bytes",
            "max_inflight_appends",
            "max_inflight_bytes",
            "max_uncommitted_bytes",
            "snapshot_chunk_bytes",
        ):
            if getattr(self, name) <= 0:
                raise LocalProtocolError(f"{name} must be positive")

    @property
    def lease_duration_s(self) -> float:
        """How long after a quorum-acknowledged heartbeat round the leader may serve reads."""
        return self.election_timeout_s - self.max_clock_drift
