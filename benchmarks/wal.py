"""Group commit on a real disk: ``python benchmarks/wal.py [--seconds S] [--json FILE]``.

Closed-loop writers, each appending one 256-byte record and waiting for its sync to be
durable before the next, at 1 and 64 concurrent writers, for `DiskStorage` (one log file)
and `WalStorage` (segment files). Reports appends/s and fsync rounds/s: with group commit
one round covers every append made while the previous round ran, so at 64 writers appends/s
should be many times fsyncs/s. The numbers depend on the disk and on the machine's load.

``python benchmarks/wal.py --fsync-latency [--appends N]``: the latency of the WAL's own
append + fsync (`SegmentLog.write_now` and `sync`, a 300-byte record each) with preallocated,
zero-filled segments (`tejido.net.walfiles` rule 5) and with files that grow per append,
for 1 member and for 3 members (one thread and one directory each) fsyncing the same disk
at once, as a local 3-member store does. Extending the zeros (on the worker, in `append`)
is inside the measured appends. The two variants alternate, runs are pooled.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tejido.bench.records import Record, print_table, write_json
from tejido.core.storage import LogAppend
from tejido.net.storage import DiskStorage
from tejido.net.wal import DEFAULT_SEGMENT_BYTES, WalStorage
from tejido.net.walfiles import DEFAULT_PREALLOCATE_BYTES, RECORD_HEAD_BYTES, SegmentLog
from tejido.net.walfiles import encode_records as encode

RECORD = b"v" * 256
LATENCY_RECORD = b"v" * (300 - RECORD_HEAD_BYTES)  # 300 bytes on disk


async def _run(
    factory: Callable[..., Any], directory: Path, writers: int, seconds: float
) -> tuple[int, int, float]:
    waiting: dict[int, asyncio.Future[None]] = {}
    storage = factory(directory, on_durable=lambda t: waiting.pop(t).set_result(None))
    storage.open()
    loop = asyncio.get_running_loop()
    appends = 0
    token = 0
    stop_at = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal appends, token
        while time.perf_counter() < stop_at:
            storage.apply(LogAppend((RECORD,)))
            token += 1
            done: asyncio.Future[None] = loop.create_future()
            waiting[token] = done
            storage.request_sync(token)
            await done
            appends += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    fsyncs = storage.fsyncs
    await storage.close()
    return appends, fsyncs, elapsed


def bench_wal(
    seconds: float, concurrency: tuple[int, ...] = (1, 64), repeats: int = 1
) -> list[Record]:
    """The best of `repeats` runs per point (the systems alternate, so load hits both)."""
    records: list[Record] = []
    systems: dict[str, Callable[..., Any]] = {"DiskStorage": DiskStorage, "WalStorage": WalStorage}
    for writers in concurrency:
        best: dict[str, tuple[int, int, float]] = {}
        for _ in range(repeats):
            for name, factory in systems.items():
                with tempfile.TemporaryDirectory(dir=".") as tmp:
                    run = asyncio.run(_run(factory, Path(tmp), writers, seconds))
                if name not in best or run[0] / run[2] > best[name][0] / best[name][2]:
                    best[name] = run
        for name, (appends, fsyncs, elapsed) in best.items():
            workload = f"append c={writers}"
            for metric, value, unit in (
                ("throughput", appends / elapsed, "appends/s"),
                ("fsync rounds", fsyncs / elapsed, "fsyncs/s"),
                ("appends per fsync", appends / max(fsyncs, 1), "appends"),
            ):
                records.append(
                    {
                        "system": name,
                        "workload": workload,
                        "metric": metric,
                        "value": value,
                        "unit": unit,
                    }
                )
    return records


def _member(directory: Path, preallocate: int, appends: int, go: threading.Barrier) -> list[float]:
    """One member's append + fsync latencies (seconds), as `WalStorage` would do them: the
    fast path when the append fits, else the worker's `append` (which extends first)."""
    directory.mkdir()
    log = SegmentLog(directory, DEFAULT_SEGMENT_BYTES, preallocate)
    log.recover()
    encoded = [encode(index, (LATENCY_RECORD,)) for index in range(appends)]
    took: list[float] = []
    go.wait()
    for data in encoded:
        started = time.perf_counter()
        if log.can_write_now(len(data)):
            log.write_now(data, 1)
        else:
            log.append([(data, 1)])
        log.sync()
        took.append(time.perf_counter() - started)
    log.close()
    return took


def _members(directory: Path, count: int, preallocate: int, appends: int) -> list[float]:
    """`count` members appending at once (one thread each), their latencies pooled."""
    go = threading.Barrier(count)
    results: list[list[float]] = [[] for _ in range(count)]

    def member(k: int) -> None:
        results[k] = _member(directory / f"member{k}", preallocate, appends, go)

    threads = [threading.Thread(target=member, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [took for member_took in results for took in member_took]


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def bench_fsync_latency(
    appends: int, members: tuple[int, ...] = (1, 3), repeats: int = 3
) -> list[Record]:
    """Append + fsync latency percentiles with and without preallocation (rule 5)."""
    variants = {"preallocated": DEFAULT_PREALLOCATE_BYTES, "growing file": 0}
    records: list[Record] = []
    for count in members:
        pooled: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):
            for name, preallocate in variants.items():
                with tempfile.TemporaryDirectory(dir=".") as tmp:
                    pooled[name].extend(_members(Path(tmp), count, preallocate, appends))
        for name, took in pooled.items():
            took.sort()
            values = [(f"p{100 * q:g}", _percentile(took, q)) for q in (0.5, 0.99, 0.999)]
            values.append(("mean", sum(took) / len(took)))
            for metric, value in values:
                records.append(
                    {
                        "system": f"SegmentLog, {name}",
                        "workload": f"300 B append+fsync, {count} member(s)",
                        "metric": metric,
                        "value": value * 1e6,
                        "unit": "us",
                    }
                )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each point")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (best kept)")
    parser.add_argument("--json", type=Path, default=None, help="write the records as JSON")
    parser.add_argument(
        "--fsync-latency", action="store_true", help="append+fsync latency, with/without zeros"
    )
    parser.add_argument("--appends", type=int, default=5000, help="appends per member and run")
    args = parser.parse_args()
    if args.fsync_latency:
        records = bench_fsync_latency(args.appends, repeats=args.repeats)
    else:
        records = bench_wal(args.seconds, repeats=args.repeats)
    print_table(records)
    if args.json is not None:
        write_json(records, args.json)


if __name__ == "__main__":
    main()
