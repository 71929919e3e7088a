"""Automatic compaction: the leader keeps the last N revisions of history.

Without compaction the MVCC history grows with every write, and so do the member's
memory and every Raft snapshot (the whole retained history is encoded and written each
``snapshot_threshold_entries`` entries, `tejido.mvcc.machine` rule 5): the cost of a put
creeps up for as long as the store runs. etcd offers the same remedy as a server option,
``--auto-compaction-mode=revision --auto-compaction-retention=N`` ("keep the latest N
revisions", etcd.io/docs/v3.5/op-guide/maintenance, "Auto Compaction"); this is ours.

Rules:

1. ``auto_compaction_revisions = N`` (0, the default: never) in the member's config. When
   the applied revision R reaches the compacted revision + N + a step of ``max(1, N // 4)``
   revisions, the leader proposes ``Compaction(R - N)`` through Raft like any client's
   compaction: every member compacts at the same point of the log, and a read or watch of
   a revision at or below it gets ``compacted`` (etcd's behaviour).
2. Nothing polls: the check runs in the applied-events hook (`WatchHub.on_events`), one
   comparison per revision until the next threshold. A follower passes its threshold
   (moving it one step on) and proposes nothing; a new leader compacts when its applied
   revision next crosses one.
3. At most one compaction is in flight. Its outcome is not awaited by anyone: a refusal
   (``compacted`` by a concurrent client compaction, no leader, a lost leadership) only
   means the next threshold tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from tejido.mvcc import api
from tejido.store import ops
from tejido.store.errors import NotApplied, OutcomeUnknown, StoreError

if TYPE_CHECKING:
    from tejido.store.node import StoreNode

__all__ = ["AutoCompactor"]


class AutoCompactor:
    """Rule 1-3 for one member."""

    __slots__ = ("_next_at", "_task", "node", "retain", "step")

    def __init__(self, node: StoreNode) -> None:
        self.node = node
        self.retain = node.config.auto_compaction_revisions
        self.step = max(1, self.retain // 4)
        self._next_at = self.retain + self.step if self.retain > 0 else -1
        self._task: asyncio.Task[None] | None = None

    def applied(self, revision: int) -> None:
        """Rule 2: called with every applied revision."""
        if revision < self._next_at or self._next_at < 0:
            return
        self._next_at = revision + self.step
        if self._task is not None or not self.node.is_leader:
            return
        target = revision - self.retain
        if target <= self.node.machine.compacted_revision:
            return
        self._task = asyncio.get_running_loop().create_task(self._compact(target))

    async def _compact(self, revision: int) -> None:
        try:
            command = ops.command(api.CompactionRequest(revision=revision))
            with contextlib.suppress(NotApplied, OutcomeUnknown, StoreError):  # rule 3
                ops.check_result(await self.node.propose(command))
        finally:
            self._task = None

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
