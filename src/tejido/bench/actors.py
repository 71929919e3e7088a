"""`tejido bench actors`: local actor messaging, tejido side by side with pykka and Thespian.

Workloads (one sender, one receiver, in one process; each system's own idiom):

- ``local tell``: the sender tells `messages` small messages to one actor that counts them,
  then asks for the count; throughput = messages / time until the count came back.
- ``local ask``: `asks` sequential round trips (ask, wait for the reply, ask again).

Systems: ``tejido`` (an `ActorSystem` on uvloop); ``pykka`` (``ThreadingActor``:
``tell``, and ``ask(block=False).get()``); ``thespian`` (its in-process
``simpleSystemBase``: ``tell`` / ``ask`` from outside the system).

Remote workloads (two OS processes on loopback; the second one, a fresh Python process
running `remote_server_main`, hosts tejido's receiver and the asyncio echo server; Thespian
and Ray start their own processes):

- ``remote ask``: sequential round trips to an actor in the other process: tejido (a
  cluster node spawning the echo actor on the other node, ``await ref.ask``), Thespian's
  ``multiprocTCPBase`` (``ActorSystem.ask`` to an actor in its own process, on an
  ephemeral admin port), Ray (``ray.get(actor.echo.remote(x))`` per call, only when the
  ``bench-ray`` extra is installed) and two floors between the same two processes, a bare
  asyncio (uvloop) protocol sending 32 bytes and waiting for them to come back:
  ``asyncio-echo`` is driven by callbacks alone (the reply's ``data_received`` writes the
  next message: no future, no task step), ``asyncio-echo-await`` is a coroutine doing
  ``fut = loop.create_future(); transport.write(frame); await fut`` per message, the least
  any awaited ask can cost (a future and a task step per call). The issue's target is
  judged against ``asyncio-echo``; the ratio to ``asyncio-echo-await`` is printed beside it;
- ``remote tell``: tejido and Thespian tell `messages` messages, then ask for the count.

tejido also gets two "many actors" records: ``memory`` per idle actor (``bytes``,
tracemalloc's count of Python allocations while `idle` actors are spawned, divided by
`idle`) and ``spawn_time`` for `spawn` actors (``s``).

Runs are interleaved (run 1 of every system and workload, then run 2, ...) and the median
is reported. Records: system in ``tejido | pykka | thespian | ray | asyncio-echo |
asyncio-echo-await``,
workload in ``local tell | local ask | remote tell | remote ask``, metric ``throughput``
(``msg/s``) with the runs and the load average. The targets (tejido tell >= 2x pykka, ask
>= 5x pykka; remote ask >= 4x Thespian and >= 10x Ray, and its ratio to the asyncio floor)
are printed as PASS/FAIL lines.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import itertools
import os
import socket
import statistics
import subprocess
import sys
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
ECHO, ECHO_AWAIT = "asyncio-echo", "asyncio-echo-await"
TELL, ASK = "local tell", "local ask"
REMOTE_TELL, REMOTE_ASK = "remote tell", "remote ask"
WORKLOADS = (TELL, ASK)
TELL_TARGET, ASK_TARGET = 2.0, 5.0
REMOTE_THESPIAN_TARGET, REMOTE_RAY_TARGET, FLOOR_TARGET = 4.0, 10.0, 0.8
_MODULES = {PYKKA: "pykka", THESPIAN: "thespian", RAY: "ray"}


class ActorBenchError(Exception):
    """Bad options or a missing anchor; the message says which."""


def _ray_unavailable() -> str | None:
    """Why Ray cannot be measured, or None when it can."""
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed: pip install 'tejido[bench-ray]'"
    return None


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


# ---------------------------------------------------------------------- remote
_SERVER = "server"
#: the client CPU seconds of the last timed tejido/echo remote run (its timed part only)
_client_cpu_s = [0.0]
_clients = itertools.count(1)


class _EchoProtocol(asyncio.Protocol):
    """The floor's server side: every byte back as it came."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def remote_server_main() -> None:
    """The second process (``python -c "...; remote_server_main()"``): a tejido node
    hosting `_Sink` and the asyncio echo server; prints ``READY ADDRESS ECHO_PORT`` and
    runs until its standard input closes."""
    run_loop(_serve())


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    echo = await loop.create_server(_EchoProtocol, "127.0.0.1", 0)
    echo_port = echo.sockets[0].getsockname()[1]
    async with ActorSystem("bench", node=_SERVER) as system:
        system.types.register(Ping)
        system.types.register_behaviour(_Sink)
        sys.stdout.write(f"READY {system.cluster.address} {echo_port}\n")
        sys.stdout.flush()
        await loop.run_in_executor(None, sys.stdin.read)  # until the driver closes it
    echo.close()


