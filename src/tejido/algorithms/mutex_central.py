"""Centralized mutual exclusion: one coordinator grants the critical section in FIFO order.

The baseline every textbook starts from (Tanenbaum and van Steen, *Distributed Systems*,
section 6.3; Coulouris et al., *Distributed Systems*, section 15.2, "the central server
algorithm").

Assumptions: asynchronous system; reliable channels (no loss); no process fails (the
coordinator is a single point of failure, which is the algorithm's known weakness). The
simulator's network reorders and duplicates, so messages are numbered per link
(`fifo_a1`), which also drops duplicates.

Rules:

1. The coordinator is the lowest node id. It holds a FIFO queue of waiting nodes and the
   current holder (or none).
2. To enter, a node sends ``Request`` to the coordinator; the coordinator answers ``Grant``
   at once if nobody holds the CS, else queues the requester.
3. On leaving, the holder sends ``Release``; the coordinator grants the next in the queue.
4. The coordinator's own requests go through the same queue without messages.

Guarantees: mutual exclusion (one ``Grant`` outstanding at a time); no starvation, and
entries in the order the coordinator received the requests.

Messages per entry: 3 (Request, Grant, Release) for a node other than the coordinator,
0 for the coordinator itself. Synchronization delay: 2 message delays (Release + Grant).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tejido.algorithms.fifo_a1 import FifoLinks, Sequenced
from tejido.algorithms.mutex_base_a1 import MutexProcess
from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.core.protocol import Env

__all__ = ["CentralConfig", "CentralMutex", "Grant", "Release", "Request"]


class Request(Sequenced, frozen=True):
    def describe(self) -> str:
        return "Request"


class Grant(Sequenced, frozen=True):
    def describe(self) -> str:
        return "Grant"


class Release(Sequenced, frozen=True):
    def describe(self) -> str:
        return "Release"


@dataclass(frozen=True, slots=True)
class CentralConfig:
    hold_s: float = 0.002
    """How long a node stays in the critical section (its own clock)."""


class CentralMutex(MutexProcess):
    __slots__ = ("coordinator", "holder", "links", "waiting")

    def __init__(self, env: Env, config: CentralConfig | None = None) -> None:
        super().__init__(env, (config or CentralConfig()).hold_s)
        self.coordinator = min(env.nodes)
        self.links = FifoLinks()
        # Coordinator state (rule 1); unused on other nodes.
        self.holder: NodeId | None = None
        self.waiting: deque[NodeId] = deque()

    def _send(self, dst: NodeId, kind: type[Sequenced]) -> None:
        self.send(dst, kind(seq=self.links.stamp(dst)))

    # Requester side ------------------------------------------------------------------------
    def request_cs(self) -> None:
        if self.node_id == self.coordinator:
            self._on_request(self.node_id)  # rule 4
        else:
            self._send(self.coordinator, Request)

    def release_cs(self) -> None:
        if self.node_id == self.coordinator:
            self._on_release(self.node_id)
        else:
            self._send(self.coordinator, Release)

    def on_message(self, src: NodeId, message: Message) -> None:
        if not isinstance(message, Sequenced):
            return
        for ready in self.links.receive(src, message):
            match ready:
                case Request():
                    self._on_request(src)
                case Release():
                    self._on_release(src)
                case Grant():
                    self.enter_cs()
                case _:
                    pass

    # Coordinator side (rules 2 and 3) ------------------------------------------------------
    def _on_request(self, src: NodeId) -> None:
        if self.holder is None:
            self._grant(src)
        else:
            self.waiting.append(src)

    def _on_release(self, src: NodeId) -> None:
        if self.holder != src:
            return  # a release from a node that holds nothing: ignore it
        self.holder = None
        if self.waiting:
            self._grant(self.waiting.popleft())

    def _grant(self, node: NodeId) -> None:
        self.holder = node
        if node == self.node_id:
            self.enter_cs()
        else:
            self._send(node, Grant)
