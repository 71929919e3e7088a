"""Helpers for store tests on real processes: a single-member cluster started with
`tejido node start` (kernel-picked ports), and the `tejido` command line against it."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]


@dataclass
class Member:
    process: subprocess.Popen[str]
    client: str
    grpc: str | None


def _read_line(process: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if marker in line:
                return line
            if not line and process.poll() is not None:
                raise AssertionError(f"the member exited: {process.communicate()}")
    raise AssertionError(f"no {marker!r} line within {timeout_s} s")


def next_line(process: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    """The process's next stdout line ('' at its end); fails after `timeout_s` instead
    of blocking a test forever."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    if not ready:
        raise AssertionError(f"no output from {process.args} within {timeout_s} s")
    return process.stdout.readline()


@contextmanager
def single_member(root: Path, *, grpc: bool = False) -> Iterator[Member]:
    """One member that is the whole cluster, as a real process; stopped with SIGTERM
    (and required to exit 0) at the end."""
    extra = ["--grpc", "127.0.0.1:0"] if grpc else []
    process = subprocess.Popen(
        [
            *TEJIDO,
            "node",
            "start",
            "--id",
            "1",
            "--data",
            str(root / "n1"),
            "--peer",
            "1=127.0.0.1:0",
            "--client",
            "1=127.0.0.1:0",
            "--election-timeout",
            "0.3",
            "--heartbeat-interval",
            "0.05",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(process, "listening on", 60).split()
        client = line[line.index("client") + 1]
        grpc_address = line[line.index("grpc") + 1] if grpc else None
        yield Member(process, client, grpc_address)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors


def tejido(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TEJIDO, *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
