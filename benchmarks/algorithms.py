"""Election and mutual exclusion measured in the simulator: ``python benchmarks/algorithms.py``.

Two outputs:

- ``--counts``: the message-count table (formula beside measurement) for every ``COUNTS``
  case in `tejido.sim.specs`; with ``--write`` it replaces the table in docs/algorithms.md
  (between the ``counts:begin`` and ``counts:end`` markers).
- default: messages and virtual time per operation as n grows (3 .. 64), printed as a
  table; with ``--plot FILE.png`` also drawn (needs matplotlib: ``pip install -e .[plots]``).

Mutual exclusion: every node asks for the critical section at the same instant (full
contention) and each enters once; per entry: all messages sent until the last exit,
divided by n, and the virtual time from the requests to the last exit, divided by n.
Election: the coordinator (id n) crashes and node 1, the lowest id, notices first (the
costly case for Bully); messages (all kinds, failure detector included) and virtual time
until every live node follows the new coordinator. Fault-free network, 1 ms mean latency.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tejido.algorithms.bully import BullyConfig, BullyNode
from tejido.algorithms.lamport_mutex import LamportMutex
from tejido.algorithms.mutex_central import CentralMutex
from tejido.algorithms.ricart_agrawala import RicartAgrawala
from tejido.algorithms.ring import RingConfig, RingElection
from tejido.algorithms.token_ring import TokenRing
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.protocol import Env, Process
from tejido.sim.counts import CountRun, count_rows, count_table, discover_counts

DOC = Path(__file__).resolve().parents[1] / "docs" / "algorithms.md"
BEGIN, END = "<!-- counts:begin -->", "<!-- counts:end -->"
SIZES = (3, 4, 8, 16, 32, 64)
NEVER_S = 1e9

MUTEX: dict[str, Callable[[Env], Process]] = {
    "central-mutex": CentralMutex,
    "ricart-agrawala": RicartAgrawala,
    "lamport-mutex": LamportMutex,
    "token-ring": TokenRing,
}


def _bully(env: Env) -> Process:
    return BullyNode(env, BullyConfig(ping_interval_s=NEVER_S))


def _ring(env: Env) -> Process:
    return RingElection(env, RingConfig(ping_interval_s=NEVER_S))


ELECTION: dict[str, Callable[[Env], Process]] = {"bully": _bully, "ring": _ring}


@dataclass(frozen=True)
class Point:
    algorithm: str
    n: int
    messages: float
    virtual_ms: float


def _event_times(run: CountRun, prefix: str) -> list[float]:
    return [
        float(str(r["t"]))
        for r in run.trace.records
        if r["kind"] == "event" and str(r["event"]).startswith(prefix)
    ]


def measure_mutex(name: str, n: int) -> Point:
    run = CountRun(MUTEX[name], n).start().run_for(0.05)
    start = run.sim.now
    run.mark()
    for node in range(1, n + 1):
        run.submit(node, Operation("acquire", None, node))
    run.run_for(1.0 + 0.05 * n)
    exits = _event_times(run, "exit CS")
    if len(exits) != n:
        raise RuntimeError(f"{name} n={n}: {len(exits)} of {n} entries")
    last = max(exits)
    sent = sum(1 for r in run.since_mark() if r["kind"] == "send" and float(str(r["t"])) <= last)
    return Point(name, n, sent / n, (last - start) * 1000 / n)


def measure_election(name: str, n: int) -> Point:
    run = CountRun(ELECTION[name], n).start().run_for(1.0 + 0.01 * n)
    run.sim.crash(NodeId(n), power_loss=False, torn_probability=0.0)
    start = run.sim.now
    run.mark()
    run.submit(1, Operation("suspect"))
    run.run_for(2.0 + 0.05 * n)
    views = {i: getattr(run.sim.nodes[NodeId(i)].process, "leader", None) for i in range(1, n)}
    if any(v != n - 1 for v in views.values()):
        raise RuntimeError(f"{name} n={n}: no agreement on {n - 1}: {views}")
    last = max(_event_times(run, "coordinator is") + _event_times(run, "ELECTED"))
    sent = sum(1 for r in run.since_mark() if r["kind"] == "send" and float(str(r["t"])) <= last)
    return Point(name, n, float(sent), (last - start) * 1000)


def table(points: list[Point], what: str) -> str:
    names = list(dict.fromkeys(p.algorithm for p in points))
    sizes = sorted({p.n for p in points})
    lines = [f"| {what} | " + " | ".join(f"n={n}" for n in sizes) + " |"]
    lines.append("|---|" + "---|" * len(sizes))
    for name in names:
        cells = []
        for n in sizes:
            p = next(x for x in points if x.algorithm == name and x.n == n)
            cells.append(f"{p.messages:.1f} msg, {p.virtual_ms:.2f} ms")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(mutex: list[Point], election: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for row, (points, title) in enumerate(
        ((mutex, "mutual exclusion, per entry"), (election, "election after a crash"))
    ):
        for name in dict.fromkeys(p.algorithm for p in points):
            mine = [p for p in points if p.algorithm == name]
            ns = [p.n for p in mine]
            axes[row][0].plot(ns, [p.messages for p in mine], marker="o", label=name)
            axes[row][1].plot(ns, [p.virtual_ms for p in mine], marker="o", label=name)
        axes[row][0].set_title(f"{title}: messages")
        axes[row][1].set_title(f"{title}: virtual time (ms)")
        for ax in axes[row]:
            ax.set_xlabel("n (nodes)")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("tejido simulator, fault-free network, 1 ms mean latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def write_counts(table_text: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} block to replace")
    block = f"{BEGIN}\n{table_text}{END}"
    DOC.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")
    print(f"wrote the table into {DOC}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", action="store_true", help="print the count table")
    parser.add_argument("--write", action="store_true", help="with --counts: update the docs")
    parser.add_argument("--plot", type=Path, help="draw the scaling benchmark into this PNG")
    parser.add_argument("--max-nodes", type=int, default=64)
    args = parser.parse_args(argv)
    if args.counts:
        rows = count_rows(discover_counts())
        text = count_table(rows)
        print(text, end="")
        if args.write:
            write_counts(text)
        return 0 if all(r.ok for r in rows) else 1
    sizes = [n for n in SIZES if n <= args.max_nodes]
    mutex = [measure_mutex(name, n) for name in MUTEX for n in sizes]
    election = [measure_election(name, n) for name in ELECTION for n in sizes]
    print(table(mutex, "mutual exclusion (per entry, all n contend)"))
    print()
    print(table(election, "election (coordinator n crashed, node 1 notices)"))
    if args.plot:
        plot(mutex, election, args.plot)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
