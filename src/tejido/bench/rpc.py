"""`tejido bench rpc`: small calls per second, tejido RPC side by side with the anchors.

Every system answers one ``echo`` call whose argument and result are the same 100 bytes.
Its server runs in its own process (`tejido.bench.rpc_server`), and each measured run's
client in another (`tejido.bench.rpc_client`), both on loopback and placed on CPUs by a
`Placement` that is the same for every system (default ``split``: server on CPU 1, client
on CPU 0; on a 2-core machine where the two land changes sequential numbers about 3x, so
only numbers taken under one placement are compared). The systems:

- ``asyncio-echo``: a bare asyncio Protocol echo of length-prefixed frames, the Python
  floor every other system is expressed as a ratio of (its client writes the next frames
  straight from ``data_received``: no future, no coroutine);
- ``asyncio-echo-await``: the same echo server, its client a coroutine per outstanding
  call doing ``fut = loop.create_future(); transport.write(frame); await fut``: the floor
  under any awaitable call API (a future and a task step per call). Its ratio to the echo
  says how much of the echo an awaitable API can reach at all; tejido's ratio to it is
  printed too (the issue's targets stay judged against ``asyncio-echo``);
- ``tejido``: `tejido.rpc` (left out, with the reason printed, while it has no server and
  client);
- ``grpcio`` and ``pyro5``: the anchors named by ``--against``.

asyncio-echo and tejido run on uvloop; grpc.aio on the standard loop (gRPC does not
support uvloop); Pyro5 on threads. Two workloads: ``sequential`` (one call at a time) and
``64 in flight`` (64 calls always outstanding; how each system does that is in
`tejido.bench.rpc_client`). Runs are interleaved (run 1 of every system and workload, then
run 2, ...) so that a disturbance on the machine hits every system alike; each run warms up
before its measured window; the median of the runs is reported.

Records: system in ``tejido | grpcio | pyro5 | asyncio-echo | asyncio-echo-await``,
workload in ``sequential | 64 in flight``, metric ``throughput`` (``calls/s``, with the
runs, the ratios to asyncio-echo and to asyncio-echo-await in the same workload, the
placement and the load average), ``p50`` and ``p99`` (``us``),
and ``server_cpu`` and ``client_cpu`` (``us/call``: CPU time each process spent per call,
warm-up included; read from /proc for the server, so Linux only). On a machine shared with
other work throughput and latency swing with the load, CPU per call far less: compare
those when the load average is not near zero.

The targets from the Performance issue are printed as PASS/FAIL lines: tejido sequential at
least 0.85x the echo, and at least 150,000 calls/s with 64 in flight.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tejido.bench.records import Record
from tejido.bench.rpc_client import RunResult
from tejido.bench.rpc_processes import RpcBenchError, run_client_process, servers
from tejido.bench.rpc_setup import (
    ANCHORS,
    ECHO,
    ECHO_AWAIT,
    GRPCIO,
    IN_FLIGHT,
    PAYLOAD_BYTES,
    PYRO5,
    SEQUENTIAL,
    SYSTEMS,
    TEJIDO,
    WORKLOADS,
    Placement,
)

__all__ = [
    "RpcBenchError",
    "bench_rpc",
    "describe_conditions",
    "format_rpc_table",
    "parse_against",
    "target_lines",
    "tejido_unavailable",
]

#: The issue's targets for tejido.
SEQUENTIAL_RATIO_TARGET = 0.85
IN_FLIGHT_TARGET_CALLS_S = 150_000.0

_THROUGHPUT = "throughput"
_CALLS_S = "calls/s"
_US = "us"
_US_CALL = "us/call"
_SERVER_CPU = "server_cpu"
_CLIENT_CPU = "client_cpu"
#: Modules each anchor needs (installed by ``pip install 'tejido[bench]'``).
_ANCHOR_MODULES = {GRPCIO: "grpc", PYRO5: "Pyro5"}


def parse_against(text: str) -> tuple[str, ...]:
    """The anchor systems named by ``--against`` (``grpc,pyro5``; ``none`` for none)."""
    names: list[str] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if not word or word == "none":
            continue
        try:
            system = ANCHORS[word]
        except KeyError:
            raise RpcBenchError(
                f"unknown system {word!r} in --against; choose from grpc, pyro5 (or none)"
            ) from None
        if system not in names:
            names.append(system)
    return tuple(names)


def _check_installed(system: str) -> None:
    module = _ANCHOR_MODULES.get(system)
    if module is not None and importlib.util.find_spec(module) is None:
        raise RpcBenchError(
            f"{system} is not installed (no module {module!r}); "
            "install the benchmark extras: pip install 'tejido[bench]'"
        )


# ---------------------------------------------------------------------- the benchmark
@dataclass(frozen=True)
class _Run:
    """One measured run and the CPU its server spent during it (None: not measurable)."""

    result: RunResult
    server_cpu_s: float | None

    @property
    def client_cpu_us(self) -> float:
        """Client CPU microseconds per call."""
        return self.result.client_cpu_s / max(self.result.calls_total, 1) * 1e6

    @property
    def server_cpu_us(self) -> float | None:
        """Server CPU microseconds per call."""
        if self.server_cpu_s is None:
            return None
        return self.server_cpu_s / max(self.result.calls_total, 1) * 1e6

    def describe(self) -> str:
        r = self.result
        server = self.server_cpu_us
        cpu = f"cpu/call server {server:.1f} us, " if server is not None else "cpu/call "
        return (
            f"{r.system:<12} {r.workload:<13} {r.throughput:>10,.0f} calls/s  "
            f"p50 {r.p50_us:,.0f} us  p99 {r.p99_us:,.0f} us  "
            f"{cpu}client {self.client_cpu_us:.1f} us"
        )


def tejido_unavailable() -> str | None:
    """Why tejido's RPC cannot be benchmarked in this checkout, or None when it can."""
    try:
        from tejido.bench.rpc_tejido import unavailable
    except Exception as exc:  # a broken tejido.rpc: report it, still measure the anchors
        return f"tejido.rpc cannot be imported ({type(exc).__name__}: {exc})"
    return unavailable()


