"""`tejido bench kv`: replicated stores side by side (the Store issue's Performance section).

Method (the anchors' in ../shared/anchors.md, "Replicated stores"): each system runs as 3
members on loopback (ephemeral ports, temporary data directories, fsync on where the
system can), one system at a time, and one load generator design drives them all
(`tejido.bench.kv_load`): closed-loop clients, 16-byte keys from a space of 1,024 (all
written once first), 256-byte values, a warm-up then a measured window per point. Points:
``put c=N`` and ``get c=N`` for every ``--clients`` N, then ``failover``.

- Clients are asyncio tasks in generator processes: one process below 64 clients, two
  from 64 on (one Python process cannot drive 256 gRPC calls in flight on its own), unless
  ``--generators`` says otherwise. Every generator process of a point starts at one
  wall-clock instant, given once all of them have connected (`tejido.bench.kv_generators`).
- ``etcd`` spreads its clients over the members round-robin (what etcd's client does);
  ``etcd-leader`` puts them all on the leader (etcd's best case), on the same cluster.
  PySyncObj members forward commands to the leader themselves; tejido's client finds the
  leader itself.
- ``floor`` (``--against floor``, never a default) is not a store but the hops of one with
  no protocol (`tejido.bench.kv_floor`): a fixed leader that fsyncs, replicates and
  answers once one follower has fsynced too, gets confirmed by one heartbeat round. Its
  clients all go to the leader over one connection per generator; it has no failover
  point.
- ``server cpu per 1000 ops``: user + system CPU seconds of all members together during
  the measured window (``/proc/PID/stat``), per 1,000 requests completed in it. The
  generators' own CPU per 1,000 requests is recorded beside the throughput
  (``client_cpu_per_1000_ops_s``): on a 2-core machine the clients share the cores with
  the members, so a costly client library (gRPC, kazoo's threads) takes CPU from its
  servers.
- ``failover``: 16 clients write (spread); half a second before the warm-up ends the
  benchmark finds the leader, and when it ends kills it with SIGKILL; the metric is the
  time from the kill to the completion of the first write issued after it.

Records: ``{"system", "workload", "metric", "value", "unit"}`` plus the conditions (clients,
generators, window, load average, errors, the system's notes such as whether it fsyncs).
A system that cannot run here (not installed, tejido's store not built yet) is left out
with its reason printed, and the others still run. The table and the issue's targets are
in `tejido.bench.kv_report`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tejido.bench.kv_common import (
    ETCD,
    ETCD_LEADER,
    FAILOVER,
    FAILOVER_METRIC,
    FLOOR,
    KEY_BYTES,
    PYSYNCOBJ,
    SYSTEMS,
    TEJIDO,
    VALUE_BYTES,
    ZOOKEEPER,
    Cluster,
    KvBenchError,
    StoreAdapter,
    kill_member,
    members_cpu_s,
)
from tejido.bench.kv_generators import Generators, split_plans
from tejido.bench.kv_load import REQUEST_TIMEOUT_S, Plan
from tejido.bench.kv_report import (
    MS,
    OPS_S,
    P50,
    P99,
    SECONDS,
    SERVER_CPU,
    THROUGHPUT,
    format_kv_table,
    target_lines,
)
from tejido.bench.records import Record

__all__ = [
    "DEFAULT_CLIENTS",
    "FAILOVER_CLIENTS",
    "KvBenchError",
    "adapter_for",
    "bench_kv",
    "format_kv_table",
    "parse_clients",
    "parse_systems",
    "target_lines",
]

DEFAULT_CLIENTS = (1, 16, 64, 256)
FAILOVER_CLIENTS = 16
#: How long the failover point waits after the kill for a successful write.
FAILOVER_WINDOW_S = 15.0


def parse_systems(text: str) -> list[str]:
    """System names from a comma-separated list (``etcd`` brings ``etcd-leader`` along)."""
    names: list[str] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if not word or word == "none":
            continue
        if word not in SYSTEMS:
            raise KvBenchError(f"unknown system {word!r}; choose from {', '.join(SYSTEMS)}")
        if word == ETCD_LEADER:
            word = ETCD
        if word not in names:
            names.append(word)
    return names


def parse_clients(text: str) -> tuple[int, ...]:
    """Client counts from a comma-separated list of positive integers."""
    counts: list[int] = []
    for word in (w.strip() for w in text.split(",")):
        if not word.isdigit() or int(word) < 1:
            raise KvBenchError(f"--clients takes positive integers like 1,16,64,256, got {word!r}")
        counts.append(int(word))
    if not counts:
        raise KvBenchError("--clients names no client count")
    return tuple(counts)


def adapter_for(system: str) -> StoreAdapter:
    if system == ETCD:
        from tejido.bench.kv_etcd import EtcdAdapter

        return EtcdAdapter()
    if system == PYSYNCOBJ:
        from tejido.bench.kv_syncobj import PySyncObjAdapter

        return PySyncObjAdapter()
    if system == TEJIDO:
        from tejido.bench.kv_tejido import TejidoAdapter

        return TejidoAdapter()
    if system == ZOOKEEPER:
        from tejido.bench.kv_zookeeper import ZooKeeperAdapter

        return ZooKeeperAdapter()
    if system == FLOOR:
        from tejido.bench.kv_floor import FloorAdapter

        return FloorAdapter()
    raise KvBenchError(f"no adapter for {system!r}")


@dataclass(frozen=True)
class _Settings:
    clients: tuple[int, ...]
    duration_s: float
    warmup_s: float
    generators: int | None
    progress: Callable[[str], None]


def bench_kv(
    systems: Sequence[str],
    *,
    clients: Sequence[int] = DEFAULT_CLIENTS,
    duration_s: float = 20.0,
    warmup_s: float = 3.0,
    generators: int | None = None,
    failover: bool = True,
    progress: Callable[[str], None] | None = None,
    failures: list[str] | None = None,
) -> list[Record]:
    """Measure `systems` one after the other; the records of every point that ran.

    A system that fails part-way keeps the records of its finished points; the message
    goes to `progress` and `failures`, and the next system runs.
    """
    if duration_s <= 0 or warmup_s < 0:
        raise KvBenchError(
            f"--duration must be positive and --warmup not negative, got {duration_s}, {warmup_s}"
        )
    if generators is not None and generators < 1:
        raise KvBenchError(f"--generators must be at least 1, got {generators}")
    settings = _Settings(
        tuple(clients), duration_s, warmup_s, generators, progress or (lambda _line: None)
    )
    records: list[Record] = []
    for system in systems:
        adapter = adapter_for(system)
        reason = adapter.unavailable()
        if reason is not None:
            settings.progress(f"{system} left out: {reason}")
            continue
        try:
            _measure(adapter, settings, failover, records)
        except (KvBenchError, OSError, subprocess.SubprocessError) as exc:
            # One system failing (a member that did not start, a generator that crashed)
            # does not cost the others their run; the caller hears about it.
            message = f"{system}: {exc}"
            settings.progress(f"{system} failed: {exc}")
            if failures is not None:
                failures.append(message)
    return records


def _measure(
    adapter: StoreAdapter, settings: _Settings, failover: bool, records: list[Record]
) -> None:
    """Every point of one system on one cluster, then its failover, appended to `records`."""
    settings.progress(f"{adapter.system}: starting 3 members")
    cluster = adapter.start()
    try:
        _preload(adapter, cluster, settings)
        for count in settings.clients:
            for workload in ("put", "get"):
                for name, leader_only in _modes(adapter.system):
                    records += _point(
                        adapter, cluster, settings, name, workload, count, leader_only
                    )
        if failover and adapter.system == FLOOR:
            settings.progress(f"{FLOOR}: no failover point (a fixed leader, no election)")
        elif failover:
            records.append(_failover(adapter, cluster, settings))
    finally:
        adapter.stop(cluster)


def _modes(system: str) -> list[tuple[str, bool]]:
    if system == ETCD:
        return [(ETCD, False), (ETCD_LEADER, True)]
    if system == FLOOR:
        return [(FLOOR, True)]  # its followers take no requests: one connection, the leader
    return [(system, False)]


def _routes(adapter: StoreAdapter, cluster: Cluster, leader_only: bool) -> list[list[str]]:
    endpoints = cluster.endpoints()
    n = len(endpoints)
    if leader_only:
        first = adapter.leader(cluster)
        return [[endpoints[(first + k) % n] for k in range(n)]]
    return [[endpoints[(i + k) % n] for k in range(n)] for i in range(n)]


def _generator_count(settings: _Settings, clients: int) -> int:
    wanted = settings.generators or (1 if clients < 64 else 2)
    return max(1, min(wanted, clients))


def _sleep_until(instant: float) -> None:
    delay = instant - time.time()
    if delay > 0:
        time.sleep(delay)  # the benchmark's own schedule: the window's edges, the kill


def _plan(
    adapter: StoreAdapter,
    cluster: Cluster,
    routes: list[list[str]],
    mode: str,
    clients: int,
    warmup_s: float = 0.0,
    duration_s: float = 1.0,
) -> Plan:
    return Plan(
        module=adapter.module,
        spec=dict(cluster.spec),
        routes=routes,
        mode=mode,
        clients=clients,
        warmup_s=warmup_s,
        duration_s=duration_s,
    )


def _preload(adapter: StoreAdapter, cluster: Cluster, settings: _Settings) -> None:
    routes = _routes(adapter, cluster, leader_only=False)
    with Generators(cluster, [_plan(adapter, cluster, routes, "preload", 32)]) as generators:
        generators.start()
        results = generators.results(timeout_s=120.0)
    settings.progress(f"{cluster.system}: preloaded {sum(r.ops for r in results)} keys")


def _point(
    adapter: StoreAdapter,
    cluster: Cluster,
    settings: _Settings,
    system: str,
    workload: str,
    clients: int,
    leader_only: bool,
) -> list[Record]:
    routes = _routes(adapter, cluster, leader_only)
    processes = _generator_count(settings, clients)
    base = _plan(
        adapter, cluster, routes, workload, clients, settings.warmup_s, settings.duration_s
    )
    with Generators(cluster, split_plans(base, processes)) as generators:
        load_start = os.getloadavg()[0]
        window_start = generators.start() + settings.warmup_s
        _sleep_until(window_start)
        before = members_cpu_s(cluster.members)
        _sleep_until(window_start + settings.duration_s)
        after = members_cpu_s(cluster.members)
        results = generators.results(timeout_s=REQUEST_TIMEOUT_S + 60.0)
    cpu = None if before is None or after is None else after - before
    ops = sum(r.ops for r in results)
    errors = sum(r.errors for r in results)
    latencies = sorted(v for r in results for v in r.latencies_us)
    name = f"{workload} c={clients}"
    common: Record = {"system": system, "workload": name}
    conditions: Record = {
        "clients": clients,
        "generators": processes,
        "duration_s": settings.duration_s,
        "warmup_s": settings.warmup_s,
        "errors": errors,
        "key_bytes": KEY_BYTES,
        "value_bytes": VALUE_BYTES,
        "load_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "generator_cpu_s": round(sum(r.cpu_s for r in results), 3),
        "client_cpu_per_1000_ops_s": round(
            sum(r.cpu_s for r in results) / max(1, sum(r.ops_total for r in results)) * 1000, 4
        ),
        "late_s": round(max(r.late_s for r in results), 3),
        **adapter.notes,
    }
    first_error = next((r.first_error for r in results if r.first_error), "")
    if first_error:
        conditions["first_error"] = first_error
    throughput = ops / settings.duration_s
    records: list[Record] = [
        {**common, "metric": THROUGHPUT, "value": throughput, "unit": OPS_S, **conditions}
    ]
    if latencies:
        for metric, q in ((P50, 0.50), (P99, 0.99)):
            value = latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000
            records.append({**common, "metric": metric, "value": value, "unit": MS})
    if cpu is not None and ops:
        records.append({**common, "metric": SERVER_CPU, "value": cpu / ops * 1000, "unit": SECONDS})
    p99 = next((r["value"] for r in records if r["metric"] == P99), None)
    settings.progress(
        f"{system:<12} {name:<10} {throughput:>9,.0f} ops/s  p99 "
        f"{'n/a' if p99 is None else f'{p99:.1f} ms'}  errors {errors}"
        + (f"  ({first_error})" if first_error and not ops else "")
    )
    return records


def _failover(adapter: StoreAdapter, cluster: Cluster, settings: _Settings) -> Record:
    routes = _routes(adapter, cluster, leader_only=False)
    warmup = max(1.0, settings.warmup_s)
    plan = _plan(adapter, cluster, routes, FAILOVER, FAILOVER_CLIENTS, warmup, FAILOVER_WINDOW_S)
    with Generators(cluster, [plan]) as generators:
        kill_at = generators.start() + warmup
        _sleep_until(kill_at - 0.5)
        leader = adapter.leader(cluster)
        _sleep_until(kill_at)
        killed_at = kill_member(cluster.members[leader])
        generators.send(f"{killed_at!r}")
        (result,) = generators.results(timeout_s=FAILOVER_WINDOW_S + REQUEST_TIMEOUT_S + 60.0)
    after = [end for issued, end in result.writes_after_kill if issued >= killed_at]
    record: Record = {
        "system": cluster.system,
        "workload": FAILOVER,
        "metric": FAILOVER_METRIC,
        "value": None,
        "unit": SECONDS,
        "clients": FAILOVER_CLIENTS,
        "killed_member": leader,
        "request_timeout_s": REQUEST_TIMEOUT_S,
        **adapter.notes,
    }
    if after:
        record["value"] = min(after) - killed_at
        settings.progress(f"{cluster.system}: first write {record['value']:.3f} s after the kill")
    else:
        record["error"] = f"no write succeeded within {FAILOVER_WINDOW_S:g} s of the kill"
        settings.progress(f"{cluster.system}: {record['error']}")
    return record
