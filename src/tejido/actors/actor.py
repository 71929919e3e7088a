"""The `Actor` base class: private state, one message at a time, hooks, children, timers.

Subclass ``Actor[M]`` where ``M`` is the type of the messages it accepts (a union of
msgspec Structs, dataclasses or scalars, so the same actor can later be reached from
another process), and implement ``async def receive(self, message)``. Design rules:

1. **The reply is the return value.** For an ask, what ``receive`` returns is the reply;
   for a tell it is ignored. One way to answer, no reply-to plumbing; an actor that needs
   another actor's answer first simply awaits ``other.ask(...)`` inside ``receive`` (its
   own mailbox waits meanwhile, which keeps the one-at-a-time rule).
2. **State is private.** Nothing outside holds the instance; everyone holds an
   `ActorRef`. The constructor runs at spawn time (and again on each restart) and may not
   use ``self.ref``, ``self.spawn`` and the like: do that in ``started``.
3. **Hooks** (all ``async``, all optional): ``started`` before the first message;
   ``stopping`` when a stop or restart begins (children still alive); ``stopped`` after
   the children stopped; ``restarted(reason)`` on the fresh instance after a restart
   (default: calls ``started``).
4. **Unknown messages**: ``return self.unhandled(message)`` records a dead letter and fails
   an ask with `UnhandledMessage`; it is not a failure, so the supervisor is not involved.
5. **Eager start**: a message from another node that finds the actor idle starts
   ``receive`` at once, outside any task, up to its first suspension (``eager``; see
   `tejido.actors.cell`, rule 6); ``eager = False`` keeps it in the actor's own task.
6. Inside an actor use ``self.stop()`` (non-blocking: the actor stops after the current
   message); awaiting ``self.ref.stop()`` from inside would wait for itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeVar

from tejido.actors.errors import UnhandledMessage
from tejido.actors.mailbox import MailboxConfig
from tejido.actors.messages import TerminationCause
from tejido.actors.ref import ActorRef
from tejido.actors.supervision import SupervisorStrategy, one_for_one
from tejido.actors.timers import Timers

if TYPE_CHECKING:
    from tejido.actors.cell import ActorCell
    from tejido.actors.routers import Routing
    from tejido.actors.system import ActorSystem

__all__ = ["Actor"]

M = TypeVar("M")
C = TypeVar("C")

#: Restart on any failure, at most 10 times a minute, then stop (Akka's default rule).
DEFAULT_STRATEGY = one_for_one()


class Actor(Generic[M]):
    """Base class of actors; see the module docstring."""

    #: How this actor supervises its children (override as a class attribute).
    supervisor_strategy: ClassVar[SupervisorStrategy] = DEFAULT_STRATEGY
    #: The mailbox of instances of this class (None: the system's default).
    mailbox: ClassVar[MailboxConfig | None] = None
    #: Start ``receive`` on the caller's stack when a message from another node finds
    #: the actor idle (`tejido.actors.cell`, rule 6). Set False when ``receive`` needs
    #: its own task (``asyncio.current_task()``) before its first ``await``.
    eager: ClassVar[bool] = True

    _cell: ActorCell

    async def receive(self, message: M) -> Any:
        """Handle one message; for an ask, the return value is the reply."""
        return self.unhandled(message)

    # ------------------------------------------------------------------ hooks
    async def started(self) -> None:
        """Runs before the first message (and, by default, after a restart)."""

    async def stopping(self) -> None:
        """Runs when a stop or a restart begins, before the children are stopped."""

    async def stopped(self) -> None:
        """Runs once the children have stopped; the last thing this instance does."""

    async def restarted(self, reason: Exception) -> None:
        """Runs on the fresh instance after a restart caused by `reason`."""
        await self.started()

    # ------------------------------------------------------------------ context
    @property
    def ref(self) -> ActorRef[M]:
        """This actor's own reference."""
        return self._cell.ref

    @property
    def system(self) -> ActorSystem:
        return self._cell.system

    @property
    def parent(self) -> ActorRef[Any] | None:
        """The parent's reference (None for the guardian)."""
        parent = self._cell.parent
        return None if parent is None else parent.ref

    @property
    def children(self) -> Mapping[str, ActorRef[Any]]:
        """The live children by name."""
        return {name: cell.ref for name, cell in (self._cell.children or {}).items()}

    @property
    def timers(self) -> Timers:
        return self._cell.timers

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"tejido.actors.{type(self).__name__}")

    def spawn(
        self,
        actor_class: type[Actor[C]],
        *args: Any,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        **kwargs: Any,
    ) -> ActorRef[C]:
        """Create a child ``actor_class(*args, **kwargs)`` supervised by this actor."""
        return self._cell.spawn_child(actor_class, args, kwargs, name, mailbox)

    def spawn_pool(
        self,
        routing: Routing[C],
        size: int,
        actor_class: type[Actor[C]],
        *args: Any,
        name: str | None = None,
        strategy: SupervisorStrategy | None = None,
        **kwargs: Any,
    ) -> ActorRef[C]:
        """A router child over `size` workers (see `tejido.actors.routers`)."""
        from tejido.actors.routers import spawn_pool

        return spawn_pool(self._cell, routing, size, actor_class, args, kwargs, name, strategy)

    def watch(self, ref: ActorRef[Any]) -> None:
        """Receive ``Terminated(ref, cause)`` when `ref` stops (at once if it has)."""
        cell = self._cell
        if cell.watching is None:
            cell.watching = {}
        if ref not in cell.watching:
            cell.watching[ref] = None
            ref._watch(cell.ref)

    def unwatch(self, ref: ActorRef[Any]) -> None:
        """Stop watching `ref` (a `Terminated` already queued is still delivered)."""
        if self._cell.watching:
            self._cell.watching.pop(ref, None)
        ref._unwatch(self._cell.ref)

    def stash(self) -> None:
        """Put the message being handled aside (an ask stays unanswered until it is
        handled again after `unstash_all`)."""
        self._cell.stash_current()

    def unstash_all(self) -> None:
        """Put every stashed message back at the front of the mailbox, in stash order."""
        self._cell.unstash_all()

    def stop(self, *, drain: bool = False) -> None:
        """Stop this actor after the current message (non-blocking; see rule 5)."""
        self._cell.request_stop(drain, TerminationCause.STOPPED)

    def _child_terminated(self, child: ActorRef[Any]) -> None:
        """Called when a child has stopped, before watchers hear of it (for routers)."""

    def unhandled(self, message: object) -> NoReturn:
        """Declare `message` unhandled (rule 4)."""
        raise UnhandledMessage(str(self._cell.path), message)
