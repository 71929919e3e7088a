"""The ``floor`` system of the replicated-store benchmark: hops only, no protocol.

Not a store anyone would run: 3 `tejido.bench.kv_floor_server` processes on loopback with
a fixed leader (member 0), no log format beyond length-prefixed records, no terms, no
elections, no failover. A put is appended, sent to both followers and fdatasynced by the
leader (group commit on its event loop), made durable by one follower, and answered;
a get waits for one heartbeat round to the followers (ReadIndex's shape) and is read from
the leader's dict (the server's docstring has the details and the wire format). What it
measures is the cost of the hops and fsyncs of a replicated, fsynced write and of a
quorum-confirmed read, in Python on this machine: an upper bound for any store written in
Python that does both, which the benchmark prints beside the real systems (``--against
floor``; never a default anchor, and it has no failover point).

The client (`FloorClient`) keeps one connection to the leader, whatever the route (the
followers refuse puts and gets), and matches replies to requests by id, so any number of
client tasks of a generator share it. `statuses` asks each member for its counters
(records, fdatasync calls, bytes appended).
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import tempfile
from typing import Any, Final, cast

from tejido.bench.kv_common import FLOOR, MEMBERS, Cluster, KvBenchError, Member, stop_member
from tejido.bench.kv_floor_server import (
    OP_GET,
    OP_PUT,
    OP_STATUS,
    REFUSED,
    REPLY,
    REQUEST,
    VALUE,
)

__all__ = ["USE_UVLOOP", "FloorAdapter", "FloorClient", "FloorError", "connect", "statuses"]

USE_UVLOOP: Final = True
_START_S = 30.0
_REQUEST_REST: Final = REQUEST.size - 4


class FloorError(RuntimeError):
    """A floor member refused a request or the connection broke."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[bytes | None]] = {}
        self._rest = b""
        self._next = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(FloorError(f"connection lost: {exc}"))
        self.waiting.clear()

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        end = len(data)
        offset = 0
        waiting = self.waiting
        while end - offset >= REPLY.size:
            length, status, ident = REPLY.unpack_from(data, offset)
            stop = offset + 4 + length
            if stop > end:
                break
            future = waiting.pop(ident, None)
            if future is not None and not future.done():
                if status == VALUE:
                    future.set_result(data[offset + REPLY.size : stop])
                elif status == REFUSED:
                    reason = data[offset + REPLY.size : stop].decode(errors="replace")
                    future.set_exception(FloorError(reason))
                else:
                    future.set_result(None)
            offset = stop
        self._rest = data[offset:]

    def call(self, op: int, key: bytes, value: bytes) -> asyncio.Future[bytes | None]:
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        if self.transport is None:
            future.set_exception(FloorError("not connected"))
            return future
        ident = self._next
        self._next = (ident + 1) & 0xFFFFFFFF
        self.waiting[ident] = future
        header = REQUEST.pack(_REQUEST_REST + len(key) + len(value), op, ident, len(key))
        self.transport.write(header + key + value)
        return future


class FloorClient:
    """A `StoreClient` over one connection to one member (the leader for puts and gets)."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()

    async def _ready(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.transport is not None:
            return connection
        async with self._connecting:
            connection = self._connection
            if connection is not None and connection.transport is not None:
                return connection
            host, _, port = self._address.rpartition(":")
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(_Connection, host, int(port))
            self._connection = connection
            return connection

    async def put(self, key: bytes, value: bytes) -> None:
        await (await self._ready()).call(OP_PUT, key, value)

    async def get(self, key: bytes) -> bytes | None:
        return await (await self._ready()).call(OP_GET, key, b"")

    async def status(self) -> dict[str, Any]:
        payload = await (await self._ready()).call(OP_STATUS, b"", b"")
        found: dict[str, Any] = json.loads(payload or b"{}")
        return found

    async def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None


async def connect(spec: dict[str, Any], route: list[str]) -> FloorClient:
    """The generator's entry point (see `tejido.bench.kv_load`): always the leader."""
    return FloorClient(str(spec.get("leader") or route[0]))


def statuses(cluster: Cluster) -> list[dict[str, Any]]:
    """Each live member's counters (``records``, ``fdatasyncs``, ``log_bytes``, ...)."""

    async def ask() -> list[dict[str, Any]]:
        found = []
        for member in cluster.members:
            client = FloorClient(member.client_address)
            try:
                found.append(await asyncio.wait_for(client.status(), 5.0))
            finally:
                await client.close()
        return found

    return asyncio.run(ask())


class FloorAdapter:
    """Starts the 3 `kv_floor_server` members: followers first, then the leader."""

    system = FLOOR
    module = "tejido.bench.kv_floor"

    def __init__(self) -> None:
        self.notes: dict[str, object] = {
            "fsync": True,
            "fdatasync": "inline on the event loop; records arriving during one are "
            "covered by the next (group commit); a put waits for the leader's and one "
            "follower's",
            "get": "one heartbeat round to the followers started after the get arrived "
            "(ReadIndex's shape), then the leader's dict",
            "note": "hops only: no protocol, no log format, fixed leader",
        }

    def unavailable(self) -> str | None:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "uvloop is not installed"
        return None

    def start(self) -> Cluster:
        directory = tempfile.TemporaryDirectory(prefix="tejido-bench-floor-")
        cluster = Cluster(self.system, [], directory)
        started: list[Member] = []
        try:
            peers: list[str] = []
            for i in range(1, MEMBERS):
                member = self._launch(cluster, i, ["--peer-listen", "127.0.0.1:0"])
                started.append(member)
                client_port, peer_port = _ready_ports(member, 2)
                member.client_address = f"127.0.0.1:{client_port}"
                peers.append(f"127.0.0.1:{peer_port}")
                member.extra["peer"] = peers[-1]
            leader = self._launch(
                cluster, 0, [arg for peer in peers for arg in ("--follower", peer)]
            )
            started.insert(0, leader)
            (client_port,) = _ready_ports(leader, 1)
            leader.client_address = f"127.0.0.1:{client_port}"
        except BaseException:
            cluster.members = started
            self.stop(cluster)
            raise
        cluster.members = started
        cluster.spec = {"leader": leader.client_address}
        return cluster

    def _launch(self, cluster: Cluster, i: int, extra: list[str]) -> Member:
        log = open(cluster.path / f"member{i}.log", "w+b")  # noqa: SIM115 (stop_member)
        process = subprocess.Popen(
            [
                sys.executable, "-m", "tejido.bench.kv_floor_server", "--member", str(i),
                "--records", str(cluster.path / f"member{i}.records"),
                "--listen", "127.0.0.1:0", *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )  # fmt: skip
        return Member(f"floor member {i}", process, "", log)

    def leader(self, cluster: Cluster) -> int:
        return 0

    def stop(self, cluster: Cluster) -> None:
        for member in cluster.members:
            if member.process.stdout is not None:
                member.process.stdout.close()
            stop_member(member)
        cluster.directory.cleanup()


def _ready_ports(member: Member, count: int) -> list[int]:
    """The ports of the member's ``READY`` line (within `_START_S`)."""
    stdout = member.process.stdout
    assert stdout is not None
    ready, _, _ = select.select([stdout], [], [], _START_S)
    if not ready:
        raise KvBenchError(f"{member.name} was not ready within {_START_S:g} s")
    words = stdout.readline().decode().split()
    if len(words) != count + 1 or words[0] != "READY":
        member.process.wait(timeout=10)
        raise KvBenchError(
            f"{member.name} exited (status {member.process.returncode}) before it was "
            f"ready:\n{member.log_tail()}"
        )
    return [int(word) for word in words[1:]]
