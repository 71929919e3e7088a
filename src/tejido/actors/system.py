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

A system given a node name (``ActorSystem("shop", node="a", listen="127.0.0.1:0",
seeds=[...])``, or ``cluster=ClusterConfig(...)``) is also a cluster node
(`tejido.actors.cluster`, `tejido.actors.remote`): ``system.cluster`` is its membership
view, ``system.types`` the types and behaviours that may cross the wire,
``spawn(..., node="b")`` spawns on another node, ``await find(name)`` looks a named actor
up across the cluster, and paths carry the node name (``tejido://shop@a/user/x``). The
cluster id in the connection handshake is the system's name: nodes of one cluster share it.
Shutting down stops the local actors first (remote watchers hear `Terminated`), then
leaves the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tejido.actors.actor import Actor
from tejido.actors.cell import ActorCell
from tejido.actors.cluster import Cluster, ClusterConfig, Delivery
from tejido.actors.errors import ActorStopped, WrongThread
from tejido.actors.local import AskDeadlines, fail_ask, message_of
from tejido.actors.mailbox import UNBOUNDED, MailboxConfig
from tejido.actors.messages import DeadLetter, DeadLetterReason, TerminationCause
from tejido.actors.ref import ActorPath, ActorRef
from tejido.actors.remote import Remoting, TypeRegistry
from tejido.actors.routers import Routing, spawn_pool
from tejido.actors.supervision import Directive, SupervisorStrategy, one_for_one

if TYPE_CHECKING:
    from tejido.actors.virtual import Grain, GrainRef, VirtualActors
    from tejido.net.tls import TLSConfig

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
        node: str | None = None,
        listen: str = "127.0.0.1:0",
        seeds: Sequence[str] = (),
        tls: TLSConfig | None = None,
        delivery: Delivery = Delivery.AT_MOST_ONCE,
        cluster: ClusterConfig | None = None,
        registry: TypeRegistry | None = None,
    ) -> None:
        if not name or "/" in name or "@" in name:
            raise ValueError(f"invalid actor system name {name!r}")
        if cluster is None and node is not None:
            cluster = ClusterConfig(
                node=node, listen=listen, seeds=tuple(seeds), tls=tls, delivery=delivery
            )
        elif cluster is not None and node is not None and node != cluster.node:
            raise ValueError(f"node {node!r} differs from the cluster config's {cluster.node!r}")
        self.cluster_config = cluster
        #: the message types and behaviours that may cross the wire (see `TypeRegistry`)
        self.types = registry or TypeRegistry()
        self.remoting: Remoting | None = None
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
        #: an actor's receive is being run eagerly (`tejido.actors.cell`, rule 6)
        self.eager_busy = False
        self._guardian: ActorCell | None = None
        #: the virtual actors' runtime started on this system (`tejido.actors.virtual`)
        self.grains: VirtualActors | None = None

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> ActorSystem:
        """Bind to the running loop (``async with`` does this)."""
        if self._loop is not None:
            raise RuntimeError(f"actor system {self.name!r} is already started")
        self._loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.ask_deadlines = AskDeadlines(self._loop)
        node = self.cluster_config.node if self.cluster_config is not None else ""
        root = ActorPath(self.name, ("user",), 0, node)
        guardian = ActorCell(self, None, root, lambda: _Guardian(self.strategy), _Guardian(
            self.strategy), UNBOUNDED)  # fmt: skip
        self._guardian = guardian
        guardian.start()
        if self.cluster_config is not None:
            self.remoting = Remoting(self, self.cluster_config, self.types)
            try:
                await self.remoting.start()
            except BaseException:
                await self.remoting.cluster.close()
                await guardian.request_stop(False, TerminationCause.STOPPED)
                raise
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
        if self.remoting is not None:
            await self.remoting.leave()

    @property
    def node(self) -> str:
        """This node's name ("" for a system that is not a cluster node)."""
        return self.cluster_config.node if self.cluster_config is not None else ""

    @property
    def cluster(self) -> Cluster:
        """The membership view (`tejido.actors.cluster.Cluster`) of a clustered system."""
        return self._remoting("cluster").cluster

    def _remoting(self, what: str) -> Remoting:
        if self.remoting is None:
            raise RuntimeError(
                f"{what}: actor system {self.name!r} is not a cluster node (give it node=... "
                "and start it)"
            )
        return self.remoting

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
        node: str | None = None,
        **kwargs: Any,
    ) -> ActorRef[M]:
        """Create a top-level actor ``actor_class(*args, **kwargs)``.

        With ``node`` naming another cluster member, the actor is spawned there (a
        registered behaviour, positional arguments of registered types; see
        `tejido.actors.remote`, rule 4): the reference is returned at once, and
        ``await``-ing it waits for the spawn to be confirmed.
        """
        self._check_thread("spawn")
        if node is not None and node != self.node:
            if kwargs or mailbox is not None:
                raise ValueError("a remote spawn takes positional arguments only (no mailbox)")
            return self._remoting("spawn").spawn(node, actor_class, args, name)
        return self.guardian.spawn_child(actor_class, args, kwargs, name, mailbox)

    async def find(self, name: str, *, timeout: float = 2.0) -> ActorRef[Any] | None:
        """The live actor named `name` (``"counter"`` is ``/user/counter``, or a full
        path) on this node or, for a cluster node, on any up member; None if none."""
        if self.remoting is None:
            return self.lookup(name if "/" in name.strip("/") else f"/user/{name}")
        return await self.remoting.find(name, timeout)

    def grain(self, grain_class: type[Grain[M, Any]], key: str) -> GrainRef[M]:
        """The reference to virtual actor ``(grain_class, key)`` through the system's
        `VirtualActors` runtime (see `tejido.actors.virtual`)."""
        if self.grains is None:
            raise RuntimeError(
                f"actor system {self.name!r} runs no virtual actors: "
                "start tejido.actors.VirtualActors(system, provider) first"
            )
        return self.grains.get(grain_class, key)

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
