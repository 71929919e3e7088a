"""Lock benchmark: tejido's fenced lock and etcd's lock, side by side on this machine.

Both stores run as 3 members on loopback with fsync on (`tejido.bench.kv_tejido`,
`tejido.bench.kv_etcd`). Measured:

1. **Uncontended acquire + release per second**, one client, one lock name, one call at a
   time, the client talking to the leader:
   - ``acquire+release (lease reused)``: tejido `Lock.acquire` then `Lock.release` on one
     session (a create-if-missing txn that also lists the prefix, then a delete); etcd
     ``Lock(name, lease)`` then ``Unlock(key)`` on one lease, through etcd's lock service
     (``v3lockpb.Lock``, which runs etcd's own ``concurrency.Mutex`` inside the member);
   - ``grant+acquire+release+revoke``: the same with a fresh lease (tejido: a fresh
     `Session`) each time, what one ``etcdctl lock NAME -- true`` does;
   - ```... lock NAME -- true` runs``: ``tejido lock`` and ``etcdctl lock`` from the
     shell, one process each (so mostly process start: ``tejido version`` and ``etcdctl
     version`` are measured beside them).
2. **Contended hand-off latency**: a waiter is in line (its key exists; then 200 ms for
   it to watch its predecessor: etcd catches up a watch that starts at a past revision in
   a loop that runs every 100 ms, so a waiter that has only just got in line would add up
   to 100 ms that steady contention does not have); time from the holder's release call (tejido
   ``Lock.release``, etcd ``Unlock``) to the waiter's acquire returning (tejido
   ``Lock.acquire``, etcd's blocked ``Lock`` call).

No etcd Python client is installed here (the ``etcd3`` package does not build against
this protobuf), so etcd is driven over its gRPC API with the few messages needed
(`tejido.bench.etcd_proto`, shared with the KV benchmark: leases, ranges and etcd's lock
service, called by path: ``/v3lockpb.Lock/Lock``), compiled at run time with
grpcio-tools, and through ``etcdctl`` (3.4, ``ETCDCTL_API=3``) for the shell line.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tejido.bench.kv_common import Cluster
from tejido.bench.kv_etcd import EtcdAdapter
from tejido.bench.kv_tejido import TejidoAdapter
from tejido.bench.records import Record

__all__ = ["RecipeBenchError", "bench_recipes"]

ETCDCTL = "etcdctl"
IN_LINE_PAUSE_S = 0.2
"""After a waiter's key exists: time for it to start watching its predecessor."""


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
                "acquire+release (lease reused)",
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
            await asyncio.sleep(IN_LINE_PAUSE_S)  # and watching its predecessor
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


def _etcd_messages(directory: Path) -> ModuleType:
    """etcd's messages (`tejido.bench.etcd_proto`), compiled into `directory` if need be."""
    from tejido.bench.etcd_proto import EtcdProtoError, etcd_messages

    try:
        return etcd_messages(directory)
    except EtcdProtoError as exc:
        raise RecipeBenchError(str(exc)) from None


class _EtcdLock:
    """etcd's lock service and leases over one gRPC channel (blocking calls)."""

    def __init__(self, endpoint: str, directory: Path) -> None:
        import grpc

        self.pb = pb = _etcd_messages(directory)
        self.channel = channel = grpc.insecure_channel(endpoint)

        def method(path: str, request: Any, reply: Any) -> Any:
            return channel.unary_unary(
                path,
                request_serializer=request.SerializeToString,
                response_deserializer=reply.FromString,
            )

        self._grant = method(
            "/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest, pb.LeaseGrantResponse
        )
        self._revoke = method(
            "/etcdserverpb.Lease/LeaseRevoke", pb.LeaseRevokeRequest, pb.LeaseRevokeResponse
        )
        self._range = method("/etcdserverpb.KV/Range", pb.RangeRequest, pb.RangeResponse)
        self.lock_call = method("/v3lockpb.Lock/Lock", pb.LockRequest, pb.LockResponse)
        self._unlock = method("/v3lockpb.Lock/Unlock", pb.UnlockRequest, pb.UnlockResponse)

    def grant(self, ttl: int = 600) -> int:
        """A lease that outlives the run: the benchmark sends no keep-alives."""
        return int(self._grant(self.pb.LeaseGrantRequest(TTL=ttl), timeout=30).ID)

    def revoke(self, lease: int) -> None:
        self._revoke(self.pb.LeaseRevokeRequest(ID=lease), timeout=30)

    def lock(self, name: bytes, lease: int) -> bytes:
        return bytes(self.lock_call(self.pb.LockRequest(name=name, lease=lease), timeout=30).key)

    def unlock(self, key: bytes) -> None:
        self._unlock(self.pb.UnlockRequest(key=key), timeout=30)

    def count(self, prefix: bytes) -> int:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        request = self.pb.RangeRequest(key=prefix, range_end=end, count_only=True)
        return int(self._range(request, timeout=30).count)


