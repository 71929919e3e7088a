"""The processes of the RPC benchmark: start a server, run one measured client, stop.

A server (`tejido.bench.rpc_server`) is started with a pipe on its stdin and stdout; it is
ready when it prints ``READY <port>`` (within a minute, else it is stopped and the error
says so, with the tail of its stderr), and it exits when its stdin is closed (killed if it
has not after 10 s). A client run (`tejido.bench.rpc_client`) is one process that prints
its `RunResult` as JSON on its last line; a failure carries the tail of its stderr.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import msgspec

from tejido.bench.rpc_client import RunResult
from tejido.bench.rpc_setup import Placement, parse_ready_line

__all__ = [
    "RpcBenchError",
    "ServerProcess",
    "cpus_arg",
    "process_cpu_s",
    "run_client_process",
    "servers",
    "start_server",
    "stop_server",
]

_SERVER_START_S = 60.0


class RpcBenchError(RuntimeError):
    """The benchmark could not run as asked; the message says what and why."""


def cpus_arg(cpus: frozenset[int]) -> list[str]:
    return ["--cpus", ",".join(str(c) for c in sorted(cpus))] if cpus else []


@dataclass
class ServerProcess:
    system: str
    process: subprocess.Popen[str]
    port: int
    stderr: IO[str]


def _tail(stream: IO[str], lines: int = 15) -> str:
    stream.seek(0)
    text = stream.read().strip().splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


def start_server(system: str, placement: Placement) -> ServerProcess:
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop_server)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tejido.bench.rpc_server",
            system,
            *cpus_arg(placement.server_cpus),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + _SERVER_START_S
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(left, 0))
        if not ready:
            stop_server(ServerProcess(system, process, 0, stderr))
            raise RpcBenchError(f"{system} server printed no READY line in {_SERVER_START_S} s")
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            raise RpcBenchError(
                f"{system} server exited with status {process.returncode} before it was "
                f"ready:\n{_tail(stderr)}"
            )
        port = parse_ready_line(line)
        if port is not None:
            return ServerProcess(system, process, port, stderr)


def stop_server(server: ServerProcess) -> None:
    process = server.process
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()  # the server exits when its stdin closes
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
    server.stderr.close()


@contextlib.contextmanager
def servers(systems: Sequence[str], placement: Placement) -> Iterator[dict[str, ServerProcess]]:
    started: dict[str, ServerProcess] = {}
    try:
        for system in systems:
            started[system] = start_server(system, placement)
        yield started
    finally:
        for server in started.values():
            stop_server(server)


def process_cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds process `pid` used so far (all threads); None without /proc.

    Read from ``/proc/PID/stat`` (fields 14 and 15, in clock ticks: 10 ms resolution, which
    is 1% of a one-second measurement).
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client_process(
    server: ServerProcess, workload: str, placement: Placement, warmup_s: float, duration_s: float
) -> tuple[RunResult, float | None]:
    """One measured run; its result and the CPU seconds the server spent meanwhile."""
    command = [
        sys.executable, "-m", "tejido.bench.rpc_client",
        server.system, str(server.port), workload,
        "--warmup", str(warmup_s), "--duration", str(duration_s),
        *cpus_arg(placement.client_cpus),
    ]  # fmt: skip
    server_cpu_start = process_cpu_s(server.process.pid)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=warmup_s + duration_s + 30,
            check=False,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    except subprocess.TimeoutExpired as exc:
        raise RpcBenchError(f"{server.system} {workload}: the client did not finish") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RpcBenchError(
            f"{server.system} {workload}: the client failed (status {done.returncode}):\n{tail}"
        )
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RpcBenchError(f"{server.system} {workload}: the client printed no result")
    server_cpu_end = process_cpu_s(server.process.pid)
    result = msgspec.json.decode(lines[-1], type=RunResult)
    if server_cpu_start is None or server_cpu_end is None:
        return result, None
    return result, server_cpu_end - server_cpu_start
