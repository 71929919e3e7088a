"""Errors say who is to blame.

- `LocalProtocolError`: the caller misused an API (a bug in the code that called us).
- `RemoteProtocolError`: a peer sent something that breaks the protocol; drop it or close.
- `InvariantViolation`: one of tejido's own safety properties broke; a bug in tejido.
  Raised explicitly (never `assert`, which `python -O` strips).
- `BadInput`: a user handed us something malformed (a file, an option); the message names it.
"""

from __future__ import annotations

__all__ = [
    "BadInput",
    "InvariantViolation",
    "LocalProtocolError",
    "RemoteProtocolError",
    "TejidoError",
]


class TejidoError(Exception):
    """Base class of every error tejido raises on purpose."""


class LocalProtocolError(TejidoError):
    """The caller used an API in a way its contract forbids."""


class RemoteProtocolError(TejidoError):
    """A peer sent a message that breaks the protocol."""


class InvariantViolation(TejidoError):
    """A safety property that must always hold did not.

    `name` is a short identifier of the property (e.g. ``election-safety``) so that a
    simulator report can say which property broke.
    """

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


class BadInput(TejidoError):
    """Input from a user (a file, an option, a request) is malformed; the message says how."""