class _RemoteServer:
    """Starts `remote_server_main` in a second Python process; `close()` stops it."""

    def __init__(self) -> None:
        code = "from tejido.bench.actors import remote_server_main; remote_server_main()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise ActorBenchError(f"the remote benchmark's second process did not start: {line!r}")
        _, self.address, port = line.split()
        self.echo_port = int(port)

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


async def _tejido_remote(address: str, workload: str, count: int) -> float:
    async with ActorSystem("bench", node=f"client{next(_clients)}", seeds=[address]) as system:
        system.types.register(Ping)
        system.types.register_behaviour(_Sink)
        async with system.cluster.subscribe() as events, asyncio.timeout(30):
            while system.cluster.member(_SERVER) is None:
                await events.next()
        sink = await system.spawn(_Sink, node=_SERVER)
        ping = Ping(7)
        cpu_start = time.process_time()
        start = time.perf_counter()
        if workload == REMOTE_ASK:
            for _ in range(count):
                if await sink.ask(ping) != 7:
                    raise ActorBenchError("tejido replied wrongly")
        else:
            for _ in range(count):
                sink.tell(ping)
            got = await sink.ask(None, timeout=600)
            if got != count:
                raise ActorBenchError(f"tejido remote sink counted {got} of {count}")
        elapsed = time.perf_counter() - start
        _client_cpu_s[0] = time.process_time() - cpu_start
        await sink.stop()
    return count / elapsed


async def _asyncio_echo(port: int, count: int, *, awaited: bool) -> float:
    """`count` sequential 32-byte round trips to the echo server on `port`.

    ``awaited``: a coroutine awaits a fresh future per message (``asyncio-echo-await``);
    otherwise the client protocol's ``data_received`` writes the next message itself and
    one future waits for the last reply (``asyncio-echo``)."""
    loop = asyncio.get_running_loop()
    payload = b"x" * 32
    size = len(payload)

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.got = 0
            self.left = 0  # callback mode: replies still to come
            self.waiter: asyncio.Future[None] | None = None
            self.transport: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.got += len(data)
            while self.got >= size:
                self.got -= size
                if awaited:
                    waiter = self.waiter
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                    continue
                self.left -= 1
                if self.left > 0:
                    self.transport.write(payload)
                elif self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(None)

    transport, client = await loop.create_connection(Client, "127.0.0.1", port)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        cpu_start = time.process_time()
        start = time.perf_counter()
        if awaited:
            for _ in range(count):
                fut = client.waiter = loop.create_future()
                transport.write(payload)
                await fut
        else:
            client.left = count
            done = client.waiter = loop.create_future()
            transport.write(payload)
            await asyncio.wait_for(done, 600)
        rate = count / (time.perf_counter() - start)
        _client_cpu_s[0] = time.process_time() - cpu_start
        return rate
    finally:
        transport.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _thespian_remote(workload: str, count: int) -> float:
    from thespian.actors import ActorSystem as ThSystem

    # Thespian finds an actor class by module and name in its processes: publish it here
    # (made on first use, as Thespian is optional)
    if "_ThEcho" not in globals():
        globals()["_ThEcho"] = _thespian_echo_class()
    system = ThSystem("multiprocTCPBase", {"Admin Port": _free_port()}, transientUnique=True)
    try:
        echo = system.createActor(globals()["_ThEcho"])
        start = time.perf_counter()
        if workload == REMOTE_ASK:
            for _ in range(count):
                if system.ask(echo, 7, 60) != 7:
                    raise ActorBenchError("thespian replied wrongly")
        else:
            for _ in range(count):
                system.tell(echo, 1)
            got = system.ask(echo, "count", 600)
            if got != count:
                raise ActorBenchError(f"thespian remote counted {got} of {count}")
        return count / (time.perf_counter() - start)
    finally:
        system.shutdown()


