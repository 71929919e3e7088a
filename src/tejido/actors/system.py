"""`ActorSystem`: the root of a tree of local actors on one asyncio event loop.

``async with ActorSystem("shop") as system:`` binds the system to the running loop;
``system.spawn(Cls, *args, name=...)`` creates a top-level actor (a child of the
guardian, path ``tejido://shop/user/NAME``) and returns its typed `ActorRef`. Leaving the
block stops every actor, draining their mailboxes when the block ended normally.

What the system keeps:

- ``dead_letters``: the most recent undelivered messages (`DeadLetter`), ``dead_letter_count``
  all of them; each is logged at debug level on the ``tejido.actors`` logger.
- ``decisions``: the most recent supervision decisions ``(path, error, directive,
  delay_s)``, for tests and diagnostics.
- ``lookup(path)``: the live actor at a path (``"/user/a/b"``), the seed of the cluster
  registry to come.
- ``rng``: a `random.Random` (seeded with ``seed``) for backoff jitter and random routing,
  so a test can make them reproducible.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from typing import Any, TypeVar

from tejido.actors.actor import Actor
from tejido.actors.cell import ActorCell
from tejido.actors.errors import ActorStopped, WrongThread
from tejido.actors.local import AskDeadlines, fail_ask, message_of
from tejido.actors.mailbox import UNBOUNDED, MailboxConfig
from tejido.actors.messages import DeadLetter, DeadLetterReason, TerminationCause
from tejido.actors.ref import ActorPath, ActorRef
from tejido.actors.routers import Routing, spawn_pool
from tejido.actors.supervision import Directive, SupervisorStrategy, one_for_one

__all__ = ["ActorSystem", "Decision"]

log = logging.getLogger("tejido.actors")
M = TypeVar("M")

Decision = tuple[ActorPath, Exception, Directive, float]


class _Guardian(Actor[Any]):
    """The parent of top-level actors; it never receives messages."""

    def __init__(self, strategy: SupervisorStrategy) -> None:
        self.strategy = strategy

    @property
    def supervisor_strategy(self) -> SupervisorStrategy:  # type: ignore[override]
        return self.strategy


class ActorSystem:
    """A tree of actors on one event loop (see the module docstring)."""

    def __init__(
        self,
        name: str = "tejido",
        *,
        strategy: SupervisorStrategy | None = None,
        mailbox: MailboxConfig = UNBOUNDED,
        dead_letter_capacity: int = 1000,
        seed: int | None = None,
    ) -> None:
        if not name or "/" in name or "@" in name:
            raise ValueError(f"invalid actor system name {name!r}")
        self.name = name
        self.strategy = strategy or one_for_one()
        self.default_mailbox = mailbox
        self.dead_letters: deque[DeadLetter] = deque(maxlen=dead_letter_capacity)
        self.dead_letter_count = 0
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.rng = random.Random(seed)
        self.registry: dict[tuple[str, ...], ActorCell] = {}
        self._uid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread_id = -1
        self._guardian: ActorCell | None = None

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> ActorSystem:
        """Bind to the running loop (``async with`` does this)."""
        if self._loop is not None:
            raise RuntimeError(f"actor system {self.name!r} is already started")
        self._loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.ask_deadlines = AskDeadlines(self._loop)
        root = ActorPath(self.name, ("user",), 0)
        guardian = ActorCell(self, None, root, lambda: _Guardian(self.strategy), _Guardian(
            self.strategy), UNBOUNDED)  # fmt: skip
        self._guardian = guardian
        guardian.start()
        return self

    async def __aenter__(self) -> ActorSystem:
        return await self.start()

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        await self.shutdown(drain=exc_type is None)

    async def shutdown(self, *, drain: bool = True) -> None:
        """Stop every actor (children before parents) and wait for them."""
        guardian = self._guardian
        if guardian is None:
            return
        await guardian.request_stop(drain, TerminationCause.STOPPED)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(
                f"actor system {self.name!r} is not started: use 'async with ActorSystem(...)'"
            )
        return self._loop

    @property
    def guardian(self) -> ActorCell:
        if self._guardian is None:
            raise RuntimeError(
                f"actor system {self.name!r} is not started: use 'async with ActorSystem(...)'"
            )
        return self._guardian

    # ------------------------------------------------------------------ actors
    def spawn(
        self,
        actor_class: type[Actor[M]],
        *args: Any,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        **kwargs: Any,
    ) -> ActorRef[M]:
        """Create a top-level actor ``actor_class(*args, **kwargs)``."""
        self._check_thread("spawn")
        return self.guardian.spawn_child(actor_class, args, kwargs, name, mailbox)

    def spawn_pool(
        self,
        routing: Routing[M],
        size: int,
        actor_class: type[Actor[M]],
        *args: Any,
        name: str | None = None,
        strategy: SupervisorStrategy | None = None,
        **kwargs: Any,
    ) -> ActorRef[M]:
        """A top-level router over `size` workers (see `tejido.actors.routers`)."""
        self._check_thread("spawn_pool")
        return spawn_pool(self.guardian, routing, size, actor_class, args, kwargs, name, strategy)

    def lookup(self, path: str | ActorPath) -> ActorRef[Any] | None:
        """The live actor at `path` (``"/user/a/b"`` or an `ActorPath`), or None."""
        if isinstance(path, ActorPath):
            cell = self.registry.get(path.elements)
            return cell.ref if cell is not None and cell.path.uid == path.uid else None
        elements = tuple(part for part in path.strip("/").split("/") if part)
        cell = self.registry.get(elements)
        return None if cell is None else cell.ref

    def next_uid(self) -> int:
        self._uid += 1
        return self._uid

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self.thread_id:
            raise WrongThread(
                f"{what} on actor system {self.name!r} from another thread: use "
                "tejido.actors.BlockingActorSystem or the system's own loop"
            )

    # ------------------------------------------------------------------ bookkeeping
    def dead_letter(self, item: object, recipient: ActorPath, reason: DeadLetterReason) -> None:
        """Record an undelivered mailbox item; an ask in it fails at once."""
        message = message_of(item)
        fail_ask(item, ActorStopped(str(recipient), message))  # no-op if already failed
        self.dead_letter_count += 1
        self.dead_letters.append(DeadLetter(message, recipient, reason))
        log.debug("dead letter to %s (%s): %r", recipient, reason.value, message)

    def record_decision(
        self, path: ActorPath, error: Exception, directive: Directive, delay_s: float
    ) -> None:
        self.decisions.append((path, error, directive, delay_s))
