"""The etcd v3 messages the benchmarks send, compiled at run time with grpcio-tools.

No etcd Python client is installed here (the ``etcd3`` package does not build against
this protobuf), so the benchmarks speak etcd's gRPC API directly, calling each method by
its path (``/etcdserverpb.KV/Put``, ``/v3lockpb.Lock/Lock``, ...) with request and reply
messages declared in `PROTO`. Only the fields the benchmarks use are declared, each with
etcd's own field number (etcd-io/etcd ``api/etcdserverpb/rpc.proto``,
``api/mvccpb/kv.proto`` and ``server/etcdserver/api/v3lock/v3lockpb/v3lock.proto``);
protobuf puts field numbers on the wire, never message or package names, so the package
is one of our own and unknown fields in etcd's replies are skipped.

Rules: `compile_proto` writes `PROTO` into a directory and compiles it there; `load_proto`
imports the compiled module from such a directory (in a generator process too: it gets
the directory, not the module); `etcd_messages` does both, once per process (the messages
join protobuf's global descriptor pool, so a second compilation under the same name is
never imported). A failed compilation raises `EtcdProtoError`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

__all__ = ["PROTO", "EtcdProtoError", "compile_proto", "etcd_messages", "load_proto"]

_NAME: Final = "tejido_etcd"
MODULE: Final = f"{_NAME}_pb2"

PROTO: Final = """\
// The part of etcd's v3 API tejido's benchmarks use; field numbers as in etcd's
// api/etcdserverpb/rpc.proto, api/mvccpb/kv.proto and
// server/etcdserver/api/v3lock/v3lockpb/v3lock.proto. Calls name etcd's methods by
// path, and names are not on the wire, so the package is our own.
syntax = "proto3";
package tejido_bench_etcd;

message ResponseHeader {
  uint64 cluster_id = 1;
  uint64 member_id = 2;
  int64 revision = 3;
  uint64 raft_term = 4;
}

message KeyValue {
  bytes key = 1;
  int64 create_revision = 2;
  int64 mod_revision = 3;
  int64 version = 4;
  bytes value = 5;
  int64 lease = 6;
}

// KV
message RangeRequest {
  bytes key = 1;
  bytes range_end = 2;
  int64 limit = 3;
  int64 revision = 4;
  bool serializable = 7;
  bool count_only = 9;
}

message RangeResponse {
  ResponseHeader header = 1;
  repeated KeyValue kvs = 2;
  bool more = 3;
  int64 count = 4;
}

message PutRequest {
  bytes key = 1;
  bytes value = 2;
  int64 lease = 3;
  bool prev_kv = 4;
}

message PutResponse {
  ResponseHeader header = 1;
  KeyValue prev_kv = 2;
}

// Maintenance
message StatusRequest {}

message StatusResponse {
  ResponseHeader header = 1;
  string version = 2;
  int64 dbSize = 3;
  uint64 leader = 4;
  uint64 raftIndex = 5;
  uint64 raftTerm = 6;
}

// Lease
message LeaseGrantRequest {
  int64 TTL = 1;
  int64 ID = 2;
}

message LeaseGrantResponse {
  ResponseHeader header = 1;
  int64 ID = 2;
  int64 TTL = 3;
  string error = 4;
}

message LeaseRevokeRequest {
  int64 ID = 1;
}

message LeaseRevokeResponse {
  ResponseHeader header = 1;
}

// v3lockpb.Lock
message LockRequest {
  bytes name = 1;
  int64 lease = 2;
}

message LockResponse {
  ResponseHeader header = 1;
  bytes key = 2;
}

message UnlockRequest {
  bytes key = 1;
}

message UnlockResponse {
  ResponseHeader header = 1;
}
"""


class EtcdProtoError(Exception):
    """grpcio-tools could not compile `PROTO` (or is not installed)."""


def compile_proto(directory: Path) -> None:
    """Write `PROTO` into `directory` and compile it there (``tejido_etcd_pb2.py``)."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise EtcdProtoError("grpcio-tools is not installed: pip install 'tejido[bench]'") from None

    (directory / f"{_NAME}.proto").write_text(PROTO)
    status = protoc.main(
        ["protoc", f"-I{directory}", f"--python_out={directory}", f"{_NAME}.proto"]
    )
    if status != 0:
        raise EtcdProtoError(f"grpcio-tools could not compile the etcd messages (status {status})")


def load_proto(directory: str | Path) -> ModuleType:
    """The messages compiled into `directory` by `compile_proto` (imported once per process)."""
    loaded = sys.modules.get(MODULE)
    if loaded is not None:
        return loaded
    path = str(directory)
    sys.path.insert(0, path)
    try:
        return importlib.import_module(MODULE)
    finally:
        sys.path.remove(path)


def etcd_messages(directory: Path) -> ModuleType:
    """The messages, compiled into `directory` first unless this process has them already."""
    loaded = sys.modules.get(MODULE)
    if loaded is not None:
        return loaded
    compile_proto(directory)
    return load_proto(directory)