def _thespian_echo_class() -> type:
    from thespian.actors import Actor as ThActor

    class ThEcho(ThActor):  # type: ignore[misc]
        count = 0

        def receiveMessage(self, message: Any, sender: Any) -> None:
            if message == "count":
                self.send(sender, self.count)
            elif message == 7:
                self.send(sender, message)
            elif isinstance(message, int):
                self.count += 1

    ThEcho.__module__ = __name__
    ThEcho.__qualname__ = ThEcho.__name__ = "_ThEcho"
    return ThEcho


def _ray_remote(count: int) -> float:
    ray: Any = importlib.import_module("ray")

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote
        class Echo:
            def echo(self, value: int) -> int:
                return value

        echo = Echo.remote()  # type: ignore[attr-defined]
        ray.get(echo.echo.remote(0))  # started
        start = time.perf_counter()
        for _ in range(count):
            ray.get(echo.echo.remote(7))
        return count / (time.perf_counter() - start)
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------- driver
def bench_actors(
    against: Sequence[str] = (PYKKA, THESPIAN),
    *,
    repeats: int = 3,
    messages: int = 200_000,
    asks: int = 20_000,
    idle: int = 10_000,
    spawn: int = 100_000,
    remote: bool = True,
    remote_asks: int = 5_000,
    remote_messages: int = 50_000,
    progress: Callable[[str], None] | None = None,
) -> list[Record]:
    """Measure tejido and `against`; return the records (see the module docstring)."""
    if min(repeats, messages, asks, idle, spawn, remote_asks, remote_messages) < 1:
        raise ActorBenchError(
            "--repeats, --messages, --asks, --idle, --spawn, --remote-asks and "
            "--remote-messages must be >= 1"
        )
    systems = [TEJIDO]
    with_ray = False
    for system in against:
        if system == RAY:
            why = _ray_unavailable() or (None if remote else "it is measured remotely only")
            if why is not None:
                if progress is not None:
                    progress(f"ray left out: {why}")
            elif remote:
                with_ray = True
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
    remote_runs: dict[tuple[str, str], list[float]] = {}
    remote_cpu: dict[tuple[str, str], list[tuple[float, float]]] = {}
    remote_sizes = {REMOTE_ASK: remote_asks, REMOTE_TELL: remote_messages}
    if remote:
        remote_runs = _remote_runs(
            repeats, remote_sizes, THESPIAN in systems, with_ray, progress, remote_cpu
        )
    per_actor, spawn_s = run_loop(_tejido_many(idle, spawn))
    load = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    records: list[Record] = []
    for (system, workload), values in remote_runs.items():
        records.append(
            {
                "system": system,
                "workload": workload,
                "metric": "throughput",
                "value": statistics.median(values),
                "unit": "msg/s",
                "runs": values,
                "messages": remote_sizes[workload]
                // (1 if system in (TEJIDO, ECHO, ECHO_AWAIT) else 4),
                "load_1m": load,
                "cpus": os.cpu_count(),
            }
        )
    for (system, workload), pairs in remote_cpu.items():
        for index, metric in enumerate(("client_cpu", "server_cpu")):
            values = [pair[index] for pair in pairs]
            records.append(
                {
                    "system": system,
                    "workload": workload,
                    "metric": metric,
                    "value": statistics.median(values),
                    "unit": "us/msg",
                    "runs": values,
                }
            )
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


