"""Group commit on a real disk: ``python benchmarks/wal.py [--seconds S] [--json FILE]``.

Closed-loop writers, each appending one 256-byte record and waiting for its sync to be
durable before the next, at 1 and 64 concurrent writers, for `DiskStorage` (one log file)
and `WalStorage` (segment files). Reports appends/s and fsync rounds/s: with group commit
one round covers every append made while the previous round ran, so at 64 writers appends/s
should be many times fsyncs/s. The numbers depend on the disk and on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tejido.bench.records import Record, print_table, write_json
from tejido.core.storage import LogAppend
from tejido.net.storage import DiskStorage
from tejido.net.wal import WalStorage

RECORD = b"v" * 256


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each point")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (best kept)")
    parser.add_argument("--json", type=Path, default=None, help="write the records as JSON")
    args = parser.parse_args()
    records = bench_wal(args.seconds, repeats=args.repeats)
    print_table(records)
    if args.json is not None:
        write_json(records, args.json)


if __name__ == "__main__":
    main()
