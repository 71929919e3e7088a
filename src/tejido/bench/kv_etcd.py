"""etcd in the replicated-store benchmark: 3 members on loopback and a grpc.aio client.

The members are Debian's ``etcd-server`` (``/usr/bin/etcd``, 3.4), each with its own data
directory under a temporary directory, fsync on (etcd always syncs its WAL; 3.4 has no
switch to turn it off), client and peer URLs on ports the kernel just handed out, and
revision auto-compaction (the anchors saw an uncompacted etcd slow to ~120 reads/s after
~565k revisions).

The client speaks etcd's v3 gRPC API with only the messages it needs, declared with etcd's
own field numbers in `tejido.bench.etcd_proto` (shared with the lock benchmark) and
compiled at run time with grpcio-tools into the cluster's temporary directory. A put is
``KV.Put``; a get is ``KV.Range`` of one key with ``serializable = false``, etcd's
linearizable read (ReadIndex). Each route gets one channel (one HTTP/2 connection) per
endpoint, shared by the generator's client tasks; a failed call moves the route to its
next endpoint, as etcd's own client fails over.

The leader is the member whose id equals the ``leader`` field of ``Maintenance.Status``.
grpc.aio does not run on uvloop, so etcd's generators use asyncio's default loop.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from tejido.bench import etcd_proto
from tejido.bench.etcd_proto import load_proto
from tejido.bench.kv_common import (
    ETCD,
    MEMBERS,
    Cluster,
    KvBenchError,
    Member,
    free_ports,
    stop_member,
    wait_for_port,
)

__all__ = ["USE_UVLOOP", "EtcdAdapter", "EtcdClient", "compile_proto", "connect", "load_proto"]

USE_UVLOOP: Final = False
ETCD_BINARY: Final = "etcd"
_START_S = 60.0
_AUTO_COMPACTION_REVISIONS = 10_000


def compile_proto(directory: Path) -> None:
    """Compile the etcd messages (`tejido.bench.etcd_proto`) into `directory`."""
    try:
        etcd_proto.compile_proto(directory)
    except etcd_proto.EtcdProtoError as exc:
        raise KvBenchError(str(exc)) from None


class EtcdClient:
    """A `StoreClient` for one route: a channel per endpoint, failing over in route order."""

    def __init__(self, pb: ModuleType, route: list[str]) -> None:
        import grpc

        self._pb = pb
        self._route = route
        self._at = 0
        self._calls: dict[str, tuple[Any, Any, Any]] = {}
        self._grpc = grpc

    def _stubs(self) -> tuple[Any, Any, Any]:
        endpoint = self._route[self._at % len(self._route)]
        stubs = self._calls.get(endpoint)
        if stubs is None:
            channel = self._grpc.aio.insecure_channel(endpoint)
            pb = self._pb
            put = channel.unary_unary(
                "/etcdserverpb.KV/Put",
                request_serializer=pb.PutRequest.SerializeToString,
                response_deserializer=pb.PutResponse.FromString,
            )
            get = channel.unary_unary(
                "/etcdserverpb.KV/Range",
                request_serializer=pb.RangeRequest.SerializeToString,
                response_deserializer=pb.RangeResponse.FromString,
            )
            stubs = self._calls[endpoint] = (channel, put, get)
        return stubs

    async def put(self, key: bytes, value: bytes) -> None:
        _, put, _ = self._stubs()
        try:
            await put(self._pb.PutRequest(key=key, value=value))
        except self._grpc.aio.AioRpcError:
            self._at += 1
            raise

    async def get(self, key: bytes) -> bytes | None:
        _, _, get = self._stubs()
        try:
            reply = await get(self._pb.RangeRequest(key=key, serializable=False))
        except self._grpc.aio.AioRpcError:
            self._at += 1
            raise
        return bytes(reply.kvs[0].value) if reply.kvs else None

    async def close(self) -> None:
        for channel, _, _ in self._calls.values():
            await channel.close()
        self._calls.clear()


async def connect(spec: dict[str, Any], route: list[str]) -> EtcdClient:
    """The generator's entry point (see `tejido.bench.kv_load`)."""
    return EtcdClient(load_proto(str(spec["proto_dir"])), route)


