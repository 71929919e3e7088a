"""A simulated disk that keeps exactly the promises of the storage contract, and no more.

See `tejido.core.storage` for the rules. Writes are visible at once in the volatile image
(which validates them), become durable when a sync that covers them completes, and a crash
keeps only what the rules allow: with power loss, a prefix of the unsynced log operations
(the last surviving append possibly torn to a prefix of its records) and, independently
for each key, a prefix of that key's unsynced puts. Without power loss (a process crash)
the operating system had every write, so all of them survive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tejido.core.storage import LogAppend, Put, Recovered, StorageOp, StorageState

__all__ = ["CrashReport", "SimDisk"]


@dataclass(frozen=True, slots=True)
class CrashReport:
    lost: int
    """Unsynced operations that did not survive."""
    torn: bool
    """Whether the last surviving append lost some of its records."""


class SimDisk:
    __slots__ = ("_durable", "_synced_seq", "_unsynced", "_volatile", "_written_seq")

    def __init__(self) -> None:
        self._durable = StorageState()
        self._volatile = StorageState()
        self._unsynced: list[StorageOp] = []
        self._written_seq = 0  # operations written so far (ever)
        self._synced_seq = 0  # operations known durable

    def write(self, op: StorageOp) -> None:
        self._volatile.apply(op)  # raises LocalProtocolError on a bad operation
        self._unsynced.append(op)
        self._written_seq += 1

    def sync_point(self) -> int:
        """The sequence number a sync issued now would cover."""
        return self._written_seq

    def complete_sync(self, upto_seq: int) -> None:
        """Make every operation with sequence number < `upto_seq` durable."""
        count = upto_seq - self._synced_seq
        if count <= 0:
            return
        for op in self._unsynced[:count]:
            self._durable.apply(op)
        del self._unsynced[:count]
        self._synced_seq = upto_seq

    @property
    def unsynced(self) -> int:
        return len(self._unsynced)

    def durable(self) -> Recovered:
        """The durable image only (what survives a power loss that keeps no unsynced write)."""
        return self._durable.snapshot()

    def recover(self) -> Recovered:
        """What a restarting node finds (call after `crash`)."""
        return self._durable.snapshot()

    def crash(self, rng: random.Random, power_loss: bool, torn_probability: float) -> CrashReport:
        """Decide which unsynced writes survive, and forget the volatile image."""
        pending = self._unsynced
        survivors: list[StorageOp]
        torn = False
        if not power_loss or not pending:
            survivors = pending
        else:
            log_positions = [i for i, op in enumerate(pending) if not isinstance(op, Put)]
            keep_log = rng.randint(0, len(log_positions))
            keep = set(log_positions[:keep_log])
            puts_by_key: dict[str, list[int]] = {}
            for i, op in enumerate(pending):
                if isinstance(op, Put):
                    puts_by_key.setdefault(op.key, []).append(i)
            for positions in puts_by_key.values():
                keep.update(positions[: rng.randint(0, len(positions))])
            survivors = [op for i, op in enumerate(pending) if i in keep]
            if keep_log and rng.random() < torn_probability:
                last = log_positions[keep_log - 1]
                op = pending[last]
                if isinstance(op, LogAppend) and len(op.records) > 1:
                    cut = LogAppend(op.records[: rng.randint(1, len(op.records) - 1)])
                    survivors = [cut if o is op else o for o in survivors]
                    # Nothing after a torn append can have reached the log file.
                    index = survivors.index(cut)
                    survivors = survivors[: index + 1] + [
                        o for o in survivors[index + 1 :] if isinstance(o, Put)
                    ]
                    torn = True
        for op in survivors:
            self._durable.apply(op)
        lost = len(pending) - len(survivors) + (1 if torn else 0)
        self._unsynced = []
        self._synced_seq = self._written_seq = 0
        self._volatile = StorageState(self._durable.snapshot())
        return CrashReport(lost=lost, torn=torn)
