"""Ricart-Agrawala mutual exclusion: ask everyone, enter when everyone has replied.

G. Ricart and A. K. Agrawala, "An Optimal Algorithm for Mutual Exclusion in Computer
Networks", CACM 24(1), 1981.

Assumptions: asynchronous system; reliable channels (no loss; FIFO is *not* needed); no
process fails (a crashed process never replies, and everyone waits forever). The simulator
duplicates messages, so they are numbered per link (`fifo_a1`), which drops duplicates.

Rules (each node keeps a Lamport clock):

1. To enter, a node stamps its request ``(ts, id)`` with its clock and sends ``Request`` to
   every other node.
2. A node receiving ``Request(ts, j)`` replies at once unless it is in the CS, or it is
   requesting with a smaller stamp ``(my_ts, me) < (ts, j)``; then it defers the reply.
3. A node enters when every other node has replied.
4. On leaving, it sends the deferred replies.

Guarantees: mutual exclusion (of two concurrent requesters, the one with the larger stamp
always waits for the other's reply); no deadlock and no starvation (stamps are totally
ordered and grow); entries in stamp order.

Messages per entry: exactly 2(n-1): n-1 ``Request`` and n-1 ``Reply``. Synchronization
delay: 1 message delay.
"""

from __future__ import annotations

from dataclasses import dataclass

from tejido.algorithms.fifo_a1 import FifoLinks, Sequenced
from tejido.algorithms.mutex_base_a1 import MutexProcess
from tejido.core.clocks import LamportClock
from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.core.protocol import Env

__all__ = ["RAConfig", "RARequest", "RAReply", "RicartAgrawala"]


class RARequest(Sequenced, frozen=True):
    ts: int

    def describe(self) -> str:
        return f"Request ts={self.ts}"


class RAReply(Sequenced, frozen=True):
    def describe(self) -> str:
        return "Reply"


@dataclass(frozen=True, slots=True)
class RAConfig:
    hold_s: float = 0.002
    defer: bool = True
    """False breaks rule 2 (always reply at once): exists to prove the checker catches it."""


class RicartAgrawala(MutexProcess):
    __slots__ = ("clock", "config", "deferred", "links", "my_ts", "replies")

    def __init__(self, env: Env, config: RAConfig | None = None) -> None:
        self.config = config or RAConfig()
        super().__init__(env, self.config.hold_s)
        self.clock = LamportClock()
        self.links = FifoLinks()
        self.my_ts = 0
        self.replies: dict[NodeId, None] = {}
        self.deferred: list[NodeId] = []

    def request_cs(self) -> None:  # rule 1
        self.clock = self.clock.tick()
        self.my_ts = self.clock.time
        self.replies = {}
        for peer in self.others():
            self.send(peer, RARequest(seq=self.links.stamp(peer), ts=self.my_ts))
        self._maybe_enter()

    def release_cs(self) -> None:  # rule 4
        deferred, self.deferred = self.deferred, []
        for node in deferred:
            self.send(node, RAReply(seq=self.links.stamp(node)))

    def on_message(self, src: NodeId, message: Message) -> None:
        if not isinstance(message, Sequenced):
            return
        for ready in self.links.receive(src, message):
            match ready:
                case RARequest(ts=ts):
                    self._on_request(src, ts)
                case RAReply():
                    if self.requesting:
                        self.replies[src] = None
                        self._maybe_enter()
                case _:
                    pass

    def _on_request(self, src: NodeId, ts: int) -> None:  # rule 2
        self.clock = self.clock.merge(LamportClock(ts))
        mine_first = self.requesting and (self.my_ts, self.node_id) < (ts, src)
        if self.config.defer and (self.in_cs or mine_first):
            self.deferred.append(src)
        else:
            self.send(src, RAReply(seq=self.links.stamp(src)))

    def _maybe_enter(self) -> None:  # rule 3
        if self.requesting and len(self.replies) == len(self.env.nodes) - 1:
            self.enter_cs()
