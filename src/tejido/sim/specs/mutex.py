"""Mutual-exclusion algorithms in the simulator: central coordinator, Ricart-Agrawala,
Lamport, token ring.

Clients submit ``acquire`` to random nodes; the node enters the critical section, stays
``hold_s``, leaves, and answers ``ok``, so the runner's liveness check (every operation
invoked after the heal completes) is "every request is granted while the network is
healthy". Fault sets follow each algorithm's assumptions:

- central, Ricart-Agrawala, Lamport: reliable channels and no failures, so duplication,
  reordering (FIFO is restored by per-link numbering), pauses, clock drift and slow disks;
- token ring: the token may be lost, so also message loss and partitions (still no
  crashes).

Checked after every event (`tejido.check.mutex`): never two nodes in the critical section.
Checked at the end: no request made in the healthy phase (until ``settle_s`` before the
end) is still waiting.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tejido.algorithms.lamport_mutex import LamportMutex
from tejido.algorithms.mutex_base_a1 import MutexProcess
from tejido.algorithms.mutex_central import CentralMutex
from tejido.algorithms.ricart_agrawala import RAConfig, RicartAgrawala
from tejido.algorithms.token_ring import TokenRing
from tejido.check.mutex import MutualExclusionChecker
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.protocol import Env, Process
from tejido.sim.counts import CountCase, CountRun
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["COUNTS", "SPECS", "AcquireWorkload", "MutualExclusion"]

RELIABLE_FAULTS = ("duplicate", "reorder", "pause", "clock", "disk")
TOKEN_FAULTS = ("drop", "duplicate", "reorder", "partition", "pause", "clock", "disk")


@dataclass(slots=True)
class AcquireWorkload:
    """``acquire 1``, ``acquire 2``, ...: each asks for one turn in the critical section."""

    _counter: int = 0

    def next_operation(self, rng: random.Random) -> Operation:
        self._counter += 1
        return Operation("acquire", None, self._counter)


class MutualExclusion(Invariant):
    """Feeds each node's requests, entries and exits to `MutualExclusionChecker`."""

    name = "mutual-exclusion"

    def __init__(self, settle_s: float = 1.0) -> None:
        self.checker = MutualExclusionChecker()
        self.settle_s = settle_s
        self._state: dict[NodeId, tuple[bool, int, bool]] = {}
        """Per node, what it was last seen doing: (in_cs, entries, requesting)."""

    def check(self, sim: Simulator) -> None:
        now = sim.now
        checker = self.checker
        entering: list[NodeId] = []
        for node, process in sim.processes().items():
            if not isinstance(process, MutexProcess):
                continue
            in_cs, entries, requesting = process.in_cs, process.entries, process.requesting
            was_in, was_entries, was_requesting = self._state.get(node, (False, 0, False))
            if (in_cs, entries, requesting) == (was_in, was_entries, was_requesting):
                continue
            if was_in and (not in_cs or entries != was_entries):
                checker.exit(node, now)  # exits first: a node may leave and re-enter at once
            if requesting and not was_requesting:
                checker.request(node, now)
            if in_cs and (not was_in or entries != was_entries):
                if not was_requesting:
                    checker.request(node, now)  # asked and granted in one step
                entering.append(node)
            self._state[node] = (in_cs, entries, requesting)
        for node in entering:
            checker.enter(node, now)

    def finish(self, sim: Simulator, healthy_from_s: float) -> None:
        late = self.checker.unserved(healthy_from_s, sim.now - self.settle_s)
        if late:
            shown = ", ".join(f"node {n} since {at:.3f}s" for n, at in late[:5])
            raise InvariantViolation(
                "mutex-liveness",
                f"{len(late)} request(s) of the healthy phase never granted: {shown}",
            )


def _spec(
    name: str,
    summary: str,
    factory: Callable[[Env], Process],
    faults: tuple[str, ...],
    broken: bool = False,
) -> ProtocolSpec:
    return ProtocolSpec(
        name=name,
        summary=summary,
        factory=factory,
        workload=AcquireWorkload,
        invariants=lambda: [MutualExclusion()],
        faults=faults,
        min_nodes=1,
        broken=broken,
    )


