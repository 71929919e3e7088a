"""Causal broadcast: deliver a message only after everything that causally precedes it.

K. Birman, A. Schiper and P. Stephenson, "Lightweight Causal and Atomic Group Multicast",
ACM TOCS 9(3), 1991 (the vector-clock delivery condition of CBCAST); vector clocks from
Fidge (1988) and Mattern (1989), `tejido.core.clocks.VectorClock`.

Assumptions: asynchronous system; reliable channels (no loss; order and duplicates do not
matter); no process fails. The simulator runs it with reordering, duplication and pauses.

Rules (``delivered[k]`` counts the messages from k this node has delivered):

1. To broadcast, node i sets ``V = delivered`` with entry i incremented, delivers the
   message to itself at once, and sends ``Broadcast(V, value)`` to every other node.
2. Node j holds back ``Broadcast(V)`` from i until ``V[i] = delivered[i] + 1`` (it is the
   next message from i) and ``V[k] <= delivered[k]`` for every k != i (j has delivered
   everything i had delivered when it broadcast), then delivers it and sets
   ``delivered[i] = V[i]``.
3. A message with ``V[i] <= delivered[i]`` was delivered already (a duplicate): drop it.

Guarantees: causal order (if the broadcast of m happened before the broadcast of m', every
node delivers m before m'), which includes FIFO order per sender; every message is
delivered exactly once by every node. Concurrent messages may be delivered in different
orders at different nodes.

Messages per broadcast: n-1. Each carries a vector of up to n integers.
"""

from __future__ import annotations

from dataclasses import dataclass

from tejido.algorithms.broadcast_base_a1 import BroadcastId, BroadcastProcess
from tejido.core.clocks import VectorClock
from tejido.core.ids import NodeId
from tejido.core.messages import Message, describe_value
from tejido.core.protocol import Env

__all__ = ["CausalBroadcast", "CausalConfig", "CausalMessage"]


class CausalMessage(Message, frozen=True):
    origin: int
    vc: dict[int, int]
    value: int | str | None

    def describe(self) -> str:
        vc = ",".join(f"{k}:{v}" for k, v in sorted(self.vc.items()))
        number = self.vc.get(self.origin, 0)
        return f"Broadcast {self.origin}.{number} vc=[{vc}] {describe_value(self.value)}"


@dataclass(frozen=True, slots=True)
class CausalConfig:
    hold_back: bool = True
    """False delivers on receipt (rule 2 skipped): exists to prove the checker catches it."""


class CausalBroadcast(BroadcastProcess):
    __slots__ = ("config", "delivered", "pending")

    def __init__(self, env: Env, config: CausalConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or CausalConfig()
        self.delivered = VectorClock()
        self.pending: list[tuple[NodeId, VectorClock, int | str | None]] = []
        """Messages held back by rule 2, in arrival order."""

    def broadcast_value(self, bid: BroadcastId, value: int | str | None) -> None:  # rule 1
        stamp = self.delivered.tick(self.node_id)
        self.delivered = stamp
        self.deliver(bid, value)
        self.broadcast(CausalMessage(self.node_id, {int(k): v for k, v in stamp.items()}, value))

    def on_message(self, src: NodeId, message: Message) -> None:
        if not isinstance(message, CausalMessage):
            return
        origin = NodeId(message.origin)
        stamp = VectorClock({NodeId(k): v for k, v in message.vc.items()})
        if stamp[origin] <= self.delivered[origin]:
            return  # rule 3
        if any(o == origin and s == stamp for o, s, _ in self.pending):
            return  # a duplicate of one held back
        self.pending.append((origin, stamp, message.value))
        self._deliver_ready()

    def _deliverable(self, origin: NodeId, stamp: VectorClock) -> bool:  # rule 2
        if not self.config.hold_back:
            return True
        delivered = self.delivered
        if stamp[origin] != delivered[origin] + 1:
            return False
        return all(count <= delivered[k] for k, count in stamp.items() if k != origin)

    def _deliver_ready(self) -> None:
        progress = True
        while progress:
            progress = False
            for index, (origin, stamp, value) in enumerate(self.pending):
                if self._deliverable(origin, stamp):
                    del self.pending[index]
                    counts = dict(self.delivered)
                    counts[origin] = max(counts.get(origin, 0), stamp[origin])
                    self.delivered = VectorClock(counts)
                    self.deliver((origin, stamp[origin]), value)
                    progress = True
                    break
