"""FIFO, duplicate-free delivery over a network that reorders and duplicates (but never loses).

Several classical algorithms (Lamport's mutual exclusion, Lamport's total-order broadcast)
assume FIFO channels: messages from one process to another arrive in the order they were
sent. The simulator's network does not promise that (jitter alone reorders), so these
algorithms number what they send on each directed link and the receiver holds a message
back until every earlier one from the same sender has arrived, as TCP does with its
sequence numbers. A number already delivered is a duplicate and is dropped.

Rules:

1. The sender numbers messages per destination 1, 2, 3, ... (`stamp`).
2. The receiver releases message ``k`` from ``src`` only after ``1 .. k-1`` (`receive`).
3. A number at or below the last released one, or already held back, is a duplicate.

There are no acknowledgements and no retransmissions: a lost message blocks its link
forever, which is why the algorithms using this run without message loss (and without
crashes, which would reset the numbering). Their simulator specs leave those faults out.
"""

from __future__ import annotations

from tejido.core.ids import NodeId
from tejido.core.messages import Message

__all__ = ["FifoLinks", "Sequenced"]


class Sequenced(Message, frozen=True):
    """A message that carries its number on its directed link (``seq``, from 1)."""

    seq: int


class FifoLinks:
    """One process's send counters and receive buffers, one per peer."""

    __slots__ = ("_expected", "_held", "_next")

    def __init__(self) -> None:
        self._next: dict[NodeId, int] = {}
        self._expected: dict[NodeId, int] = {}
        self._held: dict[NodeId, dict[int, Sequenced]] = {}

    def stamp(self, dst: NodeId) -> int:
        """The number for the next message to `dst`."""
        seq = self._next.get(dst, 0) + 1
        self._next[dst] = seq
        return seq

    def receive(self, src: NodeId, message: Sequenced) -> list[Sequenced]:
        """The messages from `src` that are now deliverable, in order (maybe none)."""
        expected = self._expected.get(src, 1)
        if message.seq < expected:
            return []  # a duplicate of one already delivered
        held = self._held.setdefault(src, {})
        if message.seq in held:
            return []  # a duplicate of one held back
        held[message.seq] = message
        ready: list[Sequenced] = []
        while expected in held:
            ready.append(held.pop(expected))
            expected += 1
        self._expected[src] = expected
        return ready

    def held_back(self) -> int:
        """How many messages wait for an earlier one (for tests and diagrams)."""
        return sum(len(h) for h in self._held.values())