def _etcd_library(endpoint: str, locks: int, handoffs: int) -> list[Record]:
    with tempfile.TemporaryDirectory(prefix="tejido-bench-etcd-lock-") as tmp:
        etcd = _EtcdLock(endpoint, Path(tmp))
        try:
            return _etcd_measure(etcd, locks, handoffs)
        finally:
            etcd.channel.close()


def _etcd_measure(etcd: _EtcdLock, locks: int, handoffs: int) -> list[Record]:
    lease = etcd.grant()
    etcd.unlock(etcd.lock(b"bench/warmup", lease))
    start = time.perf_counter()
    for _ in range(locks):
        etcd.unlock(etcd.lock(b"bench/uncontended", lease))
    rate = locks / (time.perf_counter() - start)
    fresh_runs = max(1, locks // 2)
    start = time.perf_counter()
    for _ in range(fresh_runs):
        fresh = etcd.grant()
        etcd.unlock(etcd.lock(b"bench/fresh", fresh))
        etcd.revoke(fresh)
    fresh_rate = fresh_runs / (time.perf_counter() - start)
    records = [
        _record(
            "etcd", "uncontended lock", "acquire+release (lease reused)", rate, "ops/s", n=locks
        ),
        _record(
            "etcd",
            "uncontended lock",
            "grant+acquire+release+revoke",
            fresh_rate,
            "ops/s",
            n=fresh_runs,
        ),
    ]
    other = etcd.grant()
    holder_lease, waiter_lease = lease, other
    held = etcd.lock(b"bench/handoff", holder_lease)
    samples: list[float] = []
    for _ in range(handoffs):
        waiting = etcd.lock_call.future(
            etcd.pb.LockRequest(name=b"bench/handoff", lease=waiter_lease), timeout=60
        )
        deadline = time.monotonic() + 60
        while etcd.count(b"bench/handoff/") < 2:  # the waiter is in line
            if time.monotonic() > deadline or waiting.done():
                raise RecipeBenchError("etcd's waiting Lock call never got in line")
            time.sleep(0.005)
        time.sleep(IN_LINE_PAUSE_S)  # and watching its predecessor
        released_at = time.perf_counter()
        etcd.unlock(held)
        held = bytes(waiting.result().key)
        samples.append(time.perf_counter() - released_at)
        holder_lease, waiter_lease = waiter_lease, holder_lease
    etcd.unlock(held)
    etcd.revoke(lease)
    etcd.revoke(other)
    records.extend(_latency_records("etcd", samples))
    return records


def _etcd_cli(endpoints: list[str], runs: int) -> list[Record]:
    env = _etcd_env()
    lock = [ETCDCTL, "--endpoints", ",".join(endpoints), "lock", "bench/cli", "--", "true"]
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run(lock, check=True, capture_output=True, env=env, timeout=60)
    rate = runs / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run([ETCDCTL, "version"], check=True, capture_output=True, env=env, timeout=60)
    startup = runs / (time.perf_counter() - start)
    return [
        _record(
            "etcd", "uncontended lock", "`etcdctl lock NAME -- true` runs", rate, "ops/s", n=runs
        ),
        _record("etcd", "process start", "`etcdctl version` runs", startup, "ops/s", n=runs),
    ]


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
    """Run the benchmark (module docstring); returns the records. ``cli_runs=0`` leaves
    out the command-line measurements."""
    records: list[Record] = []
    tejido = TejidoAdapter()
    why = tejido.unavailable()
    if why:
        raise RecipeBenchError(f"tejido's store cannot run here: {why}")
    progress("tejido: starting 3 members")

    def run_tejido(endpoints: list[str]) -> list[Record]:
        found = asyncio.run(_tejido_library(endpoints, locks, handoffs))
        progress("tejido: the command line")
        return found + (_tejido_cli(endpoints, cli_runs) if cli_runs > 0 else [])

    records += _with_cluster(tejido, run_tejido)
    if against_etcd:
        etcd = EtcdAdapter()
        why = etcd.unavailable() or (None if shutil.which(ETCDCTL) else "no etcdctl binary")
        if why:
            progress(f"etcd skipped: {why}")
        else:
            progress("etcd: starting 3 members")
            cluster: Cluster = etcd.start()
            try:
                leader = cluster.endpoints()[etcd.leader(cluster)]
                records += _etcd_library(leader, locks, handoffs)
                if cli_runs > 0:
                    progress("etcd: the command line")
                    records += _etcd_cli(cluster.endpoints(), cli_runs)
            finally:
                etcd.stop(cluster)
    return _side_by_side(records)


def _side_by_side(records: list[Record]) -> list[Record]:
    """Each (workload, metric) of tejido directly followed by etcd's (a stable sort by
    the first appearance of the pair), so the table reads as a comparison."""
    order: dict[tuple[object, object], int] = {}
    for record in records:
        order.setdefault((record["workload"], record["metric"]), len(order))
    return sorted(records, key=lambda r: order[(r["workload"], r["metric"])])