SPECS = [
    _spec(
        "central-mutex",
        "mutual exclusion through one coordinator (the baseline)",
        lambda env: CentralMutex(env),
        RELIABLE_FAULTS,
    ),
    _spec(
        "ricart-agrawala",
        "Ricart-Agrawala mutual exclusion (1981): 2(n-1) messages per entry",
        lambda env: RicartAgrawala(env),
        RELIABLE_FAULTS,
    ),
    _spec(
        "lamport-mutex",
        "Lamport's mutual exclusion (1978): 3(n-1) messages per entry",
        lambda env: LamportMutex(env),
        RELIABLE_FAULTS,
    ),
    _spec(
        "token-ring",
        "token-ring mutual exclusion with token-loss detection and regeneration",
        lambda env: TokenRing(env),
        TOKEN_FAULTS,
    ),
    _spec(
        "ricart-agrawala-no-defer",
        "BROKEN on purpose: Ricart-Agrawala replying at once instead of deferring",
        lambda env: RicartAgrawala(env, RAConfig(defer=False)),
        RELIABLE_FAULTS,
        broken=True,
    ),
]


# Message counts ---------------------------------------------------------------------------


def per_entry(
    factory: Callable[[Env], Process],
    kinds: tuple[str, ...],
    n: int,
    *,
    requesters: Callable[[int], list[int]],
    concurrent: bool,
) -> int:
    """Messages per critical-section entry, when each node in `requesters(n)` enters once:
    one after another, or all asking at the same instant (then: total / entries)."""
    run = CountRun(factory, n).start().run_for(0.1)
    nodes = requesters(n)
    if concurrent:
        run.mark()
        for node in nodes:
            run.submit(node, Operation("acquire", None, node))
        run.run_for(1.0)
        total = run.sent(kinds)
        entries = _entries(run)
        if entries != len(nodes) or total % entries:
            raise InvariantViolation("count-scenario", f"{entries} entries, {total} messages")
        return total // entries
    costs = []
    for node in nodes:
        run.mark()
        run.submit(node, Operation("acquire", None, node))
        run.run_for(0.5)
        costs.append(run.sent(kinds))
    if _entries(run) != len(nodes) or len(set(costs)) != 1:
        raise InvariantViolation("count-scenario", f"entries cost different counts: {costs}")
    return costs[0]


def _entries(run: CountRun) -> int:
    return sum(p.entries for p in run.sim.processes().values() if isinstance(p, MutexProcess))


def _everyone(n: int) -> list[int]:
    return list(range(1, n + 1))


def _not_coordinator(n: int) -> list[int]:
    return list(range(2, n + 1))


RA_KINDS = ("RARequest", "RAReply")
LAMPORT_KINDS = ("LamportRequest", "LamportAck", "LamportRelease")

COUNTS = [
    CountCase(
        algorithm="central-mutex",
        scenario="each node but the coordinator enters once, one after another",
        counted="Request + Grant + Release",
        formula="3",
        expected=lambda n: 3,
        measure=lambda n: per_entry(
            CentralMutex,
            ("Request", "Grant", "Release"),
            n,
            requesters=_not_coordinator,
            concurrent=False,
        ),
    ),
    CountCase(
        algorithm="ricart-agrawala",
        scenario="each node enters once, one after another",
        counted="Request + Reply",
        formula="2(n-1)",
        expected=lambda n: 2 * (n - 1),
        measure=lambda n: per_entry(
            RicartAgrawala, RA_KINDS, n, requesters=_everyone, concurrent=False
        ),
    ),
    CountCase(
        algorithm="ricart-agrawala",
        scenario="all n nodes ask at the same instant (per entry)",
        counted="Request + Reply",
        formula="2(n-1)",
        expected=lambda n: 2 * (n - 1),
        measure=lambda n: per_entry(
            RicartAgrawala, RA_KINDS, n, requesters=_everyone, concurrent=True
        ),
    ),
    CountCase(
        algorithm="lamport-mutex",
        scenario="each node enters once, one after another",
        counted="Request + Ack + Release",
        formula="3(n-1)",
        expected=lambda n: 3 * (n - 1),
        measure=lambda n: per_entry(
            LamportMutex, LAMPORT_KINDS, n, requesters=_everyone, concurrent=False
        ),
    ),
    CountCase(
        algorithm="lamport-mutex",
        scenario="all n nodes ask at the same instant (per entry)",
        counted="Request + Ack + Release",
        formula="3(n-1)",
        expected=lambda n: 3 * (n - 1),
        measure=lambda n: per_entry(
            LamportMutex, LAMPORT_KINDS, n, requesters=_everyone, concurrent=True
        ),
    ),
]