def member_status(pb: ModuleType, endpoint: str, timeout_s: float = 2.0) -> tuple[int, int]:
    """``(member id, leader id)`` as the member at `endpoint` reports them."""
    import grpc

    with grpc.insecure_channel(endpoint) as channel:
        status = channel.unary_unary(
            "/etcdserverpb.Maintenance/Status",
            request_serializer=pb.StatusRequest.SerializeToString,
            response_deserializer=pb.StatusResponse.FromString,
        )
        reply = status(pb.StatusRequest(), timeout=timeout_s)
    return int(reply.header.member_id), int(reply.leader)


class EtcdAdapter:
    """Starts 3 etcd members on loopback; finds and reports the leader."""

    system = ETCD
    module = "tejido.bench.kv_etcd"

    def __init__(self) -> None:
        self.notes: dict[str, object] = {
            "fsync": True,
            "get": "Range with serializable=false (linearizable)",
            "auto_compaction_revisions": _AUTO_COMPACTION_REVISIONS,
        }

    def unavailable(self) -> str | None:
        if shutil.which(ETCD_BINARY) is None:
            return "no etcd binary: as root, apt-get install etcd-server (or make bench-deps)"
        if importlib.util.find_spec("grpc_tools") is None:
            return "grpcio-tools is not installed: pip install 'tejido[bench]'"
        return None

    def start(self) -> Cluster:
        directory = tempfile.TemporaryDirectory(prefix="tejido-bench-etcd-")
        cluster = Cluster(self.system, [], directory)
        try:
            proto_dir = cluster.path / "proto"
            proto_dir.mkdir()
            compile_proto(proto_dir)
            cluster.spec = {"proto_dir": str(proto_dir)}
            self.notes["version"] = _etcd_version()
            ports = free_ports(2 * MEMBERS)
            client = [f"http://127.0.0.1:{p}" for p in ports[:MEMBERS]]
            peer = [f"http://127.0.0.1:{p}" for p in ports[MEMBERS:]]
            initial = ",".join(f"m{i}={peer[i]}" for i in range(MEMBERS))
            for i in range(MEMBERS):
                log = open(cluster.path / f"m{i}.log", "w+b")  # noqa: SIM115 (stop_member)
                process = subprocess.Popen(
                    [
                        ETCD_BINARY, "--name", f"m{i}",
                        "--data-dir", str(cluster.path / f"m{i}"),
                        "--listen-client-urls", client[i],
                        "--advertise-client-urls", client[i],
                        "--listen-peer-urls", peer[i],
                        "--initial-advertise-peer-urls", peer[i],
                        "--initial-cluster", initial,
                        "--initial-cluster-token", "tejido-bench",
                        "--initial-cluster-state", "new",
                        "--auto-compaction-mode", "revision",
                        "--auto-compaction-retention", str(_AUTO_COMPACTION_REVISIONS),
                        "--logger", "zap", "--log-level", "warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
                address = client[i].removeprefix("http://")
                cluster.members.append(Member(f"etcd member m{i}", process, address, log))
            for member in cluster.members:
                wait_for_port(member, _START_S)
            self._wait_for_leader(cluster)
        except BaseException:
            self.stop(cluster)
            raise
        return cluster

    def leader(self, cluster: Cluster) -> int:
        import grpc

        pb = load_proto(str(cluster.spec["proto_dir"]))
        ids: dict[int, int] = {}
        leaders: set[int] = set()
        for i, member in enumerate(cluster.members):
            if member.process.poll() is not None:
                continue
            try:
                me, leader = member_status(pb, member.client_address)
            except grpc.RpcError:
                continue
            ids[me] = i
            if leader:
                leaders.add(leader)
        for leader in leaders:
            if leader in ids:
                return ids[leader]
        raise KvBenchError("no live etcd member is named leader by the others")

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
                        f"etcd elected no leader in {_START_S:g} s:\n{tails}"
                    ) from None
                time.sleep(0.1)  # polling for an election; the members give no other signal

    def stop(self, cluster: Cluster) -> None:
        for member in cluster.members:
            stop_member(member)
        cluster.directory.cleanup()


def _etcd_version() -> str:
    done = subprocess.run(
        [ETCD_BINARY, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    first = done.stdout.strip().splitlines()[:1]
    return first[0].removeprefix("etcd Version: ") if first else "unknown"
