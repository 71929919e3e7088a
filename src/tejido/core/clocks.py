"""Logical clocks as values: Lamport clocks and vector clocks.

Rules implemented (Lamport 1978, "Time, Clocks, and the Ordering of Events", IR1/IR2;
Fidge 1988 and Mattern 1989 for vector clocks):

1. A process ticks its clock before each local event and each send.
2. A message carries the sender's clock after that tick.
3. On receipt, the receiver merges: Lamport takes ``max(own, received) + 1``; a vector clock
   takes the element-wise maximum and then ticks its own entry.

Consequences the property tests check: ``a -> b`` (happens-before) implies
``lamport(a) < lamport(b)``; for vector clocks, ``a -> b`` if and only if ``vc(a) < vc(b)``,
and two events are concurrent exactly when neither vector is below the other.

Both types are immutable: every operation returns a new value, so a stamped message can
never be changed by the node that sent it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping

from tejido.core.ids import NodeId

__all__ = ["Causality", "LamportClock", "VectorClock"]


class Causality(enum.Enum):
    """How two vector timestamps relate."""

    BEFORE = "before"  # self happened before other
    AFTER = "after"  # other happened before self
    EQUAL = "equal"
    CONCURRENT = "concurrent"


class LamportClock:
    """A Lamport timestamp: one integer, totally ordered (ties broken by node id by callers)."""

    __slots__ = ("_time",)

    def __init__(self, time: int = 0) -> None:
        if time < 0:
            raise ValueError(f"Lamport time must be >= 0, got {time}")
        self._time = time

    @property
    def time(self) -> int:
        return self._time

    def tick(self) -> LamportClock:
        """The clock after a local event or a send."""
        return LamportClock(self._time + 1)

    def merge(self, received: LamportClock) -> LamportClock:
        """The clock after receiving a message stamped `received`."""
        return LamportClock(max(self._time, received._time) + 1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LamportClock) and self._time == other._time

    def __lt__(self, other: LamportClock) -> bool:
        return self._time < other._time

    def __le__(self, other: LamportClock) -> bool:
        return self._time <= other._time

    def __hash__(self) -> int:
        return hash(self._time)

    def __repr__(self) -> str:
        return f"LamportClock({self._time})"


class VectorClock(Mapping[NodeId, int]):
    """A vector timestamp: a counter per node; absent nodes count as zero.

    It is a read-only mapping, so ``vc[node]`` and ``dict(vc)`` work. Entries are kept in
    node-id order, which makes `repr` and serialisation deterministic.
    """

    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[NodeId, int] | None = None) -> None:
        items: dict[NodeId, int] = {}
        if counts:
            for node in sorted(counts):
                count = counts[node]
                if count < 0:
                    raise ValueError(f"vector clock entry for node {node} is negative: {count}")
                if count:
                    items[node] = count
        self._counts = items

    @classmethod
    def _trusted(cls, counts: dict[NodeId, int]) -> VectorClock:
        """Wrap a dict that is already sorted, non-negative and without zeros."""
        clock = cls.__new__(cls)
        clock._counts = counts
        return clock

    # Mapping protocol -------------------------------------------------------------------
    def __getitem__(self, node: NodeId) -> int:
        return self._counts.get(node, 0)

    def __iter__(self) -> Iterator[NodeId]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, node: object) -> bool:
        return node in self._counts

    # Clock operations -------------------------------------------------------------------
    def tick(self, node: NodeId) -> VectorClock:
        """The clock after `node` performs a local event or a send."""
        counts = dict(self._counts)
        if node in counts:
            counts[node] += 1
            return VectorClock._trusted(counts)
        counts[node] = 1
        return VectorClock._trusted(dict(sorted(counts.items())))

    def _max_with(self, other: VectorClock) -> tuple[dict[NodeId, int], bool]:
        """Element-wise maximum as a new dict, and whether it gained a node."""
        counts = dict(self._counts)
        added = False
        for node, count in other._counts.items():
            mine = counts.get(node)
            if mine is None:
                counts[node] = count
                added = True
            elif count > mine:
                counts[node] = count
        return counts, added

    def merge(self, other: VectorClock) -> VectorClock:
        """Element-wise maximum (the receive rule, before the receiver ticks)."""
        counts, added = self._max_with(other)
        return VectorClock._trusted(dict(sorted(counts.items())) if added else counts)

    def receive(self, node: NodeId, stamp: VectorClock) -> VectorClock:
        """Merge a received stamp, then tick `node`: the whole receive rule, in one pass."""
        counts, added = self._max_with(stamp)
        mine = counts.get(node)
        if mine is None:
            counts[node] = 1
            added = True
        else:
            counts[node] = mine + 1
        return VectorClock._trusted(dict(sorted(counts.items())) if added else counts)

    def compare(self, other: VectorClock) -> Causality:
        less = greater = False
        for node in self._counts.keys() | other._counts.keys():
            a = self._counts.get(node, 0)
            b = other._counts.get(node, 0)
            if a < b:
                less = True
            elif a > b:
                greater = True
            if less and greater:
                return Causality.CONCURRENT
        if less:
            return Causality.BEFORE
        if greater:
            return Causality.AFTER
        return Causality.EQUAL

    def happens_before(self, other: VectorClock) -> bool:
        return self.compare(other) is Causality.BEFORE

    def concurrent_with(self, other: VectorClock) -> bool:
        return self.compare(other) is Causality.CONCURRENT

    def __le__(self, other: VectorClock) -> bool:
        return self.compare(other) in (Causality.BEFORE, Causality.EQUAL)

    def __lt__(self, other: VectorClock) -> bool:
        return self.compare(other) is Causality.BEFORE

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VectorClock) and self._counts == other._counts

    def __hash__(self) -> int:
        return hash(tuple(self._counts.items()))

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form: string keys in node order (JSON objects need string keys)."""
        return {str(node): count for node, count in self._counts.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{node}: {count}" for node, count in self._counts.items())
        return f"VectorClock({{{inner}}})"
