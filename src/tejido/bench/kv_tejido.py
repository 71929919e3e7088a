"""tejido's store in the replicated-store benchmark (written ahead of the store itself).

Written against the API the Store issue promises, so that plugging the store in is a small
step:

- members: `NODE_COMMAND` + a TOML file in the format of `tejido.store.config` (3 members,
  peer and client addresses on loopback, a data directory each, default Raft timings);
  a member is up when its client address accepts connections;
- client: ``tejido.kv.Client(endpoints)`` with ``await client.put(key, value)``,
  ``await client.get(key)`` and ``await client.close()`` (the client finds the leader and
  fails over itself, so a route is just the endpoint list, preferred one first);
- leader: ``Client.status(endpoint)`` of each live member (its role, address and process
  id), as ``tejido status`` shows them.

`unavailable` checks what can be checked before starting anything (the client class is
importable) and says ``tejido store not available yet`` otherwise; the other systems' runs
go on either way.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Final

from tejido.bench.kv_common import (
    MEMBERS,
    TEJIDO,
    Cluster,
    KvBenchError,
    Member,
    free_ports,
    stop_member,
    wait_for_port,
)
from tejido.bench.kv_load import REQUEST_TIMEOUT_S

__all__ = ["NODE_COMMAND", "USE_UVLOOP", "TejidoAdapter", "connect", "unavailable"]

USE_UVLOOP: Final = True
#: How to start one member; the config file's path is appended.
NODE_COMMAND: Final = (sys.executable, "-m", "tejido.cli.main", "node", "start", "--config")
_START_S = 60.0
#: History kept by each member (`tejido.store.compaction`), as the etcd members keep
#: theirs (`tejido.bench.kv_etcd`: revision auto-compaction, 10,000): an uncompacted store
#: encodes its whole history into every Raft snapshot, so a put would cost more the
#: longer the benchmark ran.
AUTO_COMPACTION_REVISIONS: Final = 10_000


def unavailable() -> str | None:
    """Why tejido's store cannot be benchmarked in this checkout, or None when it can."""
    try:
        module = importlib.import_module("tejido.kv")
    except Exception as exc:  # a broken store: report it, still measure the anchors
        return f"tejido store not available yet (tejido.kv: {type(exc).__name__}: {exc})"
    if not hasattr(module, "Client"):
        return "tejido store not available yet (tejido.kv has no Client)"
    return None


class _Client:
    """Adapts ``tejido.kv.Client`` to the benchmark's `StoreClient`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.put(key, value)

    async def get(self, key: bytes) -> bytes | None:
        result = await self._client.get(key)
        if result is None or isinstance(result, bytes):
            return result
        value = getattr(result, "value", None)  # a key-value record rather than the bytes
        return value if isinstance(value, bytes) else None

    async def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            await close()


async def connect(spec: dict[str, Any], route: list[str]) -> _Client:
    """The generator's entry point (see `tejido.bench.kv_load`)."""
    module = importlib.import_module("tejido.kv")
    return _Client(module.Client(route, timeout_s=REQUEST_TIMEOUT_S))


class TejidoAdapter:
    """Starts 3 tejido store members on loopback with fsync on (the store's default)."""

    system = TEJIDO
    module = "tejido.bench.kv_tejido"

    def __init__(self) -> None:
        self.notes: dict[str, object] = {
            "fsync": True,
            "get": "linearizable (the client's default)",
            "auto_compaction_revisions": AUTO_COMPACTION_REVISIONS,
        }

    def unavailable(self) -> str | None:
        return unavailable()

    def start(self) -> Cluster:
        directory = tempfile.TemporaryDirectory(prefix="tejido-bench-tejido-")
        cluster = Cluster(self.system, [], directory)
        try:
            ports = free_ports(2 * MEMBERS)
            peer = [f"127.0.0.1:{p}" for p in ports[:MEMBERS]]
            client = [f"127.0.0.1:{p}" for p in ports[MEMBERS:]]
            table = "\n".join(
                f'{i + 1} = {{ peer = "{peer[i]}", client = "{client[i]}" }}'
                for i in range(MEMBERS)
            )
            for i in range(MEMBERS):
                config = cluster.path / f"n{i + 1}.toml"
                config.write_text(
                    f'id = {i + 1}\ndata_dir = "{cluster.path / f"n{i + 1}"}"\n'
                    f"auto_compaction_revisions = {AUTO_COMPACTION_REVISIONS}\n"
                    f"[members]\n{table}\n"
                )
                log = open(cluster.path / f"n{i + 1}.log", "w+b")  # noqa: SIM115 (stop_member)
                process = subprocess.Popen(
                    [*NODE_COMMAND, str(config)], stdout=log, stderr=subprocess.STDOUT
                )
                cluster.members.append(Member(f"tejido member {i + 1}", process, client[i], log))
            for member in cluster.members:
                wait_for_port(member, _START_S)
            self._wait_for_leader(cluster)
        except BaseException:
            self.stop(cluster)
            raise
        return cluster

    def leader(self, cluster: Cluster) -> int:
        return asyncio.run(self._leader(cluster))

    async def _leader(self, cluster: Cluster) -> int:
        module = importlib.import_module("tejido.kv")
        live = [m for m in cluster.members if m.process.poll() is None]
        async with module.Client([m.client_address for m in live], timeout_s=2.0) as client:
            for member in live:
                try:
                    status = await client.status(member.client_address)
                except Exception:  # noqa: S112 (a member that does not answer is not the leader)
                    continue
                if status.role == "leader":
                    return cluster.members.index(member)
        raise KvBenchError("no live tejido member says it is the leader")

    def _wait_for_leader(self, cluster: Cluster) -> None:
        deadline = time.monotonic() + _START_S
        while True:
            try:
                self.leader(cluster)
                return
            except KvBenchError:
                if time.monotonic() > deadline:
                    tails = "\n".join(m.log_tail(5) for m in cluster.members)
                    raise KvBenchError(
                        f"tejido elected no leader in {_START_S:g} s:\n{tails}"
                    ) from None
                time.sleep(0.1)  # polling for an election; the members give no other signal

    def stop(self, cluster: Cluster) -> None:
        for member in cluster.members:
            stop_member(member)
        cluster.directory.cleanup()
