"""The watch hub: fans the machine's applied events out to watchers.

The machine calls `on_events(revision, events)` from `apply` for every revision that
changed something (it only calls the hook it was given, so it stays pure); a new watcher
first gets the history from its start revision out of `machine.events(start, key, end)`.

Rules (etcd's watch guarantees, etcd.io/docs/v3.5/learning/api_guarantees "Watch APIs"):

1. Ordered, no gaps, no duplicates: catch-up and registration happen in one step of the
   event loop (nothing runs between reading the history up to revision R and listening
   from R + 1), and live events are queued in the order the machine applies them.
2. A start revision at or below the compacted revision fails with ``compacted`` (from the
   machine's `events`), so a client that resumes too late learns it lost history.
3. Bounded memory: each watcher queues at most `limit` events. A watcher whose consumer
   falls further behind is cancelled with code ``slow`` and the revision it reached, so
   the client can resume from there (and the server does not grow without bound).
4. Progress: a watcher that has had nothing to send for `progress_interval_s` gets an
   empty response whose header revision promises "every event up to here was delivered".
5. When Raft replaces the machine (a snapshot installed from the leader), watchers are
   cancelled with code ``restored``: the events between the old and the new state were
   never applied here one by one; clients resume from their last revision + 1.
6. The hub is the member's listener of applied revisions, so it also tells the automatic
   compactor (`tejido.store.compaction`) of each one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tejido.store.compaction import AutoCompactor
from tejido.store.errors import WatchCancelled

if TYPE_CHECKING:
    from tejido.store.node import StoreNode

__all__ = ["WatchHub", "Watcher"]


class Watcher:
    """One watch: a key range and a bounded queue of (revision, events) batches."""

    def __init__(self, hub: WatchHub, ident: int, key: bytes, range_end: bytes) -> None:
        self.hub = hub
        self.id = ident
        self.key = key
        self.range_end = range_end
        self.queue: deque[tuple[int, list[Any]]] = deque()
        self.queued_events = 0
        self.wakeup = asyncio.Event()
        self.cancelled: WatchCancelled | None = None
        self.last_revision = 0
        """The highest revision handed to the consumer (or covered by the catch-up)."""
        self.min_revision = 0
        """Live events below this are not wanted: a client resuming from revision R on a
        member that has applied less than R must not see R-1 again (rule 1)."""

    def matches(self, key: bytes) -> bool:
        if not self.range_end:
            return key == self.key
        if self.range_end == b"\0":
            return key >= self.key
        return self.key <= key < self.range_end

    def push(self, revision: int, events: Sequence[Any]) -> None:
        if self.cancelled is not None or revision < self.min_revision:
            return
        mine = [e for e in events if self.matches(e.kv.key)]
        if not mine:
            return
        if self.queued_events + len(mine) > self.hub.limit:  # rule 3
            self.cancel(
                "slow",
                f"watcher fell {self.queued_events + len(mine)} events behind "
                f"(limit {self.hub.limit}); resume from revision {self.last_revision + 1}",
            )
            return
        self.queue.append((revision, mine))
        self.queued_events += len(mine)
        self.wakeup.set()

    def cancel(self, code: str, reason: str) -> None:
        if self.cancelled is None:
            self.cancelled = WatchCancelled(reason, code)
            counts = getattr(self.hub, "cancellations", None)  # (tests pass a bare hub)
            if counts is not None:
                counts[code] = counts.get(code, 0) + 1
            self.wakeup.set()

    async def next_batch(self, timeout_s: float) -> list[tuple[int, list[Any]]] | None:
        """Everything queued (oldest first); None when `timeout_s` passed with nothing
        (time for a progress notification). Raises `WatchCancelled` once cancelled and
        drained."""
        if not self.queue and self.cancelled is None:
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout_s)
            except TimeoutError:
                return None
        if self.queue:
            batch = list(self.queue)
            self.queue.clear()
            self.queued_events = 0
            self.last_revision = batch[-1][0]
            return batch
        assert self.cancelled is not None
        raise self.cancelled


class WatchHub:
    """All watchers of one member (rules in the module docstring)."""

    def __init__(self, node: StoreNode) -> None:
        self.node = node
        self.watchers: dict[int, Watcher] = {}
        self._next = 0
        self.started = False
        self.cancellations: dict[str, int] = {}
        """Watchers cancelled so far, by code (slow, restored, stopping)."""
        self.compactor = AutoCompactor(node)

    @property
    def limit(self) -> int:
        return self.node.config.watch_buffer_events

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.compactor.stop()
        for watcher in list(self.watchers.values()):
            watcher.cancel("stopping", "the member is stopping")
        self.watchers.clear()

    def on_events(self, revision: int, events: Sequence[Any]) -> None:
        self.compactor.applied(revision)  # rule 6
        if not self.watchers:
            return
        for watcher in list(self.watchers.values()):
            watcher.push(revision, events)
            if watcher.cancelled is not None:  # rule 3: it no longer holds events here
                del self.watchers[watcher.id]

    def machine_replaced(self) -> None:
        for watcher in list(self.watchers.values()):  # rule 5
            watcher.cancel("restored", "the member restored a snapshot; resume the watch")
        self.watchers.clear()

    def create(
        self, key: bytes, range_end: bytes, start_revision: int
    ) -> tuple[Watcher, list[Any], int]:
        """Register a watcher (rule 1). Returns it, the catch-up events (revision >=
        `start_revision`, already applied), and the current revision. Raises the machine's
        error (``compacted``) for a start revision that is gone."""
        from tejido.store.ops import machine_events, machine_revision

        machine = self.node.machine
        current = machine_revision(machine)
        past: list[Any] = []
        if 0 < start_revision <= current:
            past = machine_events(machine, start_revision, key, range_end)
        self._next += 1
        watcher = Watcher(self, self._next, key, range_end)
        watcher.last_revision = max(current, start_revision - 1)
        watcher.min_revision = start_revision
        self.watchers[watcher.id] = watcher
        return watcher, past, current

    def remove(self, watcher: Watcher) -> None:
        self.watchers.pop(watcher.id, None)
