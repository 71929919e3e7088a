"""PySyncObj in the replicated-store benchmark: 3 members and the client that reaches them.

Each member is a `tejido.bench.kv_syncobj_server` process (a SyncObj node with its journal
file on, plus a small TCP front end; its docstring has the wire format). The client keeps
one connection to its route's first member and matches replies to requests by id, so
any number of client tasks share it. PySyncObj forwards a command sent to a follower to
the leader itself, so "spread over all members" is the only mode measured. On a failure
(the member is gone, PySyncObj refused the command) the client reconnects to its route's
next member before the next request.

The leader is found by asking each member for its status (PySyncObj's ``getStatus()``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Final, cast

import msgspec

from tejido.bench.kv_common import (
    MEMBERS,
    PYSYNCOBJ,
    Cluster,
    KvBenchError,
    Member,
    free_ports,
    stop_member,
)
from tejido.bench.kv_syncobj_server import OP_GET, OP_PUT, OP_STATUS

__all__ = ["USE_UVLOOP", "PySyncObjAdapter", "SyncObjClient", "connect"]

USE_UVLOOP: Final = True
_LENGTH = struct.Struct(">I")
_START_S = 30.0


class SyncObjError(RuntimeError):
    """A PySyncObj member refused a request or its connection broke."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self._buffer = bytearray()
        self._ids = itertools.count()
        self._encoder = msgspec.msgpack.Encoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(SyncObjError(f"connection lost: {exc}"))
        self.waiting.clear()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if len(buffer) - offset - 4 < length:
                break
            ident, ok, payload = msgspec.msgpack.decode(buffer[offset + 4 : offset + 4 + length])
            offset += 4 + length
            future = self.waiting.pop(ident, None)
            if future is None or future.done():
                continue
            if ok:
                future.set_result(payload)
            else:
                future.set_exception(SyncObjError(str(payload)))
        del buffer[:offset]

    def call(self, op: int, key: bytes, value: bytes | None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.transport is None:
            future.set_exception(SyncObjError("not connected"))
            return future
        ident = next(self._ids)
        self.waiting[ident] = future
        body = self._encoder.encode([ident, op, key, value])
        self.transport.write(_LENGTH.pack(len(body)) + body)
        return future


class SyncObjClient:
    """A `StoreClient` over one front-end connection, moving along its route on failure."""

    def __init__(self, route: list[str]) -> None:
        self._route = route
        self._at = 0
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()

    async def _ready(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.transport is not None:
            return connection
        async with self._connecting:
            connection = self._connection
            if connection is not None and connection.transport is not None:
                return connection
            host, _, port = self._route[self._at % len(self._route)].rpartition(":")
            loop = asyncio.get_running_loop()
            try:
                _, connection = await loop.create_connection(_Connection, host, int(port))
            except OSError:
                self._at += 1
                raise
            self._connection = connection
            return connection

    async def _call(self, op: int, key: bytes, value: bytes | None) -> Any:
        connection = await self._ready()
        try:
            return await connection.call(op, key, value)
        except SyncObjError:
            if connection is self._connection and connection.transport is None:
                self._connection = None
                self._at += 1
            raise

    async def put(self, key: bytes, value: bytes) -> None:
        await self._call(OP_PUT, key, value)

    async def get(self, key: bytes) -> bytes | None:
        result = await self._call(OP_GET, key, None)
        return result if isinstance(result, bytes) else None

    async def status(self) -> tuple[str, str | None]:
        me, leader = await self._call(OP_STATUS, b"", None)
        return str(me), None if leader is None else str(leader)

    async def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None


async def connect(spec: dict[str, Any], route: list[str]) -> SyncObjClient:
    """The generator's entry point (see `tejido.bench.kv_load`)."""
    return SyncObjClient(route)


class PySyncObjAdapter:
    """Starts 3 `kv_syncobj_server` members on loopback with journal files."""

    system = PYSYNCOBJ
    module = "tejido.bench.kv_syncobj"

    def __init__(self) -> None:
        self.notes: dict[str, object] = {
            "fsync": False,
            "journal": True,
            "append_entries_batching": False,
            "get": "through the replicated log (linearizable)",
            "note": "PySyncObj 0.3.17 never fsyncs its journal",
        }

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("pysyncobj") is None:
            return "pysyncobj is not installed: pip install 'tejido[bench-kv]'"
        return None

    def start(self) -> Cluster:
        directory = tempfile.TemporaryDirectory(prefix="tejido-bench-pysyncobj-")
        raft_ports = free_ports(MEMBERS)
        raft = [f"127.0.0.1:{p}" for p in raft_ports]
        cluster = Cluster(self.system, [], directory)
        try:
            for i in range(MEMBERS):
                log = open(cluster.path / f"member{i}.log", "w+b")  # noqa: SIM115 (stop_member)
                partners = [arg for j in range(MEMBERS) if j != i for arg in ("--partner", raft[j])]
                process = subprocess.Popen(
                    [
                        sys.executable, "-m", "tejido.bench.kv_syncobj_server",
                        "--self", raft[i], *partners,
                        "--journal", str(cluster.path / f"member{i}.journal"),
                        "--listen", "127.0.0.1:0",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=log,
                )  # fmt: skip
                member = Member(f"pysyncobj member {i}", process, "", log, {"raft": raft[i]})
                cluster.members.append(member)
                member.client_address = f"127.0.0.1:{_ready_port(member)}"
            self._wait_for_leader(cluster)
        except BaseException:
            self.stop(cluster)
            raise
        return cluster

    def leader(self, cluster: Cluster) -> int:
        return asyncio.run(self._leader(cluster))

    async def _leader(self, cluster: Cluster, everyone: bool = False) -> int:
        """The leader some live member names (with `everyone`: that all live members name)."""
        by_raft = {m.extra["raft"]: i for i, m in enumerate(cluster.members)}
        named: list[int | None] = []
        for member in cluster.members:
            if member.process.poll() is not None:
                continue
            client = SyncObjClient([member.client_address])
            try:
                _, leader = await asyncio.wait_for(client.status(), 2.0)
            except (OSError, SyncObjError, TimeoutError):
                leader = None
            finally:
                await client.close()
            live = leader in by_raft and cluster.members[by_raft[leader]].process.poll() is None
            named.append(by_raft[leader] if live and leader is not None else None)
        agreed = {n for n in named if n is not None}
        if everyone and (None in named or len(agreed) != 1):
            raise KvBenchError(f"PySyncObj members do not agree on a leader yet: {named}")
        if not agreed:
            raise KvBenchError("no PySyncObj member names a live leader")
        return min(agreed)

    def _wait_for_leader(self, cluster: Cluster) -> None:
        # Every member must know the leader: a command sent to a member that does not yet
        # may be lost (the benchmark then waits out the request timeout).
        deadline = time.monotonic() + _START_S
        while True:
            try:
                asyncio.run(self._leader(cluster, everyone=True))
                return
            except KvBenchError as exc:
                if time.monotonic() > deadline:
                    tails = "\n".join(m.log_tail(5) for m in cluster.members)
                    raise KvBenchError(f"{exc} after {_START_S:g} s:\n{tails}") from None
                time.sleep(0.1)  # polling for an election; the members give no other signal

    def stop(self, cluster: Cluster) -> None:
        for member in cluster.members:
            if member.process.stdout is not None:
                member.process.stdout.close()
            stop_member(member)
        cluster.directory.cleanup()


def _ready_port(member: Member) -> int:
    stdout = member.process.stdout
    assert stdout is not None
    line = stdout.readline().decode()
    if not line.startswith("READY "):
        member.process.wait(timeout=10)
        raise KvBenchError(
            f"{member.name} exited (status {member.process.returncode}) before it was "
            f"ready:\n{member.log_tail()}"
        )
    return int(line.split()[1])
