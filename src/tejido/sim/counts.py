"""Message counts measured in the simulator, beside the textbook formulas.

A protocol family states its counts by defining ``COUNTS: list[CountCase]`` in its module
of `tejido.sim.specs` (beside ``SPECS``); `discover_counts` collects them from every such
module, and `count_table` renders formula and measurement side by side (docs/algorithms.md
holds the table; ``python benchmarks/algorithms.py --counts`` regenerates it).

Each `CountCase` says precisely *which* messages its formula counts (``counted``), as the
literature does: the failure detector's pings and acknowledgements, for instance, are not
part of the Bully or ring formulas. `measure(n)` runs the scenario the formula describes
with `CountRun`: a fault-free network with small fixed latencies, a full trace, and a
count of the sends of the named message kinds between two marks.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation
from tejido.sim.network import Network
from tejido.sim.trace import Trace
from tejido.sim.world import ProcessFactory, Simulator

__all__ = ["CountCase", "CountRow", "CountRun", "count_rows", "count_table", "discover_counts"]


@dataclass(frozen=True)
class CountCase:
    algorithm: str
    """The simulator name (`tejido sim NAME`)."""
    scenario: str
    """What happens, e.g. "one entry by a node other than the coordinator"."""
    counted: str
    """Exactly which messages are counted."""
    formula: str
    """As printed, e.g. ``2(n-1)``."""
    expected: Callable[[int], int]
    measure: Callable[[int], int]
    sizes: tuple[int, ...] = (3, 4, 5, 8)


@dataclass(frozen=True)
class CountRow:
    case: CountCase
    n: int
    expected: int
    measured: int

    @property
    def ok(self) -> bool:
        return self.expected == self.measured


class CountRun:
    """A fault-free simulated cluster whose sends can be counted by message kind."""

    def __init__(self, factory: ProcessFactory, n: int, *, seed: int = 1) -> None:
        self.ids = [NodeId(i) for i in range(1, n + 1)]
        network = Network(
            rng=random.Random(f"{seed}:counts"),
            latency_s={},  # every link: the network's default mean (1 ms)
            jitter_s=0.0001,
            drop_probability=0.0,
            duplicate_probability=0.0,
            reorder_probability=0.0,
        )
        self.trace = Trace()
        self.sim = Simulator(factory, self.ids, network, seed=seed, trace=self.trace)
        self._requests = 0
        self._mark = 0

    def start(self) -> CountRun:
        self.sim.start()
        return self

    def run_for(self, seconds: float) -> CountRun:
        self.sim.run_until(self.sim.now + seconds)
        return self

    def submit(self, node: int, operation: Operation) -> None:
        self._requests += 1
        self.sim.submit(NodeId(node), RequestId(self._requests), operation, 0.0)

    def mark(self) -> None:
        """Count only the sends after this point."""
        self._mark = len(self.trace.records)

    def since_mark(self) -> list[dict[str, object]]:
        """The trace records after the mark."""
        return self.trace.records[self._mark :]

    def sent(self, kinds: Iterable[str]) -> int:
        """Messages of the given kinds (class names) sent since the mark."""
        wanted = set(kinds)
        return sum(
            1
            for record in self.trace.records[self._mark :]
            if record["kind"] == "send" and record["type"] in wanted
        )


def discover_counts() -> list[CountCase]:
    """``COUNTS`` from every module of `tejido.sim.specs`, in module-name order."""
    import tejido.sim.specs as package

    cases: list[CountCase] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        cases.extend(getattr(module, "COUNTS", ()))
    return cases


def count_rows(cases: Iterable[CountCase]) -> list[CountRow]:
    return [
        CountRow(case, n, case.expected(n), case.measure(n)) for case in cases for n in case.sizes
    ]


def count_table(rows: Iterable[CountRow]) -> str:
    """A Markdown table: one line per case, the sizes side by side."""
    by_case: dict[int, list[CountRow]] = {}
    cases: list[CountCase] = []
    for row in rows:
        key = len(cases)
        for i, case in enumerate(cases):
            if case is row.case:
                key = i
                break
        else:
            cases.append(row.case)
        by_case.setdefault(key, []).append(row)
    lines = [
        "| algorithm | scenario | messages counted | formula | n: formula / measured |",
        "|---|---|---|---|---|",
    ]
    for i, case in enumerate(cases):
        cells = ", ".join(
            f"{r.n}: {r.expected} / {r.measured}" + ("" if r.ok else " **MISMATCH**")
            for r in by_case[i]
        )
        lines.append(
            f"| {case.algorithm} | {case.scenario} | {case.counted} | {case.formula} | {cells} |"
        )
    return "\n".join(lines) + "\n"
