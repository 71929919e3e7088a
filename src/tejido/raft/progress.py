"""What a leader knows about one follower's log, as a three-state machine.

The leader keeps `match` (highest index known replicated on the follower, paper Figure 2
"matchIndex") and `next` (the next index to send, "nextIndex"); how it sends depends on the
state (etcd's design, thesis §10.2.1 pipelining and §5.3 snapshots). All transitions live in
this file:

::

    event                                      PROBE        REPLICATE      SNAPSHOT
    ---------------------------------------    -----------  -------------  ------------
    leader elected / follower added            (initial)
    append accepted (match grows)              REPLICATE    REPLICATE      PROBE if match
                                                                           >= snapshot
    append rejected (not stale)                PROBE        PROBE          -
    needed entries compacted away              SNAPSHOT     SNAPSHOT       -
    snapshot installed / abandoned             -            -              PROBE

Rules:

1. PROBE: at most one append in flight (`probe_sent`); the leader does not know where the
   logs match, so it waits for the answer. A heartbeat response unpauses it (the append or
   its answer may have been lost).
2. REPLICATE: optimistic; `next` jumps past what was sent, and appends are pipelined in a
   window bounded by `max_inflight_appends` and `max_inflight_bytes` (flow control). An
   acknowledgement frees every in-flight append up to the acknowledged index.
3. SNAPSHOT: no appends; chunks of the snapshot at `pending_snapshot` are sent one at a time
   from `snapshot_offset` (the follower's acknowledged offset), so a lost chunk is resent
   from where the follower is, not from the start.
4. A rejection is *stale* (ignored) when it does not answer the append the leader is waiting
   for: in REPLICATE when the rejected index is at or below `match`, in PROBE when it is not
   ``next - 1``. Otherwise `next` moves back to the hint, never below ``match + 1``.
5. ``match < next`` always; `match` never decreases while this node stays leader.
"""

from __future__ import annotations

import enum
from collections import deque

from tejido.core.errors import InvariantViolation
from tejido.raft.types import Index

__all__ = ["Progress", "ProgressState"]


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    __slots__ = (
        "commit_sent",
        "inflight_bytes",
        "inflights",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "read_seq",
        "recent_active",
        "snapshot_offset",
        "state",
    )

    def __init__(self, next_index: Index) -> None:
        self.match = Index(0)
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflights: deque[tuple[Index, int]] = deque()
        self.inflight_bytes = 0
        self.pending_snapshot = Index(0)
        self.snapshot_offset = 0
        self.recent_active = True
        """Heard from since the last CheckQuorum round (thesis §6.2)."""
        self.read_seq = 0
        """The highest heartbeat round this follower acknowledged (ReadIndex, leases)."""
        self.commit_sent = Index(0)
        """The commit index of the latest AppendEntries sent to it (replication rule 4b)."""

    def describe(self) -> str:
        text = f"{self.state.value} match={self.match} next={self.next}"
        if self.state is ProgressState.REPLICATE and self.inflights:
            text += f" inflight={len(self.inflights)}"
        if self.state is ProgressState.SNAPSHOT:
            text += f" snap={self.pending_snapshot}@{self.snapshot_offset}"
        if self.probe_sent:
            text += " paused"
        return text

    # Transitions --------------------------------------------------------------------------
    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            self.next = Index(max(self.match + 1, self.pending_snapshot + 1))
        else:
            self.next = Index(self.match + 1)
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = Index(self.match + 1)
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, index: Index) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = index
        self.snapshot_offset = 0

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.inflights.clear()
        self.inflight_bytes = 0
        self.pending_snapshot = Index(0)

    # Events -------------------------------------------------------------------------------
    def on_accepted(self, match: Index) -> bool:
        """An append was acknowledged up to `match`; True when `match` grew."""
        updated = match > self.match
        if updated:
            self.match = match
            self.probe_sent = False
        self.next = Index(max(self.next, match + 1))
        while self.inflights and self.inflights[0][0] <= match:
            _, size = self.inflights.popleft()
            self.inflight_bytes -= size
        if self.state is ProgressState.PROBE and updated:
            self.become_replicate()
        elif self.state is ProgressState.SNAPSHOT and self.match >= self.pending_snapshot:
            self.become_probe()
        return updated

    def on_rejected(self, rejected: Index, next_hint: Index) -> bool:
        """Rule 4: False when the rejection is stale, else move `next` back and probe."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
        elif self.state is ProgressState.PROBE:
            if rejected != self.next - 1:
                return False
        else:
            return False
        self.next = Index(max(self.match + 1, min(next_hint, rejected)))
        self._reset(ProgressState.PROBE)
        return True

    def on_sent(self, last_index: Index, size_bytes: int) -> None:
        """An append carrying entries up to `last_index` (or none) was sent."""
        if self.state is ProgressState.REPLICATE:
            if last_index >= self.next:
                self.next = Index(last_index + 1)
                self.inflights.append((last_index, size_bytes))
                self.inflight_bytes += size_bytes
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True
        else:
            raise InvariantViolation("progress-state", "append sent to a follower in SNAPSHOT")

    def extend_last_inflight(self, last_index: Index, size_bytes: int) -> None:
        """The newest in-flight append (not sent yet) now also carries entries up to
        `last_index`, `size_bytes` more (replication.py rule 2b)."""
        if self.state is not ProgressState.REPLICATE or not self.inflights:
            raise InvariantViolation("progress-state", "extending an append not in flight")
        _, size = self.inflights[-1]
        self.inflights[-1] = (last_index, size + size_bytes)
        self.inflight_bytes += size_bytes
        self.next = Index(last_index + 1)

    def on_heartbeat_response(self, max_inflight_appends: int, max_inflight_bytes: int) -> None:
        """Rules 1-2: the follower is alive; unpause a probe, and free the oldest in-flight
        append of a full window (it may have been lost: if so, the follower rejects the next
        append and the rejection moves it back to PROBE)."""
        self.recent_active = True
        self.probe_sent = False
        if self.state is ProgressState.REPLICATE and self.paused(
            max_inflight_appends, max_inflight_bytes
        ):
            _, size = self.inflights.popleft()
            self.inflight_bytes -= size

    def paused(self, max_inflight_appends: int, max_inflight_bytes: int) -> bool:
        match self.state:
            case ProgressState.PROBE:
                return self.probe_sent
            case ProgressState.REPLICATE:
                return (
                    len(self.inflights) >= max_inflight_appends
                    or self.inflight_bytes >= max_inflight_bytes
                )
            case ProgressState.SNAPSHOT:
                return True
