"""What a caller can get instead of a result.

- `ServiceError`: base class of errors a service *declares* (``errors = (NotFound,)`` on
  the interface, or ``@method(raises=...)``). They cross the wire by name with their
  message and arrive at the caller as the same class.
- `RemoteError`: anything else the implementation raised; it carries the remote type name,
  message and traceback text, never the remote object (nothing is unpickled, ever).
- `RpcError` subclasses for what the runtime decides: `DeadlineExceeded`, `Cancelled`,
  `Unavailable` (no endpoint reachable), `UnknownMethod`, `BadArguments` (the arguments or
  result did not match the interface's annotations), `ProtocolViolation`.
"""

from __future__ import annotations

from tejido.core.errors import TejidoError

__all__ = [
    "BadArguments",
    "Cancelled",
    "DeadlineExceeded",
    "ProtocolViolation",
    "RemoteError",
    "RpcError",
    "ServiceError",
    "Unavailable",
    "UnknownMethod",
]


class RpcError(TejidoError):
    """Base of every error the RPC runtime raises to a caller."""


class ServiceError(Exception):
    """Base of errors a service declares; subclass it and list the subclass on the interface.

    The wire carries the class name and ``str(error)``; the caller gets an instance of the
    same declared class built from that message.
    """


class RemoteError(RpcError):
    """The implementation raised an error the interface does not declare."""

    def __init__(self, remote_type: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type
        self.message = message
        self.traceback = traceback


class DeadlineExceeded(RpcError):
    """The call's deadline passed before a result arrived."""


class Cancelled(RpcError):
    """The call was cancelled (by the caller, or the server is shutting down)."""


class Unavailable(RpcError):
    """No endpoint could take the call (connection refused, lost, or all endpoints down)."""


class UnknownMethod(RpcError):
    """The server does not serve that service or method."""


class BadArguments(RpcError):
    """Arguments or a result did not match the interface's annotations; the message says how."""


class ProtocolViolation(RpcError):
    """The other side broke the RPC wire protocol (garbage, truncated or unexpected frames)."""
