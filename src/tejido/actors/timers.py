"""An actor's timers: scheduled messages to itself, keyed, cancellable.

``self.timers.start_single(key, message, delay_s)`` delivers `message` to the actor once
after `delay_s`; ``start_periodic(key, message, interval_s)`` every `interval_s` (fixed
rate: ticks are due at start + k * interval; when the actor falls behind, missed ticks are
skipped, never queued up). Rules, after Akka's TimerScheduler (doc.akka.io, "Timers,
scheduled messages"):

1. One timer per key: starting a key again replaces (cancels) the previous timer.
2. A cancelled or replaced timer delivers nothing more, *even a message already queued*:
   every queued timer message carries its timer's generation and is dropped on dequeue
   when the timer is gone or was replaced.
3. Timers belong to one incarnation: a restart or a stop cancels all of them.

Timer messages go through the mailbox like any other, so they keep the one-at-a-time rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tejido.actors.cell import ActorCell

__all__ = ["Timers"]


class TimerMessage:
    """The mailbox item of a timer: the message plus which timer (and generation) sent it."""

    __slots__ = ("generation", "key", "message")

    def __init__(self, key: Hashable, generation: int, message: object) -> None:
        self.key = key
        self.generation = generation
        self.message = message


@dataclass(slots=True)
class _Timer:
    generation: int
    message: object
    interval_s: float | None
    due: float
    handle: asyncio.TimerHandle | None = None


class Timers:
    """The timers of one actor (``self.timers`` inside an actor)."""

    __slots__ = ("_active", "_cell", "_generation")

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell
        self._active: dict[Hashable, _Timer] = {}
        self._generation = 0

    def start_single(self, key: Hashable, message: Any, delay_s: float) -> None:
        """Deliver `message` once after `delay_s` seconds (replacing any timer `key`)."""
        self._start(key, message, delay_s, None)

    def start_periodic(
        self,
        key: Hashable,
        message: Any,
        interval_s: float,
        *,
        initial_delay_s: float | None = None,
    ) -> None:
        """Deliver `message` every `interval_s` seconds, the first after `initial_delay_s`
        (default: one interval)."""
        if interval_s <= 0:
            raise ValueError(f"a periodic timer needs a positive interval, got {interval_s}")
        first = interval_s if initial_delay_s is None else initial_delay_s
        self._start(key, message, first, interval_s)

    def cancel(self, key: Hashable) -> bool:
        """Cancel timer `key`; True when it was active."""
        timer = self._active.pop(key, None)
        if timer is None:
            return False
        if timer.handle is not None:
            timer.handle.cancel()
        return True

    def cancel_all(self) -> None:
        for key in list(self._active):
            self.cancel(key)

    def is_active(self, key: Hashable) -> bool:
        return key in self._active

    @property
    def keys(self) -> list[Hashable]:
        return list(self._active)

    # ------------------------------------------------------------------ internals
    def _start(self, key: Hashable, message: Any, delay_s: float, interval_s: float | None) -> None:
        if delay_s < 0:
            raise ValueError(f"a timer delay must not be negative, got {delay_s}")
        self.cancel(key)
        self._generation += 1
        loop = self._cell.system.loop
        timer = _Timer(self._generation, message, interval_s, loop.time() + delay_s)
        self._active[key] = timer
        timer.handle = loop.call_at(timer.due, self._fire, key, timer.generation)

    def _fire(self, key: Hashable, generation: int) -> None:
        timer = self._active.get(key)
        if timer is None or timer.generation != generation:
            return
        self._cell.enqueue_system(TimerMessage(key, generation, timer.message))
        if timer.interval_s is None:
            timer.handle = None
            return
        loop = self._cell.system.loop
        now = loop.time()
        timer.due += timer.interval_s
        if timer.due <= now:  # fell behind: skip the missed ticks
            missed = int((now - timer.due) // timer.interval_s) + 1
            timer.due += missed * timer.interval_s
        timer.handle = loop.call_at(timer.due, self._fire, key, generation)

    def accept(self, item: TimerMessage) -> tuple[bool, object]:
        """Whether a dequeued timer message is still wanted, and its message (rule 2)."""
        timer = self._active.get(item.key)
        if timer is None or timer.generation != item.generation:
            return False, None
        if timer.interval_s is None:
            del self._active[item.key]
        return True, item.message
