"""What every part of the replicated-store benchmark agrees on: names, sizes, the adapter.

The benchmark (`tejido.bench.kv`) starts one system's cluster at a time through a
`StoreAdapter` and drives it with load generator processes (`tejido.bench.kv_load`) that
reach it through the adapter module's `connect` function. Both sides take from here:

- the record names the Store issue fixes: systems ``tejido``, ``etcd`` (clients spread over
  all members), ``etcd-leader`` (clients on the leader only), ``pysyncobj``, ``zookeeper``, and
  ``floor`` (a reference, not a store: the hops of a replicated fsynced write and of a
  quorum-confirmed read with no protocol);
  workloads ``put c=N``, ``get c=N`` and ``failover``; metrics ``throughput`` (``ops/s``),
  ``p50``/``p99`` (``ms``), ``server cpu per 1000 ops`` (``s``) and ``first write after
  leader kill`` (``s``);
- the sizes: 16-byte keys drawn from a space of `KEY_SPACE` keys, 256-byte values;
- the adapter contract: a cluster of member processes on loopback with temporary data
  directories, a spec the generator processes can rebuild clients from, a leader lookup and
  a way to kill the leader (``kill -9``).

A member's CPU time is read from ``/proc/PID/stat`` (user + system, all threads), so the
server CPU metric needs Linux.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Protocol

from tejido.bench.rpc_processes import process_cpu_s

__all__ = [
    "ETCD",
    "ETCD_LEADER",
    "FAILOVER",
    "FAILOVER_METRIC",
    "FLOOR",
    "KEY_BYTES",
    "KEY_SPACE",
    "MEMBERS",
    "PYSYNCOBJ",
    "SYSTEMS",
    "TEJIDO",
    "VALUE_BYTES",
    "ZOOKEEPER",
    "ClientSpec",
    "Cluster",
    "KvBenchError",
    "Member",
    "StoreAdapter",
    "StoreClient",
    "free_ports",
    "key_for",
    "kill_member",
    "members_cpu_s",
    "stop_member",
    "wait_for_port",
]

TEJIDO: Final = "tejido"
ETCD: Final = "etcd"
ETCD_LEADER: Final = "etcd-leader"
PYSYNCOBJ: Final = "pysyncobj"
ZOOKEEPER: Final = "zookeeper"
#: Not a store: the hops and fsyncs of one with no protocol (`tejido.bench.kv_floor`).
FLOOR: Final = "floor"
#: Every system in the order the table lists them.
SYSTEMS: Final = (TEJIDO, ETCD, ETCD_LEADER, PYSYNCOBJ, ZOOKEEPER, FLOOR)

FAILOVER: Final = "failover"
FAILOVER_METRIC: Final = "first write after leader kill"

KEY_BYTES: Final = 16
VALUE_BYTES: Final = 256
#: Keys are drawn from this many (all written once before the first measured point).
KEY_SPACE: Final = 1024
MEMBERS: Final = 3

ClientSpec = dict[str, object]
"""What a generator process needs to connect to a cluster (JSON-encodable)."""


class KvBenchError(RuntimeError):
    """The benchmark could not run as asked; the message says what and why."""


def key_for(index: int) -> bytes:
    """The `index`-th key of the key space: exactly `KEY_BYTES` bytes."""
    return f"key-{index % KEY_SPACE:012d}".encode()


class StoreClient(Protocol):
    """One connection (or a few) to a cluster, shared by a generator's client tasks.

    `put` and `get` raise on any failure (the generator counts it and issues the next
    request); after a failure the client may move on to its next endpoint.
    """

    async def put(self, key: bytes, value: bytes) -> None: ...

    async def get(self, key: bytes) -> bytes | None: ...

    async def close(self) -> None: ...


@dataclass
class Member:
    """One member process of a cluster."""

    name: str
    process: subprocess.Popen[bytes]
    client_address: str
    log: IO[bytes]
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        self.log.flush()
        self.log.seek(0)
        text = self.log.read().decode(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:]) or "(no output)"


@dataclass
class Cluster:
    """A running cluster: its members (index i is member i) and its temporary directory."""

    system: str
    members: list[Member]
    directory: tempfile.TemporaryDirectory[str]
    spec: ClientSpec = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.directory.name)

    def endpoints(self) -> list[str]:
        return [m.client_address for m in self.members]


class StoreAdapter(Protocol):
    """How the benchmark starts, inspects and stops one system.

    `module` names the module whose ``async def connect(spec, endpoints) -> StoreClient``
    the generator processes call; `spec` travels to them as JSON.
    """

    system: str
    module: str
    #: Facts recorded beside the numbers (fsync, read mode, versions).
    notes: dict[str, object]

    def unavailable(self) -> str | None:
        """Why this system cannot run here (binary or module missing), or None."""
        ...

    def start(self) -> Cluster: ...

    def leader(self, cluster: Cluster) -> int:
        """Index of the member that is the leader now (raises `KvBenchError` if none)."""
        ...

    def stop(self, cluster: Cluster) -> None: ...


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel just handed out for port 0 (then released).

    Members that must know each other's addresses before they start cannot all listen on
    port 0; another process may take a port between this call and the member's bind, in
    which case the member fails to start and says so.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(member: Member, timeout_s: float) -> None:
    """Return once `member`'s client address accepts TCP connections; raise if it exits."""
    host, _, port = member.client_address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        if member.process.poll() is not None:
            raise KvBenchError(
                f"{member.name} exited with status {member.process.returncode} while "
                f"starting:\n{member.log_tail()}"
            )
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise KvBenchError(
                    f"{member.name} did not accept connections on {member.client_address} "
                    f"within {timeout_s:g} s:\n{member.log_tail()}"
                ) from None
            # Polling a port that is not yet open: the member gives no other signal.
            time.sleep(0.05)


def members_cpu_s(members: Sequence[Member]) -> float | None:
    """User + system CPU seconds of the members so far (None without /proc).

    A member that has exited counts what it used up to its last reading (0 if never read),
    which the caller accounts for by reading before and after a window.
    """
    total = 0.0
    for member in members:
        used = process_cpu_s(member.pid)
        if used is None:
            if member.process.poll() is None:
                return None  # no /proc at all
            continue
        total += used
    return total


def stop_member(member: Member, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; closes the log."""
    process = member.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
    member.log.close()


def kill_member(member: Member) -> float:
    """``kill -9`` the member; the wall-clock instant of the kill (`time.time()`)."""
    killed_at = time.time()
    os.kill(member.pid, signal.SIGKILL)
    member.process.wait(timeout=10)
    return killed_at
