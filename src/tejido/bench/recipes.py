"""Lock benchmark: tejido's fenced lock and etcd's lock, side by side on this machine.

Both stores run as 3 members on loopback with fsync on (`tejido.bench.kv_tejido`,
`tejido.bench.kv_etcd`). Measured:

1. **Uncontended acquire + release per second**, one client, one lock name:
   - tejido, library, session reused: `Lock.acquire` then `Lock.release` (one create-if-
     missing txn listing the prefix, one delete);
   - tejido, library, fresh session each time: lease grant + acquire + release + revoke
     (what one ``etcdctl lock NAME -- true`` does);
   - etcd, ``etcdctl lock NAME -- true``: one process per lock (etcd's own lock recipe:
     ``concurrency.NewSession`` + ``Mutex.Lock`` + unlock + lease revoke), so it includes
     the start of a Go process; ``etcdctl version`` (start-up alone) is measured too;
   - tejido, ``tejido lock NAME -- true``: the same from the shell (a Python process).
2. **Contended hand-off latency**: a waiter is already in line; time from the holder's
   release (tejido: ``Lock.release`` called; etcd: SIGINT to a holding ``etcdctl lock``,
   which unlocks and revokes on the way out) to the waiter knowing it holds the lock
   (tejido: ``acquire`` returns; etcd: the waiting ``etcdctl lock`` prints its key).

No etcd Python client is installed here (the ``etcd3`` package does not build against
this protobuf), so etcd is driven through ``etcdctl`` (etcd-client 3.4, ETCDCTL_API=3).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tejido.bench.kv_common import Cluster
from tejido.bench.kv_etcd import EtcdAdapter
from tejido.bench.kv_tejido import TejidoAdapter
from tejido.bench.records import Record

__all__ = ["RecipeBenchError", "bench_recipes"]

ETCDCTL = "etcdctl"


class RecipeBenchError(Exception):
    pass


def _record(
    system: str, workload: str, metric: str, value: float, unit: str, **extra: Any
) -> Record:
    return {
        "system": system,
        "workload": workload,
        "metric": metric,
        "value": value,
        "unit": unit,
        **extra,
    }


def _latency_records(system: str, samples: list[float]) -> list[Record]:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return [
        _record(system, "contended hand-off", "median", statistics.median(ms), "ms", n=len(ms)),
        _record(system, "contended hand-off", "p90", p90, "ms", n=len(ms)),
    ]


# ---------------------------------------------------------------- tejido


async def _tejido_library(endpoints: list[str], locks: int, handoffs: int) -> list[Record]:
    from tejido.kv import Client
    from tejido.recipes import Lock, Session

    records: list[Record] = []
    async with Client(endpoints, timeout_s=30.0) as client:
        await client.put("bench/warmup", "x")
        async with Session(client, ttl=10) as session:
            lock = Lock(session, "bench/uncontended")
            start = time.perf_counter()
            for _ in range(locks):
                await lock.acquire()
                await lock.release()
            rate = locks / (time.perf_counter() - start)
        records.append(
            _record(
                "tejido",
                "uncontended lock",
                "acquire+release (session reused)",
                rate,
                "ops/s",
                n=locks,
            )
        )

        start = time.perf_counter()
        for _ in range(max(1, locks // 2)):
            async with Session(client, ttl=10) as fresh, Lock(fresh, "bench/fresh"):
                pass
        rate = max(1, locks // 2) / (time.perf_counter() - start)
        records.append(
            _record(
                "tejido",
                "uncontended lock",
                "grant+acquire+release+revoke",
                rate,
                "ops/s",
                n=max(1, locks // 2),
            )
        )

        a = await Session(client, ttl=10).open()
        b = await Session(client, ttl=10).open()
        holder, waiter = Lock(a, "bench/handoff"), Lock(b, "bench/handoff")
        samples: list[float] = []
        await holder.acquire()
        for _ in range(handoffs):
            waiting = asyncio.ensure_future(waiter.acquire())
            while await client.get(waiter.key) is None:  # the waiter is in line
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # and watching its predecessor
            released_at = time.perf_counter()
            await holder.release()
            await waiting
            samples.append(time.perf_counter() - released_at)
            holder, waiter = waiter, holder
        await holder.release()
        await a.close()
        await b.close()
    records.extend(_latency_records("tejido", samples))
    return records


def _cli_rate(command: list[str], runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    return runs / (time.perf_counter() - start)


def _tejido_cli(endpoints: list[str], runs: int) -> list[Record]:
    command = [
        sys.executable,
        "-m",
        "tejido.cli.main",
        "lock",
        "bench/cli",
        "--endpoints",
        ",".join(endpoints),
        "--",
        "true",
    ]
    rate = _cli_rate(command, runs)
    startup = _cli_rate([sys.executable, "-m", "tejido.cli.main", "version"], runs)
    return [
        _record(
            "tejido", "uncontended lock", "`tejido lock NAME -- true` runs", rate, "ops/s", n=runs
        ),
        _record("tejido", "process start", "`tejido version` runs", startup, "ops/s", n=runs),
    ]


# ---------------------------------------------------------------- etcd


def _etcd_env() -> dict[str, str]:
    return {**os.environ, "ETCDCTL_API": "3"}


def _etcd(endpoints: list[str], locks: int, handoffs: int) -> list[Record]:
    base = [ETCDCTL, "--endpoints", ",".join(endpoints)]
    env = _etcd_env()
    start = time.perf_counter()
    for _ in range(locks):
        subprocess.run(
            [*base, "lock", "bench/uncontended", "--", "true"],
            check=True,
            capture_output=True,
            env=env,
            timeout=60,
        )
    rate = locks / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(locks):
        subprocess.run([ETCDCTL, "version"], check=True, capture_output=True, env=env, timeout=60)
    startup = locks / (time.perf_counter() - start)
    records = [
        _record(
            "etcd", "uncontended lock", "`etcdctl lock NAME -- true` runs", rate, "ops/s", n=locks
        ),
        _record("etcd", "process start", "`etcdctl version` runs", startup, "ops/s", n=locks),
    ]

    def holder() -> subprocess.Popen[bytes]:
        return subprocess.Popen([*base, "lock", "bench/handoff"], stdout=subprocess.PIPE, env=env)

    samples: list[float] = []
    current = holder()
    assert current.stdout is not None
    current.stdout.readline()  # holds the lock: its key is printed
    for _ in range(handoffs):
        waiting = holder()
        time.sleep(0.3)  # the waiter has started and is in line (etcdctl gives no signal)
        released_at = time.perf_counter()
        current.send_signal(signal.SIGINT)
        assert waiting.stdout is not None
        line = waiting.stdout.readline()
        samples.append(time.perf_counter() - released_at)
        if not line:
            raise RecipeBenchError("a waiting etcdctl lock ended without taking the lock")
        current.wait(30)
        current = waiting
    current.send_signal(signal.SIGINT)
    current.wait(30)
    records.extend(_latency_records("etcd", samples))
    return records


# ---------------------------------------------------------------- the harness


def _with_cluster(adapter: Any, run: Callable[[list[str]], list[Record]]) -> list[Record]:
    cluster: Cluster = adapter.start()
    try:
        return run(cluster.endpoints())
    finally:
        adapter.stop(cluster)


def bench_recipes(
    *,
    against_etcd: bool = True,
    locks: int = 200,
    handoffs: int = 30,
    cli_runs: int = 5,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Record]:
    """Run the benchmark (module docstring); returns the records."""
    records: list[Record] = []
    tejido = TejidoAdapter()
    why = tejido.unavailable()
    if why:
        raise RecipeBenchError(f"tejido's store cannot run here: {why}")
    progress("tejido: starting 3 members")

    def run_tejido(endpoints: list[str]) -> list[Record]:
        found = asyncio.run(_tejido_library(endpoints, locks, handoffs))
        progress("tejido: the command line")
        return found + _tejido_cli(endpoints, cli_runs)

    records += _with_cluster(tejido, run_tejido)
    if against_etcd:
        etcd = EtcdAdapter()
        why = etcd.unavailable() or (None if shutil.which(ETCDCTL) else "no etcdctl binary")
        if why:
            progress(f"etcd skipped: {why}")
        else:
            progress("etcd: starting 3 members")
            records += _with_cluster(etcd, lambda endpoints: _etcd(endpoints, locks, handoffs))
    return records
