"""Total-order broadcast: every node delivers every message in the same order.

Two classical ways, both here:

**Lamport timestamps with acknowledgements** (L. Lamport, "Time, Clocks, and the Ordering
of Events in a Distributed System", CACM 21(7), 1978; the "totally ordered multicast" of
Tanenbaum and van Steen, section 6.2). Assumptions: asynchronous system; reliable **FIFO**
channels; no process fails. FIFO and duplicate removal come from per-link numbering
(`fifo_a1`).

1. To broadcast, node i ticks its Lamport clock, puts the message stamped ``(ts, i)`` in
   its own hold-back queue and sends ``Broadcast(ts)`` to every other node.
2. On ``Broadcast(ts)`` from i: merge the clock, queue the message, and send ``Ack``
   (stamped with the merged clock, so later than ``ts``) to every other node.
3. Deliver the queue's head ``(ts, i)`` once every other node j has sent a message stamped
   ``(t, j) > (ts, i)`` (its ``Broadcast`` for j = i): with FIFO channels nothing stamped
   earlier can still arrive from j.

Guarantees: total order, consistent with causal order (a message broadcast after
delivering m carries a larger stamp than m); every message delivered once everywhere.
Messages per broadcast: (n-1) ``Broadcast`` + (n-1)(n-1) ``Ack`` = n(n-1).

**Fixed sequencer** (the sequencer of Amoeba: M. F. Kaashoek et al., "An Efficient
Reliable Broadcast Protocol", 1989; Défago, Schiper and Urbán's survey, ACM Computing
Surveys 36(4), 2004, "fixed sequencer"). Assumptions: asynchronous system; reliable
channels (no loss); the sequencer (the lowest id) does not fail.

1. To broadcast, a node sends ``Submit`` to the sequencer (numbered per link, so a
   duplicate is never ordered twice).
2. The sequencer gives each submitted message the next global number and sends
   ``Ordered(number)`` to every node, itself included without a message.
3. Every node delivers ``Ordered`` messages in number order, holding back gaps and dropping
   duplicates.

Guarantees: total order, consistent with causal order (a node submits m' only after
delivering everything it saw, whose numbers are lower). Messages per broadcast: 1 + (n-1)
(n-1 when the sequencer itself broadcasts).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from tejido.algorithms.broadcast_base_a1 import BroadcastId, BroadcastProcess
from tejido.algorithms.fifo_a1 import FifoLinks, Sequenced
from tejido.core.clocks import LamportClock
from tejido.core.ids import NodeId
from tejido.core.messages import Message, describe_value
from tejido.core.protocol import Env

__all__ = [
    "Ordered",
    "SequencerBroadcast",
    "Submit",
    "TotalOrderAck",
    "TotalOrderBroadcast",
    "TotalOrderConfig",
    "TotalOrderMessage",
]

Value = int | str | None


class TotalOrderMessage(Sequenced, frozen=True):
    ts: int
    number: int
    value: Value

    def describe(self) -> str:
        return f"Broadcast ts={self.ts} #{self.number} {describe_value(self.value)}"


class TotalOrderAck(Sequenced, frozen=True):
    ts: int

    def describe(self) -> str:
        return f"Ack ts={self.ts}"


@dataclass(frozen=True, slots=True)
class TotalOrderConfig:
    wait_for_acks: bool = True
    """False delivers on receipt (rule 3 skipped): exists to prove the checker catches it."""


class TotalOrderBroadcast(BroadcastProcess):
    """Lamport timestamps with acknowledgements."""

    __slots__ = ("clock", "config", "latest", "links", "queue")

    def __init__(self, env: Env, config: TotalOrderConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or TotalOrderConfig()
        self.clock = LamportClock()
        self.links = FifoLinks()
        self.queue: list[tuple[int, NodeId, int, Value]] = []
        """The hold-back queue: (ts, origin, number, value), sorted."""
        self.latest: dict[NodeId, int] = {}

    def broadcast_value(self, bid: BroadcastId, value: Value) -> None:  # rule 1
        self.clock = self.clock.tick()
        ts = self.clock.time
        bisect.insort(self.queue, (ts, self.node_id, bid[1], value))
        for peer in self.env.peers:
            self.send(peer, TotalOrderMessage(self.links.stamp(peer), ts, bid[1], value))
        self._deliver_ready()

    def on_message(self, src: NodeId, message: Message) -> None:
        if not isinstance(message, Sequenced):
            return
        for ready in self.links.receive(src, message):
            match ready:
                case TotalOrderMessage(ts=ts, number=number, value=value):  # rule 2
                    self._observe(src, ts)
                    bisect.insort(self.queue, (ts, src, number, value))
                    ack = self.clock.time
                    for peer in self.env.peers:
                        self.send(peer, TotalOrderAck(self.links.stamp(peer), ack))
                case TotalOrderAck(ts=ts):
                    self._observe(src, ts)
                case _:
                    pass
        self._deliver_ready()

    def _observe(self, src: NodeId, ts: int) -> None:
        self.clock = self.clock.merge(LamportClock(ts))
        if ts > self.latest.get(src, 0):
            self.latest[src] = ts

    def _deliver_ready(self) -> None:  # rule 3
        while self.queue:
            ts, origin, number, value = self.queue[0]
            if self.config.wait_for_acks and not all(
                (self.latest.get(peer, 0), peer) >= (ts, origin) for peer in self.env.peers
            ):
                return
            self.queue.pop(0)
            self.deliver((origin, number), value)


class Submit(Sequenced, frozen=True):
    number: int
    value: Value

    def describe(self) -> str:
        return f"Submit #{self.number} {describe_value(self.value)}"


class Ordered(Message, frozen=True):
    position: int
    origin: int
    number: int
    value: Value

    def describe(self) -> str:
        return f"Ordered {self.position}: {self.origin}.{self.number} {describe_value(self.value)}"


class SequencerBroadcast(BroadcastProcess):
    """A fixed sequencer (the lowest id) numbers every message."""

    __slots__ = ("assigned", "held", "links", "next_position", "sequencer")

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.sequencer = min(env.nodes)
        self.links = FifoLinks()
        self.assigned = 0
        """Sequencer only: the last global number handed out."""
        self.next_position = 1
        self.held: dict[int, tuple[BroadcastId, Value]] = {}

    def broadcast_value(self, bid: BroadcastId, value: Value) -> None:  # rule 1
        if self.node_id == self.sequencer:
            self._order(bid, value)
        else:
            seq = self.links.stamp(self.sequencer)
            self.send(self.sequencer, Submit(seq, bid[1], value))

    def _order(self, bid: BroadcastId, value: Value) -> None:  # rule 2
        self.assigned += 1
        ordered = Ordered(self.assigned, bid[0], bid[1], value)
        self.broadcast(ordered)
        self._on_ordered(ordered)

    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case Submit():
                if self.node_id == self.sequencer:
                    for ready in self.links.receive(src, message):
                        if isinstance(ready, Submit):
                            self._order((src, ready.number), ready.value)
            case Ordered():
                self._on_ordered(message)
            case _:
                pass

    def _on_ordered(self, message: Ordered) -> None:  # rule 3
        if message.position < self.next_position:
            return
        self.held[message.position] = ((message.origin, message.number), message.value)
        while self.next_position in self.held:
            bid, value = self.held.pop(self.next_position)
            self.next_position += 1
            self.deliver(bid, value)