def bench_rpc(
    against: Sequence[str] = (GRPCIO, PYRO5),
    *,
    repeats: int = 3,
    duration_s: float = 2.0,
    warmup_s: float = 0.5,
    placement: Placement,
    include_tejido: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[Record]:
    """Measure both echoes, tejido (when available) and `against`; return the records.

    `progress` hears one line per finished run, and one line when tejido is left out.
    """
    if repeats < 1:
        raise RpcBenchError(f"--repeats must be at least 1, got {repeats}")
    if duration_s <= 0 or warmup_s < 0:
        raise RpcBenchError(
            f"--duration must be positive and --warmup not negative, got {duration_s}, {warmup_s}"
        )
    for system in against:
        if system not in (GRPCIO, PYRO5):
            raise RpcBenchError(f"{system!r} is not an anchor; choose from grpcio, pyro5")
        _check_installed(system)
    systems = [ECHO, ECHO_AWAIT]
    if include_tejido:
        reason = tejido_unavailable()
        if reason is None:
            systems.append(TEJIDO)
        elif progress is not None:
            progress(f"tejido left out: {reason}")
    systems += [s for s in SYSTEMS if s in against]

    load_start = os.getloadavg()[0]
    runs: dict[tuple[str, str], list[_Run]] = {}
    with servers(systems, placement) as started:
        for repeat in range(repeats):
            for system in systems:
                for workload in WORKLOADS:
                    run = _Run(
                        *run_client_process(
                            started[system], workload, placement, warmup_s, duration_s
                        )
                    )
                    runs.setdefault((system, workload), []).append(run)
                    if progress is not None:
                        progress(f"run {repeat + 1}/{repeats} {run.describe()}")
    machine: dict[str, object] = {
        "placement": placement.describe(),
        "cpus": os.cpu_count(),
        "load_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "payload_bytes": PAYLOAD_BYTES,
    }
    return _records(systems, runs, machine)


def _records(
    systems: Sequence[str],
    runs: dict[tuple[str, str], list[_Run]],
    machine: dict[str, object],
) -> list[Record]:
    records: list[Record] = []
    for system in systems:
        for workload in WORKLOADS:
            done = runs[(system, workload)]
            results = [run.result for run in done]
            throughput = statistics.median(r.throughput for r in results)
            echo = statistics.median(run.result.throughput for run in runs[(ECHO, workload)])
            awaited = runs.get((ECHO_AWAIT, workload))
            to_await = (
                {
                    "ratio_to_echo_await": throughput
                    / statistics.median(run.result.throughput for run in awaited)
                }
                if awaited
                else {}
            )
            common = {"system": system, "workload": workload}
            records.append(
                {
                    **common,
                    "metric": _THROUGHPUT,
                    "value": throughput,
                    "unit": _CALLS_S,
                    "ratio_to_echo": throughput / echo,
                    **to_await,
                    "runs": [r.throughput for r in results],
                    **machine,
                }
            )
            for metric, values in (
                ("p50", [r.p50_us for r in results]),
                ("p99", [r.p99_us for r in results]),
            ):
                records.append(
                    {**common, "metric": metric, "value": statistics.median(values), "unit": _US}
                )
            server_cpu = [run.server_cpu_us for run in done]
            for metric, cpu in (
                (_SERVER_CPU, None if None in server_cpu else server_cpu),
                (_CLIENT_CPU, [run.client_cpu_us for run in done]),
            ):
                if cpu is not None:
                    value = statistics.median(v for v in cpu if v is not None)
                    records.append({**common, "metric": metric, "value": value, "unit": _US_CALL})
    return records


# ---------------------------------------------------------------------- reporting
def _value(records: Sequence[Record], system: str, workload: str, metric: str) -> float | None:
    for record in records:
        if (record["system"], record["workload"], record["metric"]) == (system, workload, metric):
            value = record["value"]
            assert isinstance(value, int | float)
            return float(value)
    return None


def describe_conditions(records: Sequence[Record]) -> str:
    """How the records were taken: placement, CPUs, the load average, the run lengths."""
    for record in records:
        if "placement" in record:
            load = record["load_1m"]
            assert isinstance(load, list)
            return (
                f"{record['placement']}; {record['cpus']} CPUs; load average (1 min) "
                f"{load[0]:.2f} at the start, {load[1]:.2f} at the end; "
                f"{record['payload_bytes']}-byte calls; runs of {record['duration_s']:g} s "
                f"after {record['warmup_s']:g} s warm-up"
            )
    return "no measurements"


def format_rpc_table(records: Sequence[Record]) -> str:
    """One row per system and workload: throughput, latency, ratio to the echo, CPU per call."""
    headers = [
        "system", "workload", "calls/s", "p50 us", "p99 us", "x asyncio-echo",
        "x echo-await", "server cpu us/call", "client cpu us/call",
    ]  # fmt: skip
    rows: list[list[str]] = []
    for record in records:
        if record["metric"] != _THROUGHPUT:
            continue
        system, workload = str(record["system"]), str(record["workload"])
        ratio = record.get("ratio_to_echo")
        to_await = record.get("ratio_to_echo_await")
        value = record["value"]
        assert isinstance(value, int | float)

        def cell(metric: str, digits: int) -> str:
            found = _value(records, system, workload, metric)  # noqa: B023 (used at once)
            return "n/a" if found is None else f"{found:,.{digits}f}"

        rows.append(
            [
                system,
                workload,
                f"{value:,.0f}",
                cell("p50", 0),
                cell("p99", 0),
                f"{ratio:.2f}" if isinstance(ratio, float) else "n/a",
                f"{to_await:.2f}" if isinstance(to_await, float) else "n/a",
                cell(_SERVER_CPU, 1),
                cell(_CLIENT_CPU, 1),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def target_lines(records: Sequence[Record]) -> list[str]:
    """The issue's targets for tejido, each PASS, FAIL or n/a with the numbers behind it."""

    def get(system: str, workload: str) -> float | None:
        return _value(records, system, workload, _THROUGHPUT)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    seq, flight = get(TEJIDO, SEQUENTIAL), get(TEJIDO, IN_FLIGHT)
    echo_seq, echo_flight = get(ECHO, SEQUENTIAL), get(ECHO, IN_FLIGHT)
    lines: list[str] = []
    title = f"target: tejido sequential >= {SEQUENTIAL_RATIO_TARGET} x asyncio-echo sequential"
    if seq is None or echo_seq is None:
        lines.append(f"{title}: n/a (tejido not measured)")
    else:
        ratio = seq / echo_seq
        lines.append(
            f"{title}: {verdict(ratio >= SEQUENTIAL_RATIO_TARGET)} "
            f"({ratio:.2f} x: {seq:,.0f} vs {echo_seq:,.0f} calls/s)"
        )
    title = f"target: tejido 64 in flight >= {IN_FLIGHT_TARGET_CALLS_S:,.0f} calls/s"
    if flight is None:
        lines.append(f"{title}: n/a (tejido not measured)")
    else:
        lines.append(f"{title}: {verdict(flight >= IN_FLIGHT_TARGET_CALLS_S)} ({flight:,.0f})")
        if echo_flight is not None:
            lines.append(
                f"report: tejido 64 in flight = {flight / echo_flight:.2f} x asyncio-echo "
                f"64 in flight ({echo_flight:,.0f} calls/s)"
            )
    # The awaitable floor: how much of the echo any awaitable API reaches, and tejido's
    # share of that (reported, not targets).
    for workload in WORKLOADS:
        echo, awaited, mine = get(ECHO, workload), get(ECHO_AWAIT, workload), get(TEJIDO, workload)
        if echo is None or awaited is None:
            continue
        line = (
            f"report: {workload}: asyncio-echo-await = {awaited / echo:.2f} x asyncio-echo "
            f"({awaited:,.0f} vs {echo:,.0f} calls/s)"
        )
        if mine is not None:
            line += f"; tejido = {mine / awaited:.2f} x asyncio-echo-await"
        lines.append(line)
    # What the issue says the targets imply about the anchors (measured, not assumed).
    for anchor, workload, factor in (
        (PYRO5, SEQUENTIAL, 1.0),
        (GRPCIO, SEQUENTIAL, 5.0),
        (GRPCIO, IN_FLIGHT, 15.0),
    ):
        mine, theirs = get(TEJIDO, workload), get(anchor, workload)
        if mine is None or theirs is None:
            continue
        ratio = mine / theirs
        relation = "above" if factor == 1.0 else f">= {factor:g} x"
        ok = ratio > 1.0 if factor == 1.0 else ratio >= factor
        lines.append(
            f"implied: tejido {workload} {relation} {anchor}: {verdict(ok)} ({ratio:.2f} x)"
        )
    return lines
