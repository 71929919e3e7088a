"""Checkers for broadcast delivery order: causal order and total order.

They read a history of broadcast and delivery events, in an order in which each broadcast
comes before every delivery of its message (any real-time order of a run does), and judge
it; they never look at an algorithm's internals, so the same checkers read simulator runs
and runs of real processes.

Definitions (Hadzilacos and Toueg, "A Modular Approach to Fault-Tolerant Broadcasts and
Related Problems", 1994):

- **Integrity**: a node delivers a message at most once, and only if it was broadcast.
- **Causal order**: if the broadcast of m happened before the broadcast of m' (same node,
  earlier; or the node broadcasting m' had delivered m, transitively), then no node
  delivers m' unless it has delivered m before. FIFO order per sender is the special case
  of one sender.
- **Total order**: every two nodes deliver the messages they both deliver in the same
  order. This checker demands the stronger *prefix* form that crash-free algorithms give:
  each node's delivery sequence is a prefix of one global sequence.

How causal order is checked: the checker computes its own vector per broadcast, ``dep(m)``
(for each origin, how many of its broadcasts causally precede m), from what each node had
broadcast and delivered before broadcasting m; a delivery of m = (origin o, k-th) at node
j is correct when j has delivered exactly k-1 of o's messages and, for every other origin
x, at least ``dep(m)[x]``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Literal

from tejido.core.errors import InvariantViolation

__all__ = [
    "CausalOrderChecker",
    "OrderEvent",
    "TotalOrderChecker",
    "check_causal_order",
    "check_total_order",
    "undelivered",
]

MessageId = Hashable
OrderEvent = tuple[int, Literal["broadcast", "deliver"], MessageId]
"""(node, kind, message id)."""


def _show(mid: MessageId) -> str:
    if isinstance(mid, tuple) and len(mid) == 2:
        return f"{mid[0]}.{mid[1]}"
    return repr(mid)


class CausalOrderChecker:
    """Incremental causal-order and integrity checker; raises `InvariantViolation`."""

    name = "causal-order"

    def __init__(self) -> None:
        self.position: dict[MessageId, tuple[int, int]] = {}
        """Each broadcast message's (origin, k): it is the origin's k-th broadcast."""
        self.dep: dict[MessageId, dict[int, int]] = {}
        self._knows: dict[int, dict[int, int]] = {}
        """Per node: for each origin, how many of its broadcasts causally precede the node's
        next event."""
        self.delivered: dict[int, dict[int, int]] = {}
        """Per node: for each origin, how many of its messages the node delivered."""

    def feed(self, events: Iterable[OrderEvent]) -> None:
        for node, kind, mid in events:
            if kind == "broadcast":
                self.broadcast(node, mid)
            else:
                self.deliver(node, mid)

    def broadcast(self, node: int, mid: MessageId) -> None:
        if mid in self.position:
            raise InvariantViolation("integrity", f"message {_show(mid)} broadcast twice")
        knows = self._knows.setdefault(node, {})
        k = knows.get(node, 0) + 1
        self.position[mid] = (node, k)
        self.dep[mid] = dict(knows)
        knows[node] = k

    def deliver(self, node: int, mid: MessageId) -> None:
        where = self.position.get(mid)
        if where is None:
            raise InvariantViolation(
                "integrity", f"node {node} delivered {_show(mid)}, which was never broadcast"
            )
        origin, k = where
        delivered = self.delivered.setdefault(node, {})
        have = delivered.get(origin, 0)
        if have >= k:
            raise InvariantViolation("integrity", f"node {node} delivered {_show(mid)} twice")
        if have != k - 1:
            raise InvariantViolation(
                self.name,
                f"node {node} delivered {_show(mid)} (message {k} of node {origin}) after only "
                f"{have} of node {origin}'s earlier messages",
            )
        dep = self.dep[mid]
        for other, count in dep.items():
            if other != origin and delivered.get(other, 0) < count:
                raise InvariantViolation(
                    self.name,
                    f"node {node} delivered {_show(mid)} before message {count} of node "
                    f"{other}, which node {origin} had delivered before broadcasting it "
                    f"(node {node} has delivered {delivered.get(other, 0)} of node {other}'s)",
                )
        delivered[origin] = k
        knows = self._knows.setdefault(node, {})
        for other, count in dep.items():
            if count > knows.get(other, 0):
                knows[other] = count
        if k > knows.get(origin, 0):
            knows[origin] = k


class TotalOrderChecker:
    """Incremental total-order (prefix) and integrity checker; raises `InvariantViolation`."""

    name = "total-order"

    def __init__(self) -> None:
        self.order: list[MessageId] = []
        """The one global delivery sequence, as far as any node has delivered."""
        self._index: dict[MessageId, int] = {}
        self.count: dict[int, int] = {}

    def feed(self, events: Iterable[OrderEvent]) -> None:
        for node, kind, mid in events:
            if kind == "deliver":
                self.deliver(node, mid)

    def deliver(self, node: int, mid: MessageId) -> None:
        i = self.count.get(node, 0)
        if i < len(self.order):
            expected = self.order[i]
            if expected != mid:
                raise InvariantViolation(
                    self.name,
                    f"node {node} delivered {_show(mid)} as its message {i + 1}, where another "
                    f"node delivered {_show(expected)}",
                )
        else:
            at = self._index.get(mid)
            if at is not None:
                raise InvariantViolation(
                    self.name,
                    f"node {node} delivered {_show(mid)} as its message {i + 1}, another node "
                    f"as its message {at + 1}",
                )
            self._index[mid] = len(self.order)
            self.order.append(mid)
        self.count[node] = i + 1


def check_causal_order(events: Iterable[OrderEvent]) -> InvariantViolation | None:
    """The first causal-order or integrity violation in `events`, or None."""
    try:
        CausalOrderChecker().feed(events)
    except InvariantViolation as exc:
        return exc
    return None


def check_total_order(events: Iterable[OrderEvent]) -> InvariantViolation | None:
    """The first total-order violation in `events`, or None."""
    try:
        TotalOrderChecker().feed(events)
    except InvariantViolation as exc:
        return exc
    return None


def undelivered(
    broadcasts: Iterable[MessageId], deliveries: Mapping[int, Iterable[MessageId]]
) -> dict[int, list[MessageId]]:
    """For each node, the broadcasts (in the given order) it has not delivered."""
    wanted = list(broadcasts)
    missing: dict[int, list[MessageId]] = {}
    for node, got in sorted(deliveries.items()):
        have = dict.fromkeys(got)
        lacking = [m for m in wanted if m not in have]
        if lacking:
            missing[node] = lacking
    return missing
