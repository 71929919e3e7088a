"""Benchmark of the linearizability checker (``tejido bench check``).

Workloads: generated histories (`tejido.check.generate`, fixed seeds) of 1,000 and 10,000
operations, linearizable and broken, and the recorded histories of the shared data set
(``../shared/data/histories`` beside the repository) when it is present. Each record is
``{"system": "tejido-check", "workload", "metric": "check time", "value": seconds,
"unit": "s"}`` plus a few descriptive fields; times are medians of a few runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tejido.check.generate import generate_history, mutate_history
from tejido.check.history import HistoryEvent, pair_operations, read_history
from tejido.check.linearizability import LinearizabilityResult, check_linearizable

__all__ = ["SWEEP", "bench_check", "bench_sweep", "default_histories_dir"]

Record = dict[str, object]


def default_histories_dir() -> Path:
    """``<repository>/../shared/data/histories`` (the shared data set beside the clone)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "histories"


def _timed(
    run: Callable[[], LinearizabilityResult], repeats: int
) -> tuple[float, LinearizabilityResult]:
    times = []
    result = run()
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _record(workload: str, seconds: float, **extra: object) -> Record:
    record: Record = {
        "system": "tejido-check",
        "workload": workload,
        "metric": "check time",
        "value": round(seconds, 6),
        "unit": "s",
    }
    record.update(extra)
    return record


def _generated(events: Sequence[HistoryEvent], workload: str, repeats: int, shrink: bool) -> Record:
    seconds, result = _timed(lambda: check_linearizable(events, minimize=shrink), repeats)
    return _record(
        workload,
        seconds,
        operations=len(pair_operations(events)),
        linearizable=result.linearizable,
        configurations=result.configurations,
    )


def bench_check(histories_dir: Path | None = None, repeats: int = 3) -> list[Record]:
    """Run every workload once to warm up, then `repeats` times; return one record each."""
    records: list[Record] = []
    workloads = [
        # (label, seed, operations, clients, keys, unknown-outcome rate)
        ("1k ops, 5 clients, 1 register, 1% unknown", 1, 1_000, 5, 0, 0.01),
        ("1k ops, 20 clients, 1 register, 1% unknown", 1, 1_000, 20, 0, 0.01),
        ("1k ops, 20 clients, 10 keys, 1% unknown", 2, 1_000, 20, 10, 0.01),
        ("10k ops, 20 clients, 10 keys, 1% unknown", 3, 10_000, 20, 10, 0.01),
    ]
    for label, seed, operations, clients, keys, rate in workloads:
        events = generate_history(
            seed, operations=operations, clients=clients, keys=keys, info_rate=rate
        )
        records.append(_generated(events, label, repeats, True))
        if operations == 1_000 and keys > 0:
            continue
        broken = mutate_history(events, seed)
        records.append(_generated(broken, f"{label}, broken: verdict", repeats, False))
        records.append(
            _generated(broken, f"{label}, broken: verdict and counterexample", repeats, True)
        )

    directory = histories_dir if histories_dir is not None else default_histories_dir()
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    if files:
        loaded = [read_history(path) for path in files]
        for shrink, label in ((False, "verdicts"), (True, "verdicts and counterexamples")):

            def run_all(shrink: bool = shrink) -> LinearizabilityResult:
                results = [check_linearizable(events, minimize=shrink) for events in loaded]
                return results[-1]

            seconds, _ = _timed(run_all, repeats)
            records.append(
                _record(
                    f"shared data set: {len(files)} histories, {label}",
                    seconds,
                    histories=len(files),
                    operations=sum(len(pair_operations(events)) for events in loaded),
                )
            )
    return records


SWEEP = (
    # (label, operations, clients, keys, unknown-outcome rate)
    ("1k ops, 5 clients, 1 register, 1% unknown", 1_000, 5, 0, 0.01),
    ("1k ops, 20 clients, 1 register, 1% unknown", 1_000, 20, 0, 0.01),
    ("1k ops, 20 clients, 10 keys, 1% unknown", 1_000, 20, 10, 0.01),
    ("10k ops, 20 clients, 10 keys, 1% unknown", 10_000, 20, 10, 0.01),
    ("10k ops, 20 clients, 10 keys, 5% unknown", 10_000, 20, 10, 0.05),
    ("5k ops, 50 clients, 10 keys, no unknown", 5_000, 50, 10, 0.0),
)


def bench_sweep(seeds: Sequence[int] = range(5)) -> list[Record]:
    """Each `SWEEP` workload over several seeds, linearizable and broken: median and max.

    One run per seed and variant (no warm-up): the spread across seeds is the point.
    """
    records: list[Record] = []
    for label, operations, clients, keys, rate in SWEEP:
        times: dict[str, list[float]] = {"": [], "broken: verdict": [], "broken: shrunk": []}
        for seed in seeds:
            events = generate_history(
                seed, operations=operations, clients=clients, keys=keys, info_rate=rate
            )
            broken = mutate_history(events, seed)
            runs = (("", events, True), ("broken: verdict", broken, False))
            for variant, history, shrink in (*runs, ("broken: shrunk", broken, True)):
                started = time.perf_counter()
                check_linearizable(history, minimize=shrink)
                times[variant].append(time.perf_counter() - started)
        for variant, values in times.items():
            name = f"{label}, {variant}" if variant else label
            records.append(
                _record(
                    name,
                    statistics.median(values),
                    max=round(max(values), 6),
                    seeds=len(values),
                    metric_detail="median over seeds",
                )
            )
    return records
