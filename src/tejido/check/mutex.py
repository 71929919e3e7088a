"""Checker for mutual exclusion: never two processes in the critical section at once.

It reads a history of ``request``, ``enter`` and ``exit`` events (time, node, kind), in
time order, and judges two properties (Lamport 1978; Ricart and Agrawala 1981):

- **Safety (mutual exclusion)**: between a node's ``enter`` and its ``exit`` no other node
  enters. An ``exit`` without an ``enter``, or a second ``enter`` by the holder, is a
  malformed history and reported as such.
- **Liveness**: every ``request`` is followed by an ``enter`` of the same node (each node
  has at most one outstanding request). `unserved` lists the requests made in a window
  that were never granted; a caller judges only the window in which the network was
  healthy, as the algorithms promise nothing under faults they do not tolerate.

Like the order checkers it never looks at an algorithm's state, so it reads simulator
runs and runs of real processes alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from tejido.core.errors import InvariantViolation

__all__ = ["MutexEvent", "MutualExclusionChecker", "check_mutual_exclusion"]

MutexEvent = tuple[float, int, Literal["request", "enter", "exit"]]
"""(time, node, kind)."""


class MutualExclusionChecker:
    """Incremental checker; `enter`/`exit` raise `InvariantViolation` at the first fault."""

    name = "mutual-exclusion"

    def __init__(self) -> None:
        self.holder: int | None = None
        self.since = 0.0
        self.entries = 0
        self.waiting: dict[int, float] = {}
        """Each node's outstanding request and when it was made."""
        self.granted: list[tuple[int, float, float]] = []
        """(node, requested at, entered at) of every granted request."""

    def feed(self, events: Iterable[MutexEvent]) -> None:
        for at, node, kind in events:
            if kind == "request":
                self.request(node, at)
            elif kind == "enter":
                self.enter(node, at)
            else:
                self.exit(node, at)

    def request(self, node: int, at: float) -> None:
        self.waiting.setdefault(node, at)

    def enter(self, node: int, at: float) -> None:
        if self.holder is not None:
            raise InvariantViolation(
                self.name,
                f"node {node} entered the critical section at {at:.6f}s while node "
                f"{self.holder} has been in it since {self.since:.6f}s",
            )
        self.holder, self.since = node, at
        self.entries += 1
        requested = self.waiting.pop(node, None)
        if requested is not None:
            self.granted.append((node, requested, at))

    def exit(self, node: int, at: float) -> None:
        if self.holder != node:
            raise InvariantViolation(
                "mutex-history",
                f"node {node} left the critical section at {at:.6f}s without being in it "
                f"(holder: {self.holder})",
            )
        self.holder = None

    def unserved(self, since_s: float, until_s: float) -> list[tuple[int, float]]:
        """Outstanding requests made in ``[since_s, until_s]``: (node, requested at)."""
        return sorted((node, at) for node, at in self.waiting.items() if since_s <= at <= until_s)


def check_mutual_exclusion(events: Iterable[MutexEvent]) -> InvariantViolation | None:
    """The first mutual-exclusion violation in `events` (time-ordered), or None."""
    try:
        MutualExclusionChecker().feed(events)
    except InvariantViolation as exc:
        return exc
    return None
