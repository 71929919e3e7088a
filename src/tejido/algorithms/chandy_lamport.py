"""Chandy-Lamport global snapshot, on a bank whose accounts transfer money to each other.

Chandy and Lamport, "Distributed Snapshots: Determining Global States of Distributed
Systems" (TOCS 1985), §3.

Assumptions: every pair of processes is connected by two directed channels that are
reliable and FIFO; no process fails. The simulator's network reorders (jitter alone does)
and may duplicate, so the processes number what they send on each directed link and the
receiver restores the order and drops duplicates (`tejido.algorithms.fifo_a1`). Loss,
partitions and crashes break the assumption; the ``chandy-lamport`` simulator spec leaves
them out (a lost marker would leave a snapshot forever incomplete, a crash loses money).

Guarantee: the recorded global state is consistent — it could have happened: a transfer is
recorded as received only if it is recorded as sent, so the recorded balances plus the
recorded in-channel transfers add up to exactly the money in the system (which transfers
only move). Snapshots started concurrently by different nodes do not interfere (each has
its own id).

Message complexity: one marker per directed channel, n(n-1) on n fully connected nodes,
plus n-1 reports to the initiator (the collection step the paper leaves open).

Rules (paper §3.2):

1. Marker-sending rule: a process that records its state (on the client's ``read snapshot``
   command, or on its first marker of that snapshot) sends one marker on each outgoing
   channel before sending anything else on it.
2. Marker-receiving rule: on the first marker of a snapshot a process records its state and
   the state of the channel the marker came on as empty, then records every other incoming
   channel from now until its marker arrives: the transfers received on it meanwhile are
   the channel's state.
3. A process whose every incoming channel has delivered its marker reports its recorded
   balance and channel states to the initiator, which answers the client with the total
   once every process has reported. The client command is ``read snapshot``: a read of
   the recorded total, so histories carry the totals a checker can compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tejido.algorithms.fifo_a1 import FifoLinks, Sequenced
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = [
    "BankConfig",
    "BankNode",
    "LocalSnapshot",
    "Marker",
    "Report",
    "SnapshotId",
    "Transfer",
]

SnapshotId = tuple[int, int]
"""(initiator node, the initiator's counter)."""


class Transfer(Sequenced, frozen=True):
    amount: int

    def describe(self) -> str:
        return f"Transfer #{self.seq} {self.amount}"


class Marker(Sequenced, frozen=True):
    snapshot: SnapshotId

    def describe(self) -> str:
        return f"Marker #{self.seq} s={self.snapshot[0]}.{self.snapshot[1]}"


class Report(Message, frozen=True):
    """A process's part of a snapshot, sent to the initiator (rule 3)."""

    snapshot: SnapshotId
    balance: int
    channels: dict[int, list[int]]
    """Incoming channel (by sender) -> transfers recorded in flight on it."""

    def describe(self) -> str:
        in_flight = sum(sum(v) for v in self.channels.values())
        return (
            f"Report s={self.snapshot[0]}.{self.snapshot[1]} balance={self.balance} "
            f"in-flight={in_flight}"
        )


class SnapshotTaken(Event, frozen=True):
    snapshot: SnapshotId
    total: int


@dataclass(frozen=True, slots=True)
class BankConfig:
    initial_balance: int = 1000
    transfer_interval_s: float = 0.02
    """Mean time between a node's transfers (exponentially distributed)."""
    max_transfer: int = 50
    record_channels: bool = True
    """False is deliberately broken (rule 2 skipped: in-flight money is not recorded), so
    tests can show the conservation checker catching an inconsistent snapshot."""


@dataclass(slots=True)
class LocalSnapshot:
    """One process's recording of one snapshot (rule 2)."""

    balance: int
    recording: dict[NodeId, list[int]]
    """Incoming channels still recorded (no marker yet), with what arrived on them."""
    done: dict[NodeId, list[int]] = field(default_factory=dict)


@dataclass(slots=True)
class _Collecting:
    request: RequestId | None
    reports: dict[NodeId, Report] = field(default_factory=dict)


class BankNode(Process):
    """An account that sends random transfers and takes part in snapshots."""

    def __init__(self, env: Env, config: BankConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or BankConfig()
        self.balance = self.config.initial_balance
        self.links = FifoLinks()
        self.local: dict[SnapshotId, LocalSnapshot] = {}
        self.collecting: dict[SnapshotId, _Collecting] = {}
        self.completed: list[tuple[SnapshotId, dict[NodeId, Report]]] = []
        """Global snapshots this node initiated and assembled (checkers read them)."""
        self.markers_sent = 0
        self._next_snapshot = 0

    @property
    def total(self) -> int:
        """The money that exists in the whole system (it is only ever moved)."""
        return self.config.initial_balance * len(self.env.nodes)

    def on_start(self, recovered: Recovered) -> None:
        self._schedule_transfer()

    def _schedule_transfer(self) -> None:
        mean = self.config.transfer_interval_s
        self.set_timer("transfer", self.env.rng.uniform(0.0, 2 * mean))

    def on_timer(self, name: TimerName) -> None:
        if name != "transfer":
            super().on_timer(name)
            return
        peers = self.env.peers
        if peers and self.balance > 0:
            dst = peers[self.env.rng.randrange(len(peers))]
            amount = 1 + self.env.rng.randrange(min(self.balance, self.config.max_transfer))
            self.balance -= amount
            self.send(dst, Transfer(self.links.stamp(dst), amount))
        self._schedule_transfer()

    # ------------------------------------------------------------------ snapshots
    def on_command(self, request: RequestId, operation: Operation) -> None:
        if operation.f != "read" or operation.key != "snapshot":
            self.reply(
                request, Outcome("fail", error="the bank takes only `read snapshot` commands")
            )
            return
        self._next_snapshot += 1
        sid = (int(self.node_id), self._next_snapshot)
        self.collecting[sid] = _Collecting(request)
        self._record(sid, came_from=None)

    def _record(self, sid: SnapshotId, came_from: NodeId | None) -> None:
        """Rules 1 and 2: record the state, send the markers, start recording channels."""
        recording: dict[NodeId, list[int]] = {p: [] for p in self.env.peers if p != came_from}
        snapshot = LocalSnapshot(self.balance, recording)
        if came_from is not None:
            snapshot.done[came_from] = []
        self.local[sid] = snapshot
        for peer in self.env.peers:
            self.markers_sent += 1
            self.send(peer, Marker(self.links.stamp(peer), sid))
        self._maybe_report(sid)

    def _on_marker(self, src: NodeId, marker: Marker) -> None:
        snapshot = self.local.get(marker.snapshot)
        if snapshot is None:
            self._record(marker.snapshot, came_from=src)
            return
        recorded = snapshot.recording.pop(src, None)
        if recorded is not None:
            snapshot.done[src] = recorded
            self._maybe_report(marker.snapshot)

    def _on_transfer(self, src: NodeId, transfer: Transfer) -> None:
        self.balance += transfer.amount
        for snapshot in self.local.values():
            channel = snapshot.recording.get(src)
            if channel is not None and self.config.record_channels:
                channel.append(transfer.amount)

    def _maybe_report(self, sid: SnapshotId) -> None:
        snapshot = self.local[sid]
        if snapshot.recording:
            return
        report = Report(
            sid, snapshot.balance, {int(k): v for k, v in sorted(snapshot.done.items())}
        )
        del self.local[sid]
        initiator = NodeId(sid[0])
        if initiator == self.node_id:
            self._on_report(self.node_id, report)
        else:
            self.send(initiator, report)

    def _on_report(self, src: NodeId, report: Report) -> None:
        collecting = self.collecting.get(report.snapshot)
        if collecting is None:
            return
        collecting.reports[src] = report
        if len(collecting.reports) < len(self.env.nodes):
            return
        del self.collecting[report.snapshot]
        reports = dict(sorted(collecting.reports.items()))
        self.completed.append((report.snapshot, reports))
        total = sum(r.balance + sum(sum(v) for v in r.channels.values()) for r in reports.values())
        self.report(SnapshotTaken(report.snapshot, total))
        if collecting.request is not None:
            self.reply(collecting.request, Outcome("ok", total))

    # ------------------------------------------------------------------ dispatch
    def on_message(self, src: NodeId, message: Message) -> None:
        if isinstance(message, Report):
            self._on_report(src, message)
            return
        if not isinstance(message, Sequenced):
            return
        for ready in self.links.receive(src, message):
            if isinstance(ready, Transfer):
                self._on_transfer(src, ready)
            elif isinstance(ready, Marker):
                self._on_marker(src, ready)
