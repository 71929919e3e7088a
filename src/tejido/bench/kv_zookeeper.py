"""ZooKeeper in the replicated-store benchmark: a 3-member ensemble and a kazoo client.

The members are Debian's ``zookeeper`` package (3.8; ``/usr/share/java/zookeeper.jar`` run
with ``QuorumPeerMain``), each with its own ``zoo.cfg``, ``myid`` and data directory under a
temporary directory, client, quorum and election ports the kernel just handed out, the
package's sample timings (``tickTime=2000``, ``initLimit=10``, ``syncLimit=5``) and its
default ``forceSync=yes`` (the transaction log is fsynced before a write is acknowledged).
Only the ``srvr`` four-letter command is enabled, to find the leader (``Mode: leader``);
the AdminServer is off.

A key ``k`` is the znode ``/bench/k``. A put is ``setData`` (``create`` the first time); a
get is ``sync`` then ``getData``: ZooKeeper serves reads from the member's local copy,
possibly stale, and ``sync`` first makes the read see every write completed before it
(the ZooKeeper Programmer's Guide, "Consistency Guarantees", names ``sync`` before a read
as the way to an up-to-date view). The client is kazoo (threads inside); each
route is one kazoo session whose host list is the route in order (``randomize_hosts`` off,
so clients spread over the members like the other systems'); kazoo reconnects to the next
host itself when its member dies. A request's completion crosses from kazoo's thread into
the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from tejido.bench.kv_common import (
    MEMBERS,
    ZOOKEEPER,
    Cluster,
    KvBenchError,
    Member,
    free_ports,
    stop_member,
    wait_for_port,
)

__all__ = ["USE_UVLOOP", "ZooKeeperAdapter", "ZooKeeperClient", "connect"]

USE_UVLOOP: Final = True
JAR: Final = Path("/usr/share/java/zookeeper.jar")
JAVA: Final = "java"
_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
_ROOT = "/bench"
_START_S = 90.0
_LOG4J = """\
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
"""


def _path(key: bytes) -> str:
    return f"{_ROOT}/{key.decode()}"


class ZooKeeperClient:
    """A `StoreClient` over one kazoo session."""

    def __init__(self, kazoo: Any) -> None:
        from kazoo.exceptions import NodeExistsError, NoNodeError

        self._kazoo = kazoo
        self._no_node = NoNodeError
        self._exists = NodeExistsError

    async def _wait(self, start: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any) -> None:  # on kazoo's thread
            loop.call_soon_threadsafe(_copy, result, future)

        start().rawlink(settle)
        return await future

    async def put(self, key: bytes, value: bytes) -> None:
        path = _path(key)
        try:
            await self._wait(lambda: self._kazoo.set_async(path, value))
        except self._no_node:
            try:
                await self._wait(lambda: self._kazoo.create_async(path, value))
            except self._exists:  # another client created it meanwhile
                await self._wait(lambda: self._kazoo.set_async(path, value))

    async def get(self, key: bytes) -> bytes | None:
        path = _path(key)
        await self._wait(lambda: self._kazoo.sync_async(path))
        try:
            data, _stat = await self._wait(lambda: self._kazoo.get_async(path))
        except self._no_node:
            return None
        return bytes(data)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._kazoo.stop()
        self._kazoo.close()


def _copy(result: Any, future: asyncio.Future[Any]) -> None:
    if future.done():
        return
    if result.successful():
        future.set_result(result.value)
    else:
        future.set_exception(result.exception)


async def connect(spec: dict[str, Any], route: list[str]) -> ZooKeeperClient:
    """The generator's entry point (see `tejido.bench.kv_load`): one session per route."""
    from kazoo.client import KazooClient

    kazoo = KazooClient(hosts=",".join(route), randomize_hosts=False, timeout=10.0)
    await asyncio.to_thread(kazoo.start, 30.0)
    await asyncio.to_thread(kazoo.ensure_path, _ROOT)
    return ZooKeeperClient(kazoo)