def _process_cpu_s(pid: int) -> float:
    """CPU time (user + system) process `pid` has used, from /proc (0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _remote_runs(
    repeats: int,
    sizes: dict[str, int],
    thespian: bool,
    ray: bool,
    progress: Callable[[str], None] | None,
    cpu: dict[tuple[str, str], list[tuple[float, float]]] | None = None,
) -> dict[tuple[str, str], list[float]]:
    """The remote workloads, interleaved like the local ones (anchors get a quarter).

    For tejido and the echo, whose receivers live in our second process, `cpu` collects
    (client, server) CPU microseconds per message of each run: on a shared machine it moves
    far less than throughput (the rule docs/benchmarks.md uses for RPC)."""
    runs: dict[tuple[str, str], list[float]] = {}
    server = _RemoteServer()
    try:
        for repeat in range(repeats):
            plan: list[tuple[str, str, Callable[[], float]]] = [
                (TEJIDO, REMOTE_ASK, lambda: run_loop(
                    _tejido_remote(server.address, REMOTE_ASK, sizes[REMOTE_ASK]))),
                (TEJIDO, REMOTE_TELL, lambda: run_loop(
                    _tejido_remote(server.address, REMOTE_TELL, sizes[REMOTE_TELL]))),
                (ECHO, REMOTE_ASK, lambda: run_loop(
                    _asyncio_echo(server.echo_port, sizes[REMOTE_ASK], awaited=False))),
                (ECHO_AWAIT, REMOTE_ASK, lambda: run_loop(
                    _asyncio_echo(server.echo_port, sizes[REMOTE_ASK], awaited=True))),
            ]  # fmt: skip
            if thespian:
                plan.append(
                    (
                        THESPIAN,
                        REMOTE_ASK,
                        lambda: _thespian_remote(REMOTE_ASK, sizes[REMOTE_ASK] // 4),
                    )
                )
                plan.append(
                    (
                        THESPIAN,
                        REMOTE_TELL,
                        lambda: _thespian_remote(REMOTE_TELL, sizes[REMOTE_TELL] // 4),
                    )
                )
            if ray:
                plan.append((RAY, REMOTE_ASK, lambda: _ray_remote(sizes[REMOTE_ASK] // 4)))
            for system, workload, measure in plan:
                server_0 = _process_cpu_s(server.process.pid)
                rate = measure()
                server_s = _process_cpu_s(server.process.pid) - server_0
                client_s = _client_cpu_s[0]
                runs.setdefault((system, workload), []).append(rate)
                extra = ""
                if cpu is not None and system in (TEJIDO, ECHO, ECHO_AWAIT):
                    count = sizes[workload]
                    per = (client_s / count * 1e6, server_s / count * 1e6)
                    cpu.setdefault((system, workload), []).append(per)
                    extra = f"  cpu us/msg client {per[0]:.1f} server {per[1]:.1f}"
                if progress is not None:
                    line = f"run {repeat + 1}/{repeats} {system:<18} {workload:<11}"
                    progress(f"{line} {rate:>12,.0f} msg/s{extra}")
    finally:
        server.close()
    return runs


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
    mine = _throughput(records, TEJIDO, REMOTE_ASK)
    if mine is None:
        return lines
    for other, factor in (
        (THESPIAN, REMOTE_THESPIAN_TARGET),
        (RAY, REMOTE_RAY_TARGET),
        (ECHO, FLOOR_TARGET),
    ):
        theirs = _throughput(records, other, REMOTE_ASK)
        title = f"target: tejido {REMOTE_ASK} >= {factor:g} x {other}"
        if theirs is None:
            lines.append(f"{title}: n/a ({other} not measured)")
            continue
        ratio = mine / theirs
        verdict = "PASS" if ratio >= factor else "FAIL"
        lines.append(f"{title}: {verdict} ({ratio:.2f} x: {mine:,.0f} vs {theirs:,.0f} msg/s)")
    floor = _throughput(records, ECHO_AWAIT, REMOTE_ASK)
    title = f"floor: tejido {REMOTE_ASK} / {ECHO_AWAIT} (a future and a task step per call)"
    if floor is None:
        lines.append(f"{title}: n/a ({ECHO_AWAIT} not measured)")
    else:
        lines.append(f"{title}: {mine / floor:.2f} x: {mine:,.0f} vs {floor:,.0f} msg/s")
    return lines
