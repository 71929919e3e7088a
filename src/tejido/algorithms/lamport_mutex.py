"""Lamport's mutual exclusion: a replicated request queue ordered by Lamport timestamps.

L. Lamport, "Time, Clocks, and the Ordering of Events in a Distributed System", CACM 21(7),
1978, the resource-allocation example.

Assumptions: asynchronous system; reliable **FIFO** channels (the algorithm is wrong
without FIFO: a release could overtake the request it releases); no process fails. FIFO
and duplicate removal come from per-link numbering (`fifo_a1`).

Rules (each node keeps a Lamport clock and a queue of requests sorted by ``(ts, id)``):

1. To enter, a node stamps ``Request(ts)``, puts ``(ts, me)`` in its own queue and sends
   it to every other node.
2. On ``Request(ts)`` from j: put ``(ts, j)`` in the queue and send ``Ack`` (stamped later
   than ``ts``) to j.
3. A node enters when its own request heads its queue **and** it has received from every
   other node a message stamped later than its request (FIFO then guarantees no earlier
   request from that node is still on the way).
4. On leaving, remove its request and send ``Release`` to every other node; on
   ``Release`` from j, remove j's request.

Guarantees: mutual exclusion; entries in timestamp order (fair); no starvation.

Messages per entry: exactly 3(n-1): n-1 ``Request``, n-1 ``Ack``, n-1 ``Release`` (this
module never skips an ``Ack``, the optimisation that makes the count vary).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from tejido.algorithms.fifo_a1 import FifoLinks, Sequenced
from tejido.algorithms.mutex_base_a1 import MutexProcess
from tejido.core.clocks import LamportClock
from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.core.protocol import Env

__all__ = ["LamportAck", "LamportConfig", "LamportMutex", "LamportRelease", "LamportRequest"]


class LamportRequest(Sequenced, frozen=True):
    ts: int

    def describe(self) -> str:
        return f"Request ts={self.ts}"


class LamportAck(Sequenced, frozen=True):
    ts: int

    def describe(self) -> str:
        return f"Ack ts={self.ts}"


class LamportRelease(Sequenced, frozen=True):
    ts: int

    def describe(self) -> str:
        return f"Release ts={self.ts}"


@dataclass(frozen=True, slots=True)
class LamportConfig:
    hold_s: float = 0.002


class LamportMutex(MutexProcess):
    __slots__ = ("clock", "latest", "links", "my_ts", "queue")

    def __init__(self, env: Env, config: LamportConfig | None = None) -> None:
        super().__init__(env, (config or LamportConfig()).hold_s)
        self.clock = LamportClock()
        self.links = FifoLinks()
        self.queue: list[tuple[int, NodeId]] = []
        """Every known request, sorted by (timestamp, node): the replicated queue."""
        self.latest: dict[NodeId, int] = {}
        """The largest timestamp received from each other node (rule 3)."""
        self.my_ts = 0

    def _stamp(self) -> int:
        self.clock = self.clock.tick()
        return self.clock.time

    def request_cs(self) -> None:  # rule 1
        self.my_ts = ts = self._stamp()
        bisect.insort(self.queue, (ts, self.node_id))
        for peer in self.others():
            self.send(peer, LamportRequest(seq=self.links.stamp(peer), ts=ts))
        self._maybe_enter()

    def release_cs(self) -> None:  # rule 4
        self.queue.remove((self.my_ts, self.node_id))
        ts = self._stamp()
        for peer in self.others():
            self.send(peer, LamportRelease(seq=self.links.stamp(peer), ts=ts))

    def on_message(self, src: NodeId, message: Message) -> None:
        if not isinstance(message, Sequenced):
            return
        for ready in self.links.receive(src, message):
            self._on_ordered(src, ready)
        self._maybe_enter()

    def _on_ordered(self, src: NodeId, message: Sequenced) -> None:
        match message:
            case LamportRequest(ts=ts):  # rule 2
                self._observe(src, ts)
                bisect.insort(self.queue, (ts, src))
                self.send(src, LamportAck(seq=self.links.stamp(src), ts=self._stamp()))
            case LamportAck(ts=ts):
                self._observe(src, ts)
            case LamportRelease(ts=ts):
                self._observe(src, ts)
                self.queue = [entry for entry in self.queue if entry[1] != src]
            case _:
                pass

    def _observe(self, src: NodeId, ts: int) -> None:
        self.clock = self.clock.merge(LamportClock(ts))
        if ts > self.latest.get(src, 0):
            self.latest[src] = ts

    def _maybe_enter(self) -> None:  # rule 3
        if not self.requesting or not self.queue or self.queue[0] != (self.my_ts, self.node_id):
            return
        if all(self.latest.get(peer, 0) > self.my_ts for peer in self.others()):
            self.enter_cs()