def four_letter(address: str, command: bytes, timeout_s: float = 2.0) -> str:
    """Send a four-letter command to the member at `address`; its whole answer."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(command)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class ZooKeeperAdapter:
    """Starts a 3-member ZooKeeper ensemble on loopback."""

    system = ZOOKEEPER
    module = "tejido.bench.kv_zookeeper"

    def __init__(self) -> None:
        self.notes: dict[str, object] = {
            "fsync": True,
            "get": "sync() then getData (a fresh read)",
            "sessions": "one kazoo session per route per generator process",
        }

    def unavailable(self) -> str | None:
        if not JAR.exists() or shutil.which(JAVA) is None:
            return "no ZooKeeper: as root, apt-get install zookeeper (or make bench-deps)"
        if importlib.util.find_spec("kazoo") is None:
            return "kazoo is not installed: pip install 'tejido[bench-kv]'"
        return None

    def start(self) -> Cluster:
        directory = tempfile.TemporaryDirectory(prefix="tejido-bench-zookeeper-")
        cluster = Cluster(self.system, [], directory)
        try:
            ports = free_ports(3 * MEMBERS)
            client, quorum, election = ports[:MEMBERS], ports[MEMBERS:-MEMBERS], ports[-MEMBERS:]
            servers = "\n".join(
                f"server.{i + 1}=127.0.0.1:{quorum[i]}:{election[i]}" for i in range(MEMBERS)
            )
            for i in range(MEMBERS):
                conf = cluster.path / f"zk{i + 1}"
                data = conf / "data"
                data.mkdir(parents=True)
                (data / "myid").write_text(f"{i + 1}\n")
                (conf / "log4j.properties").write_text(_LOG4J)
                (conf / "zoo.cfg").write_text(
                    f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={data}\n"
                    f"clientPort={client[i]}\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n4lw.commands.whitelist=srvr\n"
                    f"{servers}\n"
                )
                log = open(conf / "member.log", "w+b")  # noqa: SIM115 (stop_member)
                process = subprocess.Popen(
                    [
                        JAVA, "-Xmx512m", "-cp", f"{conf}:{JAR}",
                        f"-Dzookeeper.log.dir={conf}", "-Dzookeeper.root.logger=WARN,CONSOLE",
                        _MAIN, str(conf / "zoo.cfg"),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
                address = f"127.0.0.1:{client[i]}"
                cluster.members.append(Member(f"zookeeper member {i + 1}", process, address, log))
            for member in cluster.members:
                wait_for_port(member, _START_S)
            self._wait_for_leader(cluster)
        except BaseException:
            self.stop(cluster)
            raise
        return cluster

    def leader(self, cluster: Cluster) -> int:
        for i, member in enumerate(cluster.members):
            if member.process.poll() is not None:
                continue
            try:
                answer = four_letter(member.client_address, b"srvr")
            except OSError:
                continue
            if "Mode: leader" in answer:
                return i
        raise KvBenchError("no live ZooKeeper member says 'Mode: leader'")

    def _wait_for_leader(self, cluster: Cluster) -> None:
        deadline = time.monotonic() + _START_S
        while True:
            try:
                self.leader(cluster)
                followers = sum(
                    "Mode: follower" in _safe_srvr(m.client_address) for m in cluster.members
                )
                if followers == MEMBERS - 1:
                    return
            except KvBenchError:
                pass
            if time.monotonic() > deadline:
                tails = "\n".join(m.log_tail(5) for m in cluster.members)
                raise KvBenchError(f"ZooKeeper formed no quorum in {_START_S:g} s:\n{tails}")
            time.sleep(0.2)  # polling for an election; the members give no other signal

    def stop(self, cluster: Cluster) -> None:
        for member in cluster.members:
            stop_member(member)
        cluster.directory.cleanup()


def _safe_srvr(address: str) -> str:
    try:
        return four_letter(address, b"srvr")
    except OSError:
        return ""
