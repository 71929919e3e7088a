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
   documented behaviour ("when the leader changes, the remaining TTL of every lease is
   reset to its granted TTL", etcd.io/docs/v3.5/learning/api_guarantees, leases). A lease
   therefore lasts *at least* its TTL after the last successful keep-alive, and may last
   up to about one TTL plus an election longer.
5. The lessor reads the machine's lease table at each tick, so leases granted through any
   member (a forwarded grant) or restored from a snapshot get a deadline at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tejido.store.node import StoreNode

__all__ = ["Lessor"]

log = logging.getLogger("tejido.store.lessor")


class Lessor:
    """Lease deadlines of one member (rules in the module docstring)."""

    def __init__(self, node: StoreNode, *, tick_s: float = 0.05, retry_s: float = 2.0) -> None:
        self.node = node
        self.tick_s = tick_s
        self.retry_s = retry_s
        self.deadlines: dict[int, float] = {}
        self._term: int | None = None
        self._expiring: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._proposals: set[asyncio.Task[None]] = set()
        self.clock = time.monotonic

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for task in self._proposals:
            task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)  # a periodic timer, not a wait for a condition
            try:
                self.tick()
            except Exception:  # keep ticking: a bad tick must not end lease expiry
                log.exception("lessor tick failed")

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
            return True
        for lease, ttl in leases.items():
            if lease not in self.deadlines:
                self.deadlines[lease] = now + ttl
        for lease in [lease for lease in self.deadlines if lease not in leases]:
            del self.deadlines[lease]
            self._expiring.pop(lease, None)
        return True

    def tick(self) -> None:
        self.node.check_leader()
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

        with contextlib.suppress(Exception):  # rule 3: retried at a later tick
            await self.node.propose(expire_command(leases))

    def keepalive(self, lease: int) -> int:
        """Rule 2: renew `lease`; returns its TTL. Raises `NotLeader` on a follower and
        `StoreError(lease_not_found)` for a lease the machine does not hold."""
        from tejido.store.errors import StoreError

        if not self.sync():
            raise self.node.not_leader()
        ttl = self._leases().get(lease)
        if ttl is None:
            raise StoreError(f"lease {lease} not found (expired or revoked)", "lease_not_found")
        self.deadlines[lease] = self.clock() + ttl
        self._expiring.pop(lease, None)
        return ttl

    def remaining(self, lease: int) -> float:
        """Seconds left before `lease` expires (leader only; -1 for an unknown lease)."""
        if not self.sync():
            raise self.node.not_leader()
        deadline = self.deadlines.get(lease)
        if deadline is None:
            return -1.0
        return max(0.0, deadline - self.clock())
