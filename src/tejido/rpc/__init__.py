"""RPC: services declared once as typed interfaces, typed stubs, streaming, gRPC interop.

Declare an interface with `service`, serve implementations with `serve`, call them through
the typed stub `connect` returns (or the one `connect_blocking` returns, without an event
loop). See docs/rpc.md for the guide and each module's docstring for its rules.

The names below load on first use (module ``__getattr__``, PEP 562), so that importing
one submodule does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported at once: `service` is also the name of a submodule, which would otherwise
# shadow the function as soon as anything imported tejido.rpc.service.
from tejido.rpc.service import MethodSpec, ServiceSpec, describe_service, method, service

if TYPE_CHECKING:
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

_WHERE = {
    "BadArguments": "tejido.rpc.errors",
    "Blocking": "tejido.rpc.blocking",
    "CallContext": "tejido.rpc.context",
    "Cancelled": "tejido.rpc.errors",
    "Client": "tejido.rpc.client",
    "ClientCall": "tejido.rpc.client",
    "ClientInterceptor": "tejido.rpc.client",
    "DeadlineExceeded": "tejido.rpc.errors",
    "Health": "tejido.rpc.health",
    "Peer": "tejido.rpc.context",
    "PermissionDenied": "tejido.rpc.errors",
    "ProtocolViolation": "tejido.rpc.errors",
    "RemoteError": "tejido.rpc.errors",
    "RetryPolicy": "tejido.rpc.client",
    "RpcError": "tejido.rpc.errors",
    "Server": "tejido.rpc.server",
    "ServerInterceptor": "tejido.rpc.server",
    "ServerStream": "tejido.rpc.channel",
    "ServiceError": "tejido.rpc.errors",
    "ServingStatus": "tejido.rpc.health",
    "Unavailable": "tejido.rpc.errors",
    "UnknownMethod": "tejido.rpc.errors",
    "call_options": "tejido.rpc.context",
    "client_of": "tejido.rpc.client",
    "close": "tejido.rpc.client",
    "connect": "tejido.rpc.client",
    "connect_blocking": "tejido.rpc.blocking",
    "current_call": "tejido.rpc.context",
    "install": "tejido.rpc.loop",
    "new_event_loop": "tejido.rpc.loop",
    "run": "tejido.rpc.loop",
    "serve": "tejido.rpc.server",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tejido.rpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
