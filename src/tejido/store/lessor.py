"""The lessor: lease deadlines, kept by the leader only, on its own monotonic clock.

The machine (`tejido.mvcc`) stores leases (id, granted TTL, attached keys) but never reads
a clock: whether a lease is still alive is decided here, by the leader, and the decision
is replicated as a `LeaseExpire(ids)` command, so every replica deletes the same keys at
the same revision.

Rules:

1. Only the leader keeps deadlines. A follower holds none and answers keep-alive and
   remaining-TTL requests with `NotLeader` (naming the leader's client address).
2. Keep-alive renews a lease to ``now + ttl`` on the leader's monotonic clock.
3. When a lease's deadline passes, the leader proposes ``LeaseExpire([ids])``; a proposal
   whose lease is still there `retry_s` later (lost leadership, a lost proposal) is
   proposed again. Expiring a lease already gone is harmless (the machine ignores it).
4. On becoming leader (a new term seen while leader), every lease gets its full TTL again
   from now: the new leader cannot know how long ago the old one last renewed it, and
   expiring early would break the promise to a client that kept it alive. This is etcd's
   documented behaviour (etcd.io/docs/v3.5/learning/api_guarantees, "Lease": "when the
   leader changes, the remaining TTL of every lease is reset to its granted TTL"; etcd's
   ``lessor.Promote`` does the same). A lease therefore lasts *at least* its TTL after the
   last successful keep-alive, and may last up to about one TTL plus an election longer.
5. Event-driven, no polling: one loop timer is armed for the earliest moment something
   may be due (the next deadline, or the next retry of rule 3), and re-armed whenever
   that moment changes: `changed()` is called (soon after, never inside a Raft step) when
   the machine's lease table changes (a grant or revoke applied, whichever member it came
   through; a snapshot restored) and when this member's role or term changes
   (`tejido.store.node`). A keep-alive only moves a deadline later, so it re-arms nothing:
   the timer may then fire early, finds nothing due and arms itself for the new earliest
   deadline. With no leases, or on a follower, no timer is armed at all. The timer is set
   `TIMER_SLACK_S` (1 ms) past the moment: uvloop's (libuv's) timers count whole
   milliseconds from a loop time taken at the start of an iteration, so a timer may fire
   up to a millisecond before the moment on `clock`; without the slack it found nothing
   due and re-armed for the sub-millisecond rest, waking on every loop iteration until
   the moment came (15 wake-ups for one deadline seen in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from tejido.store.errors import NotApplied

if TYPE_CHECKING:
    from tejido.store.node import StoreNode

__all__ = ["Lessor"]

log = logging.getLogger("tejido.store.lessor")

#: How long after its moment the timer is set, so it never fires before it (rule 5).
TIMER_SLACK_S = 0.001


class Lessor:
    """Lease deadlines of one member (rules in the module docstring)."""

    def __init__(self, node: StoreNode, *, retry_s: float = 2.0) -> None:
        self.node = node
        self.retry_s = retry_s
        self.deadlines: dict[int, float] = {}
        self._term: int | None = None
        self._expiring: dict[int, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._change_pending = False
        self._proposals: set[asyncio.Task[None]] = set()
        self.wakeups = 0
        """How many times the timer fired (rule 5: once per due moment, not periodically)."""
        self.clock = time.monotonic

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.changed()

    def stop(self) -> None:
        self._loop = None
        self._disarm()
        for task in self._proposals:
            task.cancel()

    # ------------------------------------------------------------------ rule 5
    def changed_soon(self) -> None:
        """`changed()` at the next loop iteration (safe to call from inside a Raft step or
        the machine's apply; several calls in one iteration run it once)."""
        loop = self._loop
        if loop is None or self._change_pending:
            return
        self._change_pending = True
        loop.call_soon(self._run_changed)

    def _run_changed(self) -> None:
        self._change_pending = False
        self.changed()

    def changed(self) -> None:
        """Leases or leadership may have changed: bring deadlines in line, re-arm."""
        if self._loop is None:
            return
        try:
            self.sync()
        except NotApplied:  # Raft not running (yet, or any more): nothing to keep
            self.deadlines.clear()
            self._expiring.clear()
        self._arm()

    @property
    def next_wake(self) -> float | None:
        """When the armed timer fires (on `clock`), or None when none is armed."""
        return self._timer_at

    def _due(self) -> float | None:
        """The earliest moment a lease may need a proposal (rule 3 or 5)."""
        earliest: float | None = None
        for lease, deadline in self.deadlines.items():
            proposed = self._expiring.get(lease)
            due = deadline if proposed is None else max(deadline, proposed + self.retry_s)
            if earliest is None or due < earliest:
                earliest = due
        return earliest

    def _arm(self) -> None:
        due = self._due()
        if due is not None and self._timer_at is not None and self._timer_at <= due:
            return  # armed for earlier: it fires, finds nothing due, and re-arms
        self._disarm()
        loop = self._loop
        if due is None or loop is None:
            return
        self._timer_at = due
        self._timer = loop.call_later(max(0.0, due - self.clock()) + TIMER_SLACK_S, self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.wakeups += 1
        try:
            self.tick()
        except Exception:  # keep expiring: one bad round must not end lease expiry
            log.exception("lessor round failed")
        self._arm()

    # ------------------------------------------------------------------ rules 1-4
    def _leases(self) -> dict[int, int]:
        from tejido.store.ops import machine_leases

        return machine_leases(self.node.machine)

    def sync(self) -> bool:
        """Bring deadlines in line with the machine's leases (rules 1, 4, 5); True when
        this member is the leader."""
        if not self.node.is_leader:
            self._term = None
            self.deadlines.clear()
            self._expiring.clear()
            return False
        now = self.clock()
        leases = self._leases()
        term = int(self.node.raft.term)
        if term != self._term:  # rule 4
            self._term = term
            self.deadlines = {lease: now + ttl for lease, ttl in leases.items()}
            self._expiring.clear()
            self._arm()
            return True
        added = False
        for lease, ttl in leases.items():
            if lease not in self.deadlines:
                self.deadlines[lease] = now + ttl
                added = True
        for lease in [lease for lease in self.deadlines if lease not in leases]:
            del self.deadlines[lease]
            self._expiring.pop(lease, None)
        if added:
            self._arm()
        return True

    def tick(self) -> None:
        """Propose the expiry of every lease that is due (rule 3)."""
        if not self.sync():
            return
        now = self.clock()
        expired = [
            lease
            for lease, deadline in self.deadlines.items()
            if deadline <= now and now - self._expiring.get(lease, float("-inf")) >= self.retry_s
        ]
        if not expired:
            return
        for lease in expired:
            self._expiring[lease] = now
        task = asyncio.get_running_loop().create_task(self._expire(sorted(expired)))
        self._proposals.add(task)
        task.add_done_callback(self._proposals.discard)

    async def _expire(self, leases: list[int]) -> None:
        from tejido.store.ops import expire_command

        with contextlib.suppress(Exception):  # rule 3: retried retry_s later
            await self.node.propose(expire_command(leases))

    def keepalive(self, lease: int) -> int:
        """Rule 2: renew `lease`; returns its TTL. Raises `NotLeader` on a follower and
        `StoreError(lease_not_found)` for a lease the machine does not hold."""
        from tejido.store.errors import StoreError

        stale = not self.node.is_leader or int(self.node.raft.term) != self._term
        if stale and not self.sync():
            raise self.node.not_leader()
        ttl = self._granted(lease)
        if ttl is None:
            raise StoreError(f"lease {lease} not found (expired or revoked)", "lease_not_found")
        known = lease in self.deadlines
        self.deadlines[lease] = self.clock() + ttl  # later than before: no re-arm (rule 5)
        self._expiring.pop(lease, None)
        if not known:  # granted a moment ago, before `changed_soon` ran: time it now
            self._arm()
        return ttl

    def _granted(self, lease: int) -> int | None:
        """The lease's granted TTL, None when the machine does not hold it; a direct
        look-up in the MVCC machine's table (a keep-alive stream may renew thousands of
        leases a second), else through its query."""
        table = getattr(getattr(self.node.machine, "space", None), "leases", None)
        by_id = getattr(table, "by_id", None)
        if isinstance(by_id, dict):
            found = by_id.get(lease)
            return None if found is None else int(found.ttl)
        return self._leases().get(lease)

    def remaining(self, lease: int) -> float:
        """Seconds left before `lease` expires (leader only; -1 for an unknown lease)."""
        if not self.sync():
            raise self.node.not_leader()
        deadline = self.deadlines.get(lease)
        if deadline is None:
            return -1.0
        return max(0.0, deadline - self.clock())
