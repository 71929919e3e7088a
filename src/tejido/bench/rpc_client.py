"""The client side of the RPC benchmark: one measured run in its own process.

``python -m tejido.bench.rpc_client SYSTEM PORT WORKLOAD --duration S --warmup S --cpus 0``
connects to a `tejido.bench.rpc_server`, calls ``echo`` with the 100-byte payload for
`warmup` seconds, then for `duration` seconds, and prints one JSON object: the calls
completed inside the measured window, the window's length, and the p50/p99 latency of
those calls. Every call's result is compared with its argument (a wrong echo is an error,
not a number).

How each workload keeps its calls outstanding, per system:

- ``sequential``: one call at a time; the next call starts when the previous one returned.
- ``64 in flight``: 64 calls always outstanding. ``tejido`` and ``grpcio`` (grpc.aio)
  run 64 coroutines on one connection, each calling in a loop; ``pyro5`` runs 64 threads,
  each with its own proxy (a Pyro5 proxy is one connection that carries one call at a time);
  ``asyncio-echo`` writes 64 frames, then for every batch of echoes that one read delivers
  writes as many new frames in one write (the anchors' "frames batched per write": no
  futures, no coroutines, the floor under any asyncio client); ``asyncio-echo-await``
  runs 64 coroutines, each doing ``fut = loop.create_future(); transport.write(frame);
  await fut`` per call, the reply's frame setting the result from ``data_received`` (the
  least any awaitable call API costs: one future and one task step per call, one write
  per call).
- ``sequential`` for ``grpcio`` uses the synchronous stub (the fastest way to make one gRPC
  call at a time in Python); for ``asyncio-echo`` it is the batched client with a window of
  1, for ``asyncio-echo-await`` one such coroutine.

A call's latency runs from just before it is issued to just after its result is back; a
call counts in the window when it completes inside it. A window in which no call has
completed yet lasts until one does (its duration grows to match): on a heavily loaded
machine one call can stall longer than a short window.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import threading
import time
from array import array
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import cast

import msgspec

from tejido.bench.rpc_setup import (
    ECHO,
    ECHO_AWAIT,
    GRPC_METHOD,
    GRPCIO,
    OUTSTANDING,
    PAYLOAD,
    PYRO5,
    PYRO_OBJECT,
    PYRO_SERIALIZER,
    SEQUENTIAL,
    SYSTEMS,
    TEJIDO,
    WORKLOADS,
    pin_to,
)

__all__ = ["RunResult", "Window", "main", "run_client"]

_now = time.perf_counter_ns
_FRAME = len(PAYLOAD).to_bytes(4, "big") + PAYLOAD
_unpack_header = struct.Struct(">I").unpack_from


class WrongEcho(RuntimeError):
    """The server answered a call with something other than its argument."""


@dataclass(frozen=True)
class RunResult:
    """One measured run of one system and workload."""

    system: str
    workload: str
    calls: int
    duration_s: float
    throughput: float
    p50_us: float
    p99_us: float
    #: Every call completed, warm-up and window, and the client process's CPU time spent
    #: making them: the cost per call, which load on the machine affects far less than
    #: throughput.
    calls_total: int
    client_cpu_s: float


class Window:
    """The measured interval: calls completing in ``[start_ns, end_ns)`` are counted."""

    def __init__(self, warmup_s: float, duration_s: float) -> None:
        self.start_ns = _now() + int(warmup_s * 1e9)
        self.end_ns = self.start_ns + int(duration_s * 1e9)
        self.duration_s = duration_s
        #: Latency of every counted call, in nanoseconds.
        self.latencies = array("q")
        #: Calls completed from the first to the last, warm-up included.
        self.total_calls = 0
        #: CPU seconds the process used while making them (set by `run_client`): from
        #: here, once connected and imported, to the end of the last call.
        self.cpu_s = 0.0
        self.cpu_start_s = time.process_time()

    def past_end(self, t1: int, latencies: array[int]) -> bool:
        """Whether a call completing at `t1` (at or after ``end_ns``) ends the loop.

        A loop that has counted no call yet (`latencies`, its own or the shared one, is
        empty) extends the window to take this call in: on a heavily loaded machine one
        call can stall longer than a short window, and a window with no call measures
        nothing. The window's `duration_s` grows to match, so calls/s stay honest.
        """
        if latencies:
            return True
        if t1 + 1 > self.end_ns:
            self.end_ns = t1 + 1
            self.duration_s = (self.end_ns - self.start_ns) / 1e9
        return False

    def result(self, system: str, workload: str) -> RunResult:
        latencies = sorted(self.latencies)
        calls = len(latencies)
        if calls == 0:
            raise RuntimeError(
                f"{system} {workload}: no call completed in the {self.duration_s} s window"
            )
        return RunResult(
            system=system,
            workload=workload,
            calls=calls,
            duration_s=self.duration_s,
            throughput=calls / self.duration_s,
            p50_us=latencies[calls // 2] / 1e3,
            p99_us=latencies[min(calls - 1, (calls * 99) // 100)] / 1e3,
            calls_total=self.total_calls,
            client_cpu_s=self.cpu_s,
        )


def _wrong(result: object) -> WrongEcho:
    return WrongEcho(f"echo returned {result!r:.60}, not the {len(PAYLOAD)}-byte argument")


# ---------------------------------------------------------------------- call loops
async def _call_loop(call: Callable[[bytes], Awaitable[bytes]], window: Window) -> None:
    latencies = window.latencies
    start, end = window.start_ns, window.end_ns
    payload = PAYLOAD
    done = 0
    while True:
        t0 = _now()
        result = await call(payload)
        t1 = _now()
        if result != payload:
            raise _wrong(result)
        done += 1
        if t1 >= start:
            if t1 >= end and window.past_end(t1, latencies):
                window.total_calls += done
                return
            latencies.append(t1 - t0)


async def _drive_coroutines(
    call: Callable[[bytes], Awaitable[bytes]], outstanding: int, window: Window
) -> None:
    await asyncio.gather(*(_call_loop(call, window) for _ in range(outstanding)))


def _sync_call_loop(call: Callable[[bytes], bytes], window: Window, latencies: array[int]) -> int:
    """Call until the window ends; return how many calls completed."""
    start, end = window.start_ns, window.end_ns
    payload = PAYLOAD
    done = 0
    while True:
        t0 = _now()
        result = call(payload)
        t1 = _now()
        if result != payload:
            raise _wrong(result)
        done += 1
        if t1 >= start:
            if t1 >= end and window.past_end(t1, latencies):
                return done
            latencies.append(t1 - t0)


# ---------------------------------------------------------------------- asyncio-echo
class _EchoClientProtocol(asyncio.Protocol):
    """Keeps `outstanding` frames in flight; each read's echoes are replaced in one write."""

    def __init__(self, outstanding: int) -> None:
        self.outstanding = outstanding
        self.window: Window | None = None
        loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._sent: deque[int] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self.connected.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(
                ConnectionError(f"the echo server closed the connection: {exc}")
            )

    def start(self, window: Window) -> None:
        assert self._transport is not None
        self.window = window
        now = _now()
        self._sent.extend([now] * self.outstanding)
        self._transport.write(_FRAME * self.outstanding)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        frame = len(_FRAME)
        complete = len(buffer) // frame
        if not complete:
            return
        t1 = _now()
        window = self.window
        assert window is not None
        assert self._transport is not None
        for i in range(complete):
            if buffer[i * frame : (i + 1) * frame] != _FRAME:
                self.done.set_exception(_wrong(bytes(buffer[i * frame : (i + 1) * frame])))
                self._transport.abort()
                return
        del buffer[: complete * frame]
        window.total_calls += complete
        sent = self._sent
        if t1 >= window.start_ns and t1 < window.end_ns:
            latencies = window.latencies
            for _ in range(complete):
                latencies.append(t1 - sent.popleft())
        else:
            for _ in range(complete):
                sent.popleft()
        if t1 < window.end_ns:
            sent.extend([t1] * complete)
            self._transport.write(_FRAME * complete)
        elif not sent and not self.done.done():
            self.done.set_result(None)


