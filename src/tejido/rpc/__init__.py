"""RPC: services declared once as typed interfaces, typed stubs, streaming, gRPC interop."""

from tejido.rpc.errors import (
    BadArguments,
    Cancelled,
    DeadlineExceeded,
    ProtocolViolation,
    RemoteError,
    RpcError,
    ServiceError,
    Unavailable,
    UnknownMethod,
)
from tejido.rpc.service import MethodSpec, ServiceSpec, describe_service, method, service

__all__ = [
    "BadArguments",
    "Cancelled",
    "DeadlineExceeded",
    "MethodSpec",
    "ProtocolViolation",
    "RemoteError",
    "RpcError",
    "ServiceError",
    "ServiceSpec",
    "Unavailable",
    "UnknownMethod",
    "describe_service",
    "method",
    "service",
]
