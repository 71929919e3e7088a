"""The replicated-store benchmark's load generator: one process of closed-loop clients.

``python -m tejido.bench.kv_load PLAN.json`` reads a `Plan`, connects, prints ``READY``,
reads the start instant from stdin (seconds since the epoch: the benchmark sends it once
every generator process of the point is ready, so a slow start never eats into the
warm-up), waits for it, then runs `Plan.clients` asyncio tasks. Each task is a closed-loop
client: it issues its next request when the previous one completed (or failed), on a key
drawn from the `KEY_SPACE` 16-byte keys, with a 256-byte value for puts. A request that
fails or takes longer than `REQUEST_TIMEOUT_S` counts as an error; the client then issues
its next one at once (the adapter's client has moved to its next endpoint by then).

Window: requests completing in ``[start + warmup, start + warmup + duration)`` count; the
process writes one JSON `LoadResult` (to ``Plan.result_path`` and prints ``DONE``; without
a path, as its last line of stdout): requests and errors in the window, the latency
(issue to completion, microseconds) of each counted request, and its own CPU seconds with
the requests they were spent on (from the start instant to the end).

Modes: ``put`` and ``get`` as above; ``preload`` writes every key once (client i writes
keys i, i + clients, ...) and stops; ``failover`` is ``put`` plus the wall-clock
``[issued, completed]`` pair of the first successful writes issued after the warm-up
(the benchmark kills the leader when the warm-up ends, then writes the exact kill instant
on this process's stdin; the run ends at the first successful write issued after it, or
at the end of the window).

Client i (counting over every generator process of the point: ``first_client + i``)
takes route ``routes[(first_client + i) % len(routes)]``: the endpoints it prefers, first
one first. Clients with the same route share one connection (`StoreClient`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import random
import resource
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from tejido.bench.kv_common import KEY_SPACE, VALUE_BYTES, StoreClient, key_for

__all__ = ["REQUEST_TIMEOUT_S", "LoadResult", "Plan", "main"]

#: A request not answered in this time counts as an error (and the client moves on).
REQUEST_TIMEOUT_S = 2.0
#: Successful writes kept per process after the kill instant (failover mode).
_FAILOVER_KEEP = 2000
#: How long stopping waits for the requests in flight when the window closes.
_DRAIN_S = REQUEST_TIMEOUT_S + 1.0
#: Every key, encoded once (a generator issues thousands of requests a second).
_KEYS = [key_for(index) for index in range(KEY_SPACE)]
#: How often a process looks for requests past `REQUEST_TIMEOUT_S` (so a request may run
#: up to this much longer). One sweeping timer per process instead of a timer and a task
#: per request (`asyncio.wait_for`: ~20 us of CPU per request, as much as some stores'
#: whole client call): the generator shares the cores with the members it measures.
_SWEEP_S = 0.1


class Plan(msgspec.Struct, frozen=True):
    """One generator process's part of one measured point."""

    module: str
    spec: dict[str, Any]
    routes: list[list[str]]
    mode: str
    clients: int
    first_client: int = 0
    warmup_s: float = 0.0
    duration_s: float = 1.0
    #: Where to write the `LoadResult` (JSON); empty: the last line of stdout.
    result_path: str = ""


class LoadResult(msgspec.Struct):
    ops: int = 0
    #: Requests completed from the start instant on (warm-up and drain included): what
    #: `cpu_s` was spent on.
    ops_total: int = 0
    errors: int = 0
    latencies_us: list[int] = msgspec.field(default_factory=list)
    cpu_s: float = 0.0
    late_s: float = 0.0
    first_error: str = ""
    writes_after_kill: list[tuple[float, float]] = msgspec.field(default_factory=list)


