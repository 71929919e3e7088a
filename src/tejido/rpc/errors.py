"""What a caller can get instead of a result.

- `ServiceError`: base class of errors a service *declares* (``errors = (NotFound,)`` on
  the interface, or ``@method(raises=...)``). They cross the wire by name with their
  message and arrive at the caller as the same class.
- `RemoteError`: anything else the implementation raised; it carries the remote type name,
  message and traceback text, never the remote object (nothing is unpickled, ever).
- `RpcError` subclasses for what the runtime decides: `DeadlineExceeded`, `Cancelled`,
  `Unavailable` (no endpoint reachable), `UnknownMethod`, `BadArguments` (the arguments or
  result did not match the interface's annotations), `ProtocolViolation`,
  `PermissionDenied` (a server interceptor refused the call).

`describe_error` and `error_from_wire` translate between an exception and the four strings
a `Failure` frame carries (code, type, message, traceback), in both directions; the codes
follow the spirit of gRPC's status codes
(https://grpc.github.io/grpc/core/md_doc_statuscodes.html) with fewer of them.
"""

from __future__ import annotations

import traceback as traceback_module
from collections.abc import Mapping

from tejido.core.errors import TejidoError

__all__ = [
    "BadArguments",
    "Cancelled",
    "DeadlineExceeded",
    "PermissionDenied",
    "ProtocolViolation",
    "RemoteError",
    "RpcError",
    "ServiceError",
    "Unavailable",
    "UnknownMethod",
    "describe_error",
    "error_from_wire",
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


class PermissionDenied(RpcError):
    """A server interceptor refused the call (authentication or authorisation failed)."""


_CODES: dict[type[RpcError], str] = {
    DeadlineExceeded: "deadline",
    Cancelled: "cancelled",
    Unavailable: "unavailable",
    UnknownMethod: "unknown",
    BadArguments: "bad_arguments",
    ProtocolViolation: "protocol",
    PermissionDenied: "denied",
}
_BY_CODE: dict[str, type[RpcError]] = {code: cls for cls, code in _CODES.items()}


def describe_error(
    exc: BaseException, declared: Mapping[str, type[ServiceError]]
) -> tuple[str, str, str, str]:
    """(code, type, message, traceback) for a `Failure` frame carrying `exc`.

    A declared `ServiceError` (or a subclass of one) travels as ``service`` with the
    declared class's name; the runtime's own errors keep their meaning (a nested call's
    `DeadlineExceeded` stays one); anything else is ``remote`` with its traceback text.
    """
    if isinstance(exc, ServiceError):
        for klass in type(exc).__mro__:
            if declared.get(klass.__name__) is klass:
                return "service", klass.__name__, str(exc), ""
    if isinstance(exc, RemoteError):
        return "remote", exc.remote_type, exc.message, exc.traceback
    for klass in type(exc).__mro__:
        code = _CODES.get(klass)
        if code is not None:
            return code, klass.__name__, str(exc), ""
    text = "".join(traceback_module.format_exception(exc))
    return "remote", type(exc).__qualname__, str(exc), text


def error_from_wire(
    code: str,
    type_name: str,
    message: str,
    traceback: str,
    declared: Mapping[str, type[ServiceError]],
) -> Exception:
    """The exception a caller gets for a `Failure` frame."""
    if code == "service":
        declared_class = declared.get(type_name)
        if declared_class is not None:
            return declared_class(message)
        return RemoteError(type_name, message, traceback)
    runtime_class = _BY_CODE.get(code)
    if runtime_class is not None:
        return runtime_class(message)
    return RemoteError(type_name, message, traceback)