async def _run_echo(
    host: str, port: int, workload: str, warmup_s: float, duration_s: float
) -> Window:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        lambda: _EchoClientProtocol(OUTSTANDING[workload]), host, port
    )
    await protocol.connected  # uvloop may return before connection_made ran
    window = Window(warmup_s, duration_s)
    protocol.start(window)
    try:
        await protocol.done
    finally:
        transport.close()
    return window


# ---------------------------------------------------------------------- asyncio-echo-await
class _AwaitEchoClientProtocol(asyncio.Protocol):
    """Resolves the oldest waiting future with each complete reply frame's payload.

    The echo answers frames in order on one connection, so a FIFO of futures pairs each
    reply with its call (what any RPC client must do at least, with ids instead of order).
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[bytes]] = deque()
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connected.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"the echo server closed the connection: {exc}")
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = len(buffer)
        pos = 0
        waiters = self.waiters
        while end - pos >= 4:
            (size,) = _unpack_header(buffer, pos)
            stop = pos + 4 + size
            if stop > end:
                break
            waiters.popleft().set_result(bytes(buffer[pos + 4 : stop]))
            pos = stop
        if pos:
            del buffer[:pos]


async def _await_call_loop(protocol: _AwaitEchoClientProtocol, window: Window) -> None:
    """`_call_loop` with the call written out: a future, a write, an await."""
    loop = asyncio.get_running_loop()
    transport = protocol.transport
    assert transport is not None
    waiters = protocol.waiters
    latencies = window.latencies
    start, end = window.start_ns, window.end_ns
    payload, frame = PAYLOAD, _FRAME
    done = 0
    while True:
        t0 = _now()
        fut: asyncio.Future[bytes] = loop.create_future()
        waiters.append(fut)
        transport.write(frame)
        result = await fut
        t1 = _now()
        if result != payload:
            raise _wrong(result)
        done += 1
        if t1 >= start:
            if t1 >= end and window.past_end(t1, latencies):
                window.total_calls += done
                return
            latencies.append(t1 - t0)


async def _run_echo_await(
    host: str, port: int, workload: str, warmup_s: float, duration_s: float
) -> Window:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(_AwaitEchoClientProtocol, host, port)
    await protocol.connected
    try:
        window = Window(warmup_s, duration_s)
        await asyncio.gather(
            *(_await_call_loop(protocol, window) for _ in range(OUTSTANDING[workload]))
        )
    finally:
        transport.close()
    return window


# ---------------------------------------------------------------------- tejido
async def _run_tejido(
    host: str, port: int, workload: str, warmup_s: float, duration_s: float
) -> Window:
    from tejido.bench.rpc_tejido import open_bench_echo

    call, close = await open_bench_echo(host, port)
    try:
        window = Window(warmup_s, duration_s)
        await _drive_coroutines(call, OUTSTANDING[workload], window)
    finally:
        await close()
    return window


# ---------------------------------------------------------------------- grpcio
def _run_grpc_sync(host: str, port: int, warmup_s: float, duration_s: float) -> Window:
    import grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        call = channel.unary_unary(GRPC_METHOD)
        window = Window(warmup_s, duration_s)
        window.total_calls = _sync_call_loop(call, window, window.latencies)
    return window


async def _run_grpc_aio(
    host: str, port: int, workload: str, warmup_s: float, duration_s: float
) -> Window:
    import grpc

    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        call = channel.unary_unary(GRPC_METHOD)
        window = Window(warmup_s, duration_s)
        await _drive_coroutines(call, OUTSTANDING[workload], window)
    return window


# ---------------------------------------------------------------------- pyro5
def _run_pyro(host: str, port: int, workload: str, warmup_s: float, duration_s: float) -> Window:
    import Pyro5.api

    Pyro5.api.config.SERIALIZER = PYRO_SERIALIZER
    uri = f"PYRO:{PYRO_OBJECT}@{host}:{port}"
    outstanding = OUTSTANDING[workload]
    bound = threading.Barrier(outstanding + 1, timeout=30)
    go = threading.Barrier(outstanding + 1, timeout=30)
    holder: list[Window] = []
    per_thread: list[array[int]] = [array("q") for _ in range(outstanding)]
    failures: list[BaseException] = []
    counts: list[int] = []

    def worker(latencies: array[int]) -> None:
        try:
            with Pyro5.api.Proxy(uri) as proxy:
                proxy._pyroBind()
                bound.wait()
                go.wait()
                counts.append(_sync_call_loop(proxy.echo, holder[0], latencies))
        except BaseException as exc:
            failures.append(exc)
            bound.abort()
            go.abort()

    threads = [threading.Thread(target=worker, args=(lat,), daemon=True) for lat in per_thread]
    for thread in threads:
        thread.start()
    try:
        bound.wait()
        holder.append(Window(warmup_s, duration_s))
        go.wait()
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    window = holder[0]
    window.total_calls = sum(counts)
    for latencies in per_thread:
        window.latencies.extend(latencies)
    return window


# ---------------------------------------------------------------------- entry points
def run_client(
    system: str, host: str, port: int, workload: str, *, warmup_s: float, duration_s: float
) -> RunResult:
    """Run one measured run against the server at ``host:port``."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    if system == ECHO:
        window = _uvloop_run(_run_echo(host, port, workload, warmup_s, duration_s))
    elif system == ECHO_AWAIT:
        window = _uvloop_run(_run_echo_await(host, port, workload, warmup_s, duration_s))
    elif system == TEJIDO:
        window = _uvloop_run(_run_tejido(host, port, workload, warmup_s, duration_s))
    elif system == GRPCIO:
        if workload == SEQUENTIAL:
            window = _run_grpc_sync(host, port, warmup_s, duration_s)
        else:
            window = asyncio.run(_run_grpc_aio(host, port, workload, warmup_s, duration_s))
    elif system == PYRO5:
        window = _run_pyro(host, port, workload, warmup_s, duration_s)
    else:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    window.cpu_s = time.process_time() - window.cpu_start_s
    return window.result(system, workload)


def _uvloop_run(main: Awaitable[Window]) -> Window:
    import uvloop

    async def wrapper() -> Window:
        return await main

    return uvloop.run(wrapper())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("port", type=int)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first")
    parser.add_argument("--cpus", default="", help="comma-separated CPUs to pin to")
    args = parser.parse_args(argv)
    pin_to(frozenset(int(c) for c in args.cpus.split(",") if c))
    result = run_client(
        args.system,
        args.host,
        args.port,
        args.workload,
        warmup_s=args.warmup,
        duration_s=args.duration,
    )
    print(msgspec.json.encode(asdict(result)).decode(), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
