"""Actor references: the only way to reach an actor, whether it is local or (later) remote.

`ActorRef[M]` is generic over the messages the actor accepts, so a type checker flags
``ref.tell(wrong)``. It is contravariant in ``M``: a reference to an actor accepting
``Add | Get`` may be passed where an ``ActorRef[Add]`` is expected, never the reverse.

The operations every implementation provides (a local reference delivers into the actor's
mailbox without encoding anything; a remote one, next, will send over `tejido.net`):

- ``tell(message)``: fire and forget; returns at once, never awaits. At most once: a
  message to a stopped actor, or dropped by a full bounded mailbox, is a dead letter.
- ``await ask(message, timeout=5.0)``: the reply is what the actor's ``receive`` returned
  for that message; `AskTimeout` when none comes in time; ``expect=T`` checks the reply's
  type (`UnexpectedReply`) and types the result as ``T``.
- ``await stop(drain=True)``: stop the actor and wait until it has stopped.
- ``_watch`` / ``_unwatch``: the hooks `Actor.watch` uses; the watched actor's side sends
  `Terminated` to its watchers. A remote reference also sends `Terminated` (with cause
  ``NODE_LOST``) when the node is lost, so watchers need not care where the actor lives.
- ``await ref``: waits until the actor exists and returns the reference: at once for a
  local actor; for one spawned on another node, until that node confirmed the spawn
  (raising its typed error if it failed), so ``await system.spawn(B, node="b")`` works.

A reference is identified by its `ActorPath` (system, path elements, incarnation ``uid``);
two references are equal when their paths are. Paths are msgspec Structs so they can cross
processes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import msgspec

from tejido.actors.errors import UnexpectedReply

if TYPE_CHECKING:
    from tejido.actors.messages import Terminated

__all__ = ["DEFAULT_ASK_TIMEOUT_S", "ActorPath", "ActorRef"]

M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")

#: The timeout of an ask that names none.
DEFAULT_ASK_TIMEOUT_S = 5.0


class ActorPath(msgspec.Struct, frozen=True, order=True):
    """Where an actor lives: ``tejido://system/user/parent/child#uid``.

    `uid` tells incarnations apart: an actor spawned again under a stopped actor's name is
    a different actor, and a reference to the old one stays dead. `node` is empty for a
    local system and will name the node (``host:port``) for remote references.
    """

    system: str
    elements: tuple[str, ...]
    uid: int
    node: str = ""

    @property
    def name(self) -> str:
        return self.elements[-1] if self.elements else ""

    def child(self, name: str, uid: int) -> ActorPath:
        return ActorPath(self.system, (*self.elements, name), uid, self.node)

    def __str__(self) -> str:
        at = f"@{self.node}" if self.node else ""
        return f"tejido://{self.system}{at}/{'/'.join(self.elements)}"


class ActorRef(ABC, Generic[M_contra]):
    """A handle to an actor that accepts messages of type ``M`` (see the module docstring)."""

    __slots__ = ()

    @property
    @abstractmethod
    def path(self) -> ActorPath:
        """The actor's path."""

    @abstractmethod
    def tell(self, message: M_contra) -> None:
        """Send `message` and return at once (at most once; see the module docstring)."""

    @abstractmethod
    async def _ask(self, message: M_contra, timeout_s: float) -> Any:
        """Deliver `message` as an ask and return the reply (see `ask`)."""

    @overload
    async def ask(self, message: M_contra, *, timeout: float = ...) -> Any: ...

    @overload
    async def ask(self, message: M_contra, *, timeout: float = ..., expect: type[R]) -> R: ...

    async def ask(
        self,
        message: M_contra,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT_S,
        expect: type[Any] | None = None,
    ) -> Any:
        """Send `message` and wait up to `timeout` seconds for the reply.

        Raises `AskTimeout`, `ActorStopped`, `MailboxFull`, `ActorFailed` (the actor raised
        handling it), `UnhandledMessage`, or `UnexpectedReply` when ``expect`` is given and
        the reply is not an instance of it.
        """
        reply = await self._ask(message, timeout)
        if expect is not None and not isinstance(reply, expect):
            raise UnexpectedReply(str(self.path), expect, reply)
        return reply

    @abstractmethod
    async def stop(self, *, drain: bool = True) -> None:
        """Stop the actor and wait until it has stopped.

        ``drain=True`` lets it process what is already queued (new messages are dead
        letters from now on); ``drain=False`` turns the queue into dead letters (asks in it
        fail with `ActorStopped`) after the message in hand.
        """

    @abstractmethod
    def _watch(self, watcher: ActorRef[Terminated]) -> None:
        """Send `Terminated` to `watcher` when this actor stops (at once if it has)."""

    @abstractmethod
    def _unwatch(self, watcher: ActorRef[Terminated]) -> None:
        """Forget `watcher` (no `Terminated` will be sent to it)."""

    def __await__(self) -> Generator[Any, None, ActorRef[M_contra]]:
        """``await ref`` returns the reference once the actor exists (see the module
        docstring); a local actor exists as soon as `spawn` returned."""
        yield from ()  # a generator that finishes at once
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}#{self.path.uid}>"
