"""What every mutual-exclusion process shares: local requests, the critical section, events.

A client command ``acquire`` asks the node to enter the critical section (CS) once: the
node requests it with its algorithm, enters when the algorithm grants it (`EnterCS`),
stays for ``hold_s`` on its own clock, exits (`ExitCS`), releases with its algorithm, and
only then answers the client ``ok``. Commands that arrive while one is in progress queue
up locally, in arrival order; the algorithm sees one request at a time per node, as the
textbook algorithms assume.

Subclasses implement `request_cs` (start asking) and `release_cs` (after leaving), and call
`enter_cs` when their algorithm grants entry. `in_cs` is what the mutual-exclusion
invariant reads after every simulator event.
"""

from __future__ import annotations

from collections import deque

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process

__all__ = ["EnterCS", "ExitCS", "MutexProcess", "Requested"]

HOLD_TIMER = TimerName("hold")


class Requested(Event, frozen=True):
    """The node asked its algorithm for the critical section (entry number ``entry``)."""

    entry: int

    def describe(self) -> str:
        return f"request CS #{self.entry}"


class EnterCS(Event, frozen=True):
    entry: int

    def describe(self) -> str:
        return f"ENTER CS #{self.entry}"


class ExitCS(Event, frozen=True):
    entry: int

    def describe(self) -> str:
        return f"exit CS #{self.entry}"


class MutexProcess(Process):
    """Base class: the local request queue and the critical section's life cycle."""

    __slots__ = ("_current", "_queue", "entries", "hold_s", "in_cs")

    def __init__(self, env: Env, hold_s: float) -> None:
        super().__init__(env)
        self.hold_s = hold_s
        self.in_cs = False
        self.entries = 0
        """How many times this node entered the critical section."""
        self._queue: deque[RequestId] = deque()
        self._current: RequestId | None = None

    @property
    def requesting(self) -> bool:
        """A request of this node is outstanding (asked for, not yet entered)."""
        return self._current is not None and not self.in_cs

    def on_command(self, request: RequestId, operation: Operation) -> None:
        if operation.f != "acquire":
            self.reply(
                request,
                Outcome(
                    "fail", error=f"{type(self).__name__} takes 'acquire', not {operation.f!r}"
                ),
            )
            return
        self._queue.append(request)
        self._next_request()

    def _next_request(self) -> None:
        if self._current is not None or not self._queue:
            return
        self._current = self._queue.popleft()
        self.report(Requested(self.entries + 1))
        self.request_cs()

    def enter_cs(self) -> None:
        """The algorithm granted the critical section to this node."""
        if self.in_cs or self._current is None:
            raise LocalProtocolError(f"node {self.node_id} entered the CS without a request")
        self.in_cs = True
        self.entries += 1
        self.report(EnterCS(self.entries))
        self.set_timer(HOLD_TIMER, self.hold_s)

    def on_timer(self, name: TimerName) -> None:
        if name != HOLD_TIMER:
            self.on_algorithm_timer(name)
            return
        request = self._current
        if not self.in_cs or request is None:
            return
        self.in_cs = False
        self._current = None
        self.report(ExitCS(self.entries))
        self.release_cs()
        self.reply(request, Outcome("ok", self.entries))
        self._next_request()

    # For subclasses ------------------------------------------------------------------------
    def request_cs(self) -> None:
        raise NotImplementedError

    def release_cs(self) -> None:
        raise NotImplementedError

    def on_algorithm_timer(self, name: TimerName) -> None:
        raise LocalProtocolError(f"{type(self).__name__} set no timer named {name!r}")

    def others(self) -> tuple[NodeId, ...]:
        return self.env.peers
