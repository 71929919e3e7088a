"""`tejido bench actors`: local actor messaging, tejido side by side with pykka and Thespian.

Workloads (one sender, one receiver, in one process; each system's own idiom):

- ``local tell``: the sender tells `messages` small messages to one actor that counts them,
  then asks for the count; throughput = messages / time until the count came back.
- ``local ask``: `asks` sequential round trips (ask, wait for the reply, ask again).

Systems: ``tejido`` (an `ActorSystem` on uvloop); ``pykka`` (``ThreadingActor``:
``tell``, and ``ask(block=False).get()``); ``thespian`` (its in-process
``simpleSystemBase``: ``tell`` / ``ask`` from outside the system; its multiprocess bases
belong to the remote workload); ``ray`` is not measured here: it needs the ``bench-ray``
extra (``pip install 'tejido[bench-ray]'``) and the remote workloads, which come with
remote actors (the hook is `_ray_unavailable`).

tejido also gets two "many actors" records: ``memory`` per idle actor (``bytes``,
tracemalloc's count of Python allocations while `idle` actors are spawned, divided by
`idle`) and ``spawn_time`` for `spawn` actors (``s``).

Runs are interleaved (run 1 of every system and workload, then run 2, ...) and the median
is reported. Records: system in ``tejido | pykka | thespian``, workload in ``local tell |
local ask``, metric ``throughput`` (``msg/s``) with the runs and the load average. The
targets (tejido tell >= 2x pykka, ask >= 5x pykka) are printed as PASS/FAIL lines.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tejido.actors import Actor, ActorSystem
from tejido.bench.records import Record
from tejido.rpc.loop import run as run_loop

__all__ = [
    "ActorBenchError",
    "bench_actors",
    "parse_against",
    "target_lines",
]

TEJIDO, PYKKA, THESPIAN, RAY = "tejido", "pykka", "thespian", "ray"
TELL, ASK = "local tell", "local ask"
WORKLOADS = (TELL, ASK)
TELL_TARGET, ASK_TARGET = 2.0, 5.0
_MODULES = {PYKKA: "pykka", THESPIAN: "thespian", RAY: "ray"}


class ActorBenchError(Exception):
    """Bad options or a missing anchor; the message says which."""


def _ray_unavailable() -> str:
    """Why Ray is not measured (the hook for the remote workloads)."""
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed: pip install 'tejido[bench-ray]'"
    return "ray is measured by the remote workloads, which arrive with remote actors"


def parse_against(text: str) -> tuple[str, ...]:
    """Anchors named by ``--against`` (``pykka,thespian,ray``; ``none`` for none)."""
    names: list[str] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if not word or word == "none":
            continue
        if word not in _MODULES:
            raise ActorBenchError(
                f"unknown system {word!r} in --against; choose from pykka, thespian, ray"
            )
        if word not in names:
            names.append(word)
    return tuple(names)


# ---------------------------------------------------------------------- tejido
@dataclass(frozen=True, slots=True)
class Ping:
    n: int


class _Sink(Actor[Ping | None]):
    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Ping | None) -> int:
        if message is None:
            return self.count
        self.count += 1
        return message.n


class _Idle(Actor[None]):
    pass


async def _tejido_tell(messages: int) -> float:
    async with ActorSystem("bench") as system:
        sink = system.spawn(_Sink)
        ping = Ping(1)
        start = time.perf_counter()
        for _ in range(messages):
            sink.tell(ping)
        count = await sink.ask(None, timeout=600)
        elapsed = time.perf_counter() - start
    if count != messages:
        raise ActorBenchError(f"tejido sink counted {count} of {messages} messages")
    return messages / elapsed


async def _tejido_ask(asks: int) -> float:
    async with ActorSystem("bench") as system:
        sink = system.spawn(_Sink)
        ping = Ping(7)
        start = time.perf_counter()
        for _ in range(asks):
            if await sink.ask(ping) != 7:
                raise ActorBenchError("tejido replied wrongly")
        elapsed = time.perf_counter() - start
    return asks / elapsed


async def _tejido_many(idle: int, spawn: int) -> tuple[float, float]:
    async with ActorSystem("bench") as system:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        refs = [system.spawn(_Idle) for _ in range(idle)]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        per_actor = (after - before) / idle
        del refs
        start = time.perf_counter()
        for _ in range(spawn):
            system.spawn(_Idle)
        spawn_s = time.perf_counter() - start
        await system.shutdown(drain=False)
    return per_actor, spawn_s


# ---------------------------------------------------------------------- pykka
def _pykka(workload: str, count: int) -> float:
    import pykka

    class Sink(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: Any) -> Any:
            if message is None:
                return self.count
            self.count += 1
            return message

    ref = Sink.start()
    try:
        start = time.perf_counter()
        if workload == TELL:
            for _ in range(count):
                ref.tell(1)
            got = ref.ask(None, block=False).get(timeout=600)
            if got != count:
                raise ActorBenchError(f"pykka counted {got} of {count}")
        else:
            for _ in range(count):
                ref.ask(7, block=False).get(timeout=60)
        return count / (time.perf_counter() - start)
    finally:
        ref.stop()


# ---------------------------------------------------------------------- thespian
def _thespian(workload: str, count: int) -> float:
    from thespian.actors import Actor as ThActor  # type: ignore[import-untyped]
    from thespian.actors import ActorSystem as ThSystem

    class Sink(ThActor):  # type: ignore[misc]
        count = 0

        def receiveMessage(self, message: Any, sender: Any) -> None:
            if message == "count":
                self.send(sender, self.count)
            elif isinstance(message, int):
                self.count += 1
                if workload == ASK:
                    self.send(sender, message)

    system = ThSystem("simpleSystemBase", transientUnique=True)
    try:
        sink = system.createActor(Sink)
        start = time.perf_counter()
        if workload == TELL:
            for _ in range(count):
                system.tell(sink, 1)
            got = system.ask(sink, "count", 600)
            if got != count:
                raise ActorBenchError(f"thespian counted {got} of {count}")
        else:
            for _ in range(count):
                system.ask(sink, 7, 60)
        return count / (time.perf_counter() - start)
    finally:
        system.shutdown()


# ---------------------------------------------------------------------- driver
def bench_actors(
    against: Sequence[str] = (PYKKA, THESPIAN),
    *,
    repeats: int = 3,
    messages: int = 200_000,
    asks: int = 20_000,
    idle: int = 10_000,
    spawn: int = 100_000,
    progress: Callable[[str], None] | None = None,
) -> list[Record]:
    """Measure tejido and `against`; return the records (see the module docstring)."""
    if repeats < 1 or messages < 1 or asks < 1 or idle < 1 or spawn < 1:
        raise ActorBenchError("--repeats, --messages, --asks, --idle and --spawn must be >= 1")
    systems = [TEJIDO]
    for system in against:
        if system == RAY:
            if progress is not None:
                progress(f"ray left out: {_ray_unavailable()}")
            continue
        if importlib.util.find_spec(_MODULES[system]) is None:
            raise ActorBenchError(
                f"{system} is not installed; install the extras: pip install 'tejido[bench]'"
            )
        systems.append(system)
    sizes = {TELL: messages, ASK: asks}
    # pykka and thespian are 10-100x slower per message: fewer messages, same rates
    anchor_sizes = {TELL: max(1, messages // 4), ASK: max(1, asks // 4)}
    load_start = os.getloadavg()[0]
    runs: dict[tuple[str, str], list[float]] = {}
    for repeat in range(repeats):
        for system in systems:
            for workload in WORKLOADS:
                if system == TEJIDO:
                    coro = _tejido_tell if workload == TELL else _tejido_ask
                    rate = run_loop(coro(sizes[workload]))
                elif system == PYKKA:
                    rate = _pykka(workload, anchor_sizes[workload])
                else:
                    rate = _thespian(workload, anchor_sizes[workload])
                runs.setdefault((system, workload), []).append(rate)
                if progress is not None:
                    line = f"run {repeat + 1}/{repeats} {system:<9} {workload:<10}"
                    progress(f"{line} {rate:>12,.0f} msg/s")
    per_actor, spawn_s = run_loop(_tejido_many(idle, spawn))
    load = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    records: list[Record] = []
    for system in systems:
        for workload in WORKLOADS:
            values = runs[(system, workload)]
            records.append(
                {
                    "system": system,
                    "workload": workload,
                    "metric": "throughput",
                    "value": statistics.median(values),
                    "unit": "msg/s",
                    "runs": values,
                    "messages": sizes[workload] if system == TEJIDO else anchor_sizes[workload],
                    "load_1m": load,
                    "cpus": os.cpu_count(),
                }
            )
    records.append(
        {
            "system": TEJIDO,
            "workload": "idle actors",
            "metric": "memory",
            "value": per_actor,
            "unit": "bytes/actor",
            "actors": idle,
        }
    )
    records.append(
        {
            "system": TEJIDO,
            "workload": f"spawn {spawn}",
            "metric": "spawn_time",
            "value": spawn_s,
            "unit": "s",
            "actors": spawn,
        }
    )
    return records


def _throughput(records: Sequence[Record], system: str, workload: str) -> float | None:
    for record in records:
        if (record["system"], record["workload"], record["metric"]) == (
            system,
            workload,
            "throughput",
        ):
            value = record["value"]
            return float(value) if isinstance(value, int | float) else None
    return None


def target_lines(records: Sequence[Record]) -> list[str]:
    """The issue's local targets, PASS/FAIL/n/a with the ratio behind each."""
    lines = []
    for workload, factor in ((TELL, TELL_TARGET), (ASK, ASK_TARGET)):
        mine, theirs = _throughput(records, TEJIDO, workload), _throughput(records, PYKKA, workload)
        title = f"target: tejido {workload} >= {factor:g} x pykka"
        if mine is None or theirs is None:
            lines.append(f"{title}: n/a (pykka not measured)")
            continue
        ratio = mine / theirs
        verdict = "PASS" if ratio >= factor else "FAIL"
        lines.append(f"{title}: {verdict} ({ratio:.2f} x: {mine:,.0f} vs {theirs:,.0f} msg/s)")
    return lines
