"""RPC: services declared once as typed interfaces, typed stubs, streaming, gRPC interop.

Declare an interface with `service`, serve implementations with `serve`, call them through
the typed stub `connect` returns (or the one `connect_blocking` returns, without an event
loop). See docs/rpc.md for the guide and each module's docstring for its rules.
"""

from tejido.rpc.blocking import Blocking, connect_blocking
from tejido.rpc.channel import ServerStream
from tejido.rpc.client import (
    Client,
    ClientCall,
    ClientInterceptor,
    RetryPolicy,
    client_of,
    close,
    connect,
)
from tejido.rpc.context import CallContext, Peer, call_options, current_call
from tejido.rpc.errors import (
    BadArguments,
    Cancelled,
    DeadlineExceeded,
    PermissionDenied,
    ProtocolViolation,
    RemoteError,
    RpcError,
    ServiceError,
    Unavailable,
    UnknownMethod,
)
from tejido.rpc.health import Health, ServingStatus
from tejido.rpc.loop import install, new_event_loop, run
from tejido.rpc.server import Server, ServerInterceptor, serve
from tejido.rpc.service import MethodSpec, ServiceSpec, describe_service, method, service

__all__ = [
    # declaring
    "service",
    "method",
    "describe_service",
    "ServiceSpec",
    "MethodSpec",
    # serving
    "serve",
    "Server",
    "ServerInterceptor",
    "CallContext",
    "Peer",
    "current_call",
    "Health",
    "ServingStatus",
    # calling
    "connect",
    "connect_blocking",
    "Blocking",
    "Client",
    "ClientCall",
    "ClientInterceptor",
    "RetryPolicy",
    "ServerStream",
    "call_options",
    "client_of",
    "close",
    # loops
    "run",
    "new_event_loop",
    "install",
    # errors
    "RpcError",
    "ServiceError",
    "RemoteError",
    "DeadlineExceeded",
    "Cancelled",
    "Unavailable",
    "UnknownMethod",
    "BadArguments",
    "PermissionDenied",
    "ProtocolViolation",
]
