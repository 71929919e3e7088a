"""`tejido bench rpc`: the records it writes, its options, and the pieces it is built from.

The integration test runs the real benchmark (separate server and client processes) with
tiny windows and checks names, units and that every number is a positive measurement; it
asserts nothing about speed. The other tests exercise the echo server, the client's echo
check, the percentile window and the report without timing anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tejido.bench.rpc import (
    RpcBenchError,
    format_rpc_table,
    parse_against,
    target_lines,
    tejido_unavailable,
)
from tejido.bench.rpc_client import Window, WrongEcho, _run_echo, _run_echo_await
from tejido.bench.rpc_server import EchoServerProtocol
from tejido.bench.rpc_setup import PAYLOAD, parse_ready_line, placement_named, ready_line

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
SYSTEMS = {"asyncio-echo", "asyncio-echo-await", "tejido", "grpcio", "pyro5"}
WORKLOADS = {"sequential", "64 in flight"}
UNITS = {
    "throughput": "calls/s",
    "p50": "us",
    "p99": "us",
    "server_cpu": "us/call",
    "client_cpu": "us/call",
}


def _placement() -> str:
    return "split" if {0, 1} <= os.sched_getaffinity(0) else "none"


@pytest.mark.integration
def test_bench_rpc_writes_named_positive_records_for_every_system(tmp_path: Path) -> None:
    out = tmp_path / "rpc.json"
    done = subprocess.run(
        [
            *TEJIDO, "bench", "rpc", "--against", "grpc,pyro5", "--repeats", "1",
            "--duration", "0.4", "--warmup", "0.1", "--placement", _placement(),
            "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(out.read_text())
    expected = {"asyncio-echo", "asyncio-echo-await", "grpcio", "pyro5"}
    if tejido_unavailable() is None:
        expected.add("tejido")
    else:
        assert "tejido left out" in done.stderr
    seen = {(r["system"], r["workload"], r["metric"]) for r in records}
    assert seen == {(s, w, m) for s in expected for w in WORKLOADS for m in UNITS}
    assert len(records) == len(seen)
    for record in records:
        assert record["unit"] == UNITS[record["metric"]], record
        if record["metric"] == "server_cpu":  # read in 10 ms ticks: a tiny run may show 0
            assert record["value"] >= 0, record
        else:
            assert record["value"] > 0, record
        if record["metric"] == "throughput":
            assert len(record["runs"]) == 1
            assert record["ratio_to_echo"] > 0
            assert record["ratio_to_echo_await"] > 0
    for record in records:
        if record["system"] == "asyncio-echo" and record["metric"] == "throughput":
            assert record["ratio_to_echo"] == 1.0
    for system in expected:
        assert system in done.stdout
    assert "target: tejido sequential" in done.stdout
    assert "asyncio-echo-await = " in done.stdout


def test_against_names_anchors_and_refuses_unknown_ones() -> None:
    assert parse_against("grpc,pyro5") == ("grpcio", "pyro5")
    assert parse_against("pyro5, grpcio,grpc") == ("pyro5", "grpcio")
    assert parse_against("none") == ()
    with pytest.raises(RpcBenchError, match="'thrift'"):
        parse_against("grpc,thrift")


def test_bad_placement_or_against_exits_2_with_a_message() -> None:
    done = subprocess.run(
        [*TEJIDO, "bench", "rpc", "--against", "corba"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown system 'corba'" in done.stderr
    with pytest.raises(ValueError, match="unknown placement 'diagonal'"):
        placement_named("diagonal")


def test_ready_line_round_trips_and_other_lines_are_not_ready() -> None:
    assert parse_ready_line(ready_line(43210) + "\n") == 43210
    assert parse_ready_line("READY") is None
    assert parse_ready_line("some log line") is None


def test_window_counts_only_calls_inside_it_and_takes_percentiles() -> None:
    window = Window(warmup_s=0.0, duration_s=2.0)
    latencies_ns = [(i + 1) * 1000 for i in range(200)]  # 1..200 us, shuffled below
    window.latencies.extend(latencies_ns[::2] + latencies_ns[1::2])
    result = window.result("asyncio-echo", "sequential")
    assert result.calls == 200
    assert result.throughput == 100.0
    assert result.p50_us == 101.0  # the 101st smallest of 200
    assert result.p99_us == 199.0
    with pytest.raises(RuntimeError, match="no call completed"):
        Window(0.0, 1.0).result("asyncio-echo", "sequential")


def _record(system: str, workload: str, calls_s: float) -> list[dict[str, object]]:
    return [
        {"system": system, "workload": workload, "metric": "throughput", "value": calls_s,
         "unit": "calls/s", "ratio_to_echo": 1.0},
        {"system": system, "workload": workload, "metric": "p50", "value": 50.0, "unit": "us"},
        {"system": system, "workload": workload, "metric": "p99", "value": 90.0, "unit": "us"},
    ]  # fmt: skip


def test_targets_pass_and_fail_on_the_numbers_given() -> None:
    records = [
        *_record("asyncio-echo", "sequential", 10_000.0),
        *_record("asyncio-echo", "64 in flight", 400_000.0),
        *_record("tejido", "sequential", 9_000.0),
        *_record("tejido", "64 in flight", 120_000.0),
        *_record("grpcio", "sequential", 2_000.0),
        *_record("asyncio-echo-await", "sequential", 8_000.0),
    ]
    lines = target_lines(records)
    assert any(
        "sequential: asyncio-echo-await = 0.80 x asyncio-echo" in line
        and "tejido = 1.12 x asyncio-echo-await" in line
        for line in lines
    )
    assert any(
        line.startswith("target: tejido sequential") and "PASS (0.90 x" in line for line in lines
    )
    assert any("64 in flight >= 150,000" in line and "FAIL (120,000)" in line for line in lines)
    assert any("0.30 x asyncio-echo" in line for line in lines)
    assert any("sequential >= 5 x grpcio: FAIL (4.50 x)" in line for line in lines)
    table = format_rpc_table(records)
    assert "tejido" in table
    assert "120,000" in table
    assert all("n/a" in line for line in target_lines(_record("asyncio-echo", "sequential", 1.0)))


async def _with_server(protocol_factory: object) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol_factory, "127.0.0.1", 0)  # type: ignore[arg-type]
    return server, server.sockets[0].getsockname()[1]


def test_echo_server_drops_an_oversized_frame_and_keeps_serving_others() -> None:
    async def scenario() -> None:
        server, port = await _with_server(EchoServerProtocol)
        async with server:
            bad_r, bad_w = await asyncio.open_connection("127.0.0.1", port)
            good_r, good_w = await asyncio.open_connection("127.0.0.1", port)
            bad_w.write(struct.pack(">I", 1 << 30) + b"x")
            assert await asyncio.wait_for(bad_r.read(), 5) == b""  # closed by the server
            frame = struct.pack(">I", len(PAYLOAD)) + PAYLOAD
            good_w.write(frame[:50])
            await good_w.drain()
            good_w.write(frame[50:] + frame)
            assert await asyncio.wait_for(good_r.readexactly(2 * len(frame)), 5) == frame * 2
            bad_w.close()
            good_w.close()

    asyncio.run(scenario())


class _Mangler(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data[:-1] + b"?")  # type: ignore[attr-defined]


def test_echo_client_refuses_a_wrong_echo() -> None:
    async def scenario() -> None:
        server, port = await _with_server(_Mangler)
        async with server:
            await _run_echo("127.0.0.1", port, "sequential", 0.0, 5.0)

    with pytest.raises(WrongEcho, match="not the 100-byte argument"):
        asyncio.run(scenario())


def test_awaiting_echo_client_pairs_each_reply_with_its_call_and_refuses_a_wrong_one() -> None:
    async def measured() -> Window:
        server, port = await _with_server(EchoServerProtocol)
        async with server:
            return await _run_echo_await("127.0.0.1", port, "64 in flight", 0.0, 0.05)

    window = asyncio.run(measured())
    result = window.result("asyncio-echo-await", "64 in flight")
    assert result.calls > 0
    assert window.total_calls >= result.calls

    async def mangled() -> None:
        server, port = await _with_server(_Mangler)
        async with server:
            await _run_echo_await("127.0.0.1", port, "sequential", 0.0, 5.0)

    with pytest.raises(WrongEcho, match="not the 100-byte argument"):
        asyncio.run(mangled())


def test_profile_summary_counts_samples_under_the_event_loop_only() -> None:
    from tejido.bench.rpc_profile import summarize_collapsed

    loop = "main (tejido/a.py:1);Runner.run (asyncio/runners.py:9)"
    stacks = "\n".join(
        [
            f"{loop};call (tejido/rpc/server.py:10) 30",
            f"{loop};call (tejido/rpc/server.py:12) 30",
            f"{loop} 40",
            f"{loop};x (<frozen importlib._b>:5) 500",
            "main (tejido/a.py:1);pin_to (tejido/bench/rpc_setup.py:3) 700",
        ]
    )
    summary = summarize_collapsed(stacks, title="server")
    assert "server: 100 busy samples" in summary
    assert " 60.0%  call (tejido/rpc/server.py)" in summary  # two lines of one function
    assert " 40.0%  Runner.run (asyncio/runners.py)" in summary  # self
    assert "100.0%  Runner.run (asyncio/runners.py)" in summary  # inclusive
    assert "importlib" not in summary
    assert "pin_to" not in summary
    assert summarize_collapsed("", title="client") == "client: no samples"
