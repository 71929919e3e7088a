"""The errors the actor system raises on purpose, each naming what went wrong.

All derive from `ActorError` (a `tejido.core.errors.TejidoError`). Who is to blame:

- the caller misused the API: `InvalidActorName`, `ActorNameTaken`, `WrongThread`;
- the recipient could not take the message: `ActorStopped` (it is gone or stopping),
  `MailboxFull` (a bounded mailbox with the ``FAIL`` policy, or any ask into a full one);
- the ask itself: `AskTimeout` (no reply in time; also a `TimeoutError`), `ActorFailed`
  (the actor raised while handling the asked message; the cause is attached),
  `UnhandledMessage` (the actor declared it does not handle the message),
  `UnexpectedReply` (the reply is not of the type the asker said it expects);
- `SpawnFailed`: the actor's constructor raised at spawn time.
- remote actors: `NodeLost` (an `ActorStopped`: the actor's node left or was lost while
  a request to it was pending), `NotSerializable` (a message, argument or reply whose type
  is not registered, or that does not encode/decode), `RemoteError` (what a remote actor
  raised, when it is not a builtin exception that can be rebuilt as itself).
"""

from __future__ import annotations

from tejido.core.errors import TejidoError

__all__ = [
    "ActorError",
    "ActorFailed",
    "ActorNameTaken",
    "ActorStopped",
    "AskTimeout",
    "InvalidActorName",
    "MailboxFull",
    "NodeLost",
    "NotSerializable",
    "RemoteError",
    "SpawnFailed",
    "UnexpectedReply",
    "UnhandledMessage",
    "WrongThread",
]


class ActorError(TejidoError):
    """Base class of the actor system's errors."""


class AskTimeout(ActorError, TimeoutError):
    """No reply to an ask arrived within its timeout."""

    def __init__(self, path: str, message: object, timeout_s: float) -> None:
        super().__init__(f"no reply from {path} to {type(message).__name__} within {timeout_s:g} s")
        self.path = path
        self.message = message
        self.timeout_s = timeout_s


class ActorStopped(ActorError):
    """The recipient has stopped (or is stopping and rejects new messages)."""

    def __init__(self, path: str, message: object) -> None:
        super().__init__(f"{path} is stopped; {type(message).__name__} was not delivered")
        self.path = path
        self.message = message


class MailboxFull(ActorError):
    """A bounded mailbox had no room for the message."""

    def __init__(self, path: str, capacity: int, message: object) -> None:
        super().__init__(
            f"mailbox of {path} is full ({capacity} messages); "
            f"{type(message).__name__} was not delivered"
        )
        self.path = path
        self.capacity = capacity
        self.message = message


class ActorFailed(ActorError):
    """The actor raised while handling an asked message; `cause` is what it raised."""

    def __init__(self, path: str, message: object, cause: BaseException) -> None:
        super().__init__(
            f"{path} failed handling {type(message).__name__}: {type(cause).__name__}: {cause}"
        )
        self.path = path
        self.message = message
        self.cause = cause


class UnhandledMessage(ActorError):
    """The actor does not handle this kind of message (raised by `Actor.unhandled`)."""

    def __init__(self, path: str, message: object) -> None:
        super().__init__(f"{path} does not handle {type(message).__name__}: {message!r}")
        self.path = path
        self.message = message


class UnexpectedReply(ActorError):
    """An ask's reply is not an instance of the type passed as ``expect``."""

    def __init__(self, path: str, expected: type, reply: object) -> None:
        super().__init__(
            f"{path} replied {type(reply).__name__} ({reply!r}), expected {expected.__name__}"
        )
        self.path = path
        self.expected = expected
        self.reply = reply


class InvalidActorName(ActorError, ValueError):
    """An actor name is empty, contains ``/`` or starts with the reserved ``$``."""


class ActorNameTaken(ActorError, ValueError):
    """A sibling with this name is alive."""


class SpawnFailed(ActorError):
    """The actor's constructor raised when it was spawned."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"spawning {path} failed: {type(cause).__name__}: {cause}")
        self.path = path
        self.cause = cause


class WrongThread(ActorError):
    """An event-loop-only operation was called from another thread (use the blocking facade)."""


class NodeLost(ActorStopped):
    """The node hosting the actor left or was lost before the request was answered."""

    def __init__(self, node: str, message: object, path: str | None = None) -> None:
        super().__init__(path or f"node {node}", message)
        self.args = (
            f"node {node} is not (or no longer) a cluster member; "
            f"{_describe(message)} to {path or node} got no answer",
        )
        self.node = node


class NotSerializable(ActorError, TypeError):
    """A value cannot cross the wire: its type is not registered, or it does not encode."""


class RemoteError(ActorError):
    """An exception raised on another node, named by its type (`remote_type`)."""

    def __init__(self, remote_type: str, text: str) -> None:
        super().__init__(f"{remote_type}: {text}")
        self.remote_type = remote_type
        self.text = text


def _describe(message: object) -> str:
    return message if isinstance(message, str) else type(message).__name__