class _Run:
    """The shared state of one process's clients."""

    def __init__(self, plan: Plan, start_at: float) -> None:
        self.plan = plan
        self.window_start = start_at + plan.warmup_s
        self.window_end = self.window_start + plan.duration_s
        self.stop = False
        self.result = LoadResult()
        self.latencies = array("Q")
        self.after_kill: list[tuple[float, float]] = []
        #: The kill instant, once the benchmark has sent it (failover mode).
        self.killed_at: float | None = None
        #: Client index -> (deadline on the loop's clock, its task) of each request in
        #: flight; `expired`: clients whose request `sweep` cancelled.
        self.inflight: dict[int, tuple[float, asyncio.Task[None]]] = {}
        self.expired: set[int] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def start_sweeping(self) -> None:
        """Run `sweep` every `_SWEEP_S` seconds until `stop_sweeping`."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.sweep()
            self._sweeper = loop.call_later(_SWEEP_S, tick)

        self._sweeper = loop.call_later(_SWEEP_S, tick)

    def stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def sweep(self) -> None:
        """Cancel every request past its deadline (its client counts it as an error)."""
        now = asyncio.get_running_loop().time()
        for index, (deadline, task) in list(self.inflight.items()):
            if deadline <= now and index not in self.expired:
                self.expired.add(index)
                task.cancel()

    def done(self, issued: float, started_ns: int, ok: bool, error: BaseException | None) -> None:
        now = time.time()
        self.result.ops_total += ok
        if self.plan.mode == "preload" or self.window_start <= now < self.window_end:
            if ok:
                self.result.ops += 1
                self.latencies.append((time.perf_counter_ns() - started_ns) // 1000)
            else:
                self.result.errors += 1
        if not ok and not self.result.first_error and error is not None:
            self.result.first_error = f"{type(error).__name__}: {error}"[:300]
        if ok and self.plan.mode == "failover" and issued >= self.window_start:
            if len(self.after_kill) < _FAILOVER_KEEP:
                self.after_kill.append((issued, now))
            if self.killed_at is not None and issued >= self.killed_at:
                self.stop = True  # the failover is measured: the first write after the kill


async def _client(run: _Run, index: int, store: StoreClient) -> None:
    plan = run.plan
    keys = random.Random(index)
    value = os.urandom(VALUE_BYTES)
    put = plan.mode in ("put", "failover", "preload")
    next_key = index
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    while not run.stop:
        if plan.mode == "preload":
            if next_key >= KEY_SPACE:
                return
            key = key_for(next_key)
            next_key += plan.clients
        else:
            key = _KEYS[keys.randrange(KEY_SPACE)]
        call: Awaitable[object] = store.put(key, value) if put else store.get(key)
        issued, started_ns = time.time(), time.perf_counter_ns()
        run.inflight[index] = (loop.time() + REQUEST_TIMEOUT_S, task)
        failure: BaseException | None = None
        try:
            await call
        except asyncio.CancelledError:
            if index not in run.expired:
                raise  # the run is stopping
            run.expired.discard(index)
            task.uncancel()
            failure = TimeoutError(f"no answer within {REQUEST_TIMEOUT_S:g} s")
        except Exception as exc:  # an error, whatever its kind
            failure = exc
        finally:
            run.inflight.pop(index, None)
        run.done(issued, started_ns, failure is None, failure)
        if failure is not None and plan.mode == "preload":
            next_key -= plan.clients  # a preload retries its key


async def _run(plan: Plan) -> LoadResult:
    module = importlib.import_module(plan.module)
    connect: Callable[[dict[str, Any], list[str]], Awaitable[StoreClient]] = module.connect
    stores: dict[tuple[str, ...], StoreClient] = {}
    mine: list[StoreClient] = []
    for i in range(plan.clients):
        route = plan.routes[(plan.first_client + i) % len(plan.routes)]
        if tuple(route) not in stores:
            stores[tuple(route)] = await connect(plan.spec, route)
        mine.append(stores[tuple(route)])
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    start_at = float(await asyncio.to_thread(sys.stdin.readline))
    run = _Run(plan, start_at)
    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)  # the start instant every generator process shares
    run.result.late_s = max(0.0, -delay)
    cpu_start = _own_cpu_s()
    run.start_sweeping()
    tasks = [
        asyncio.create_task(_client(run, plan.first_client + i, store))
        for i, store in enumerate(mine)
    ]
    if plan.mode == "preload":
        await asyncio.gather(*tasks)
    else:
        if plan.mode == "failover":
            watcher = asyncio.create_task(_read_kill_instant(run))
        await asyncio.wait(tasks, timeout=max(0.0, run.window_end - time.time()))
        run.stop = True
        if plan.mode == "failover":
            watcher.cancel()
        _, pending = await asyncio.wait(tasks, timeout=_DRAIN_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    run.stop_sweeping()
    run.result.cpu_s = _own_cpu_s() - cpu_start
    for store in stores.values():
        try:
            await asyncio.wait_for(store.close(), 5.0)
        except Exception as exc:  # a dead member (or a timeout): nothing left to close
            print(f"closing a client: {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
    run.result.latencies_us = run.latencies.tolist()
    run.result.writes_after_kill = sorted(run.after_kill, key=lambda pair: pair[1])
    return run.result


async def _read_kill_instant(run: _Run) -> None:
    """Learn the kill instant from stdin (one line: seconds since the epoch)."""
    line = await asyncio.to_thread(sys.stdin.readline)
    try:
        run.killed_at = float(line)
    except ValueError:
        return  # stdin closed without an instant: run to the end of the window
    if any(issued >= run.killed_at for issued, _ in run.after_kill):
        run.stop = True


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan", type=Path, help="the plan (JSON)")
    args = parser.parse_args(argv)
    plan = msgspec.json.decode(args.plan.read_bytes(), type=Plan)
    module = importlib.import_module(plan.module)
    if getattr(module, "USE_UVLOOP", False):
        import uvloop

        result = uvloop.run(_run(plan))
    else:
        result = asyncio.run(_run(plan))
    encoded = msgspec.json.encode(result)
    if plan.result_path:  # a file: results of 64 KiB and more came back cut through stdout
        Path(plan.result_path).write_bytes(encoded)
        sys.stdout.write("DONE\n")
    else:
        sys.stdout.write(encoded.decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
