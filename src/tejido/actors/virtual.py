"""Virtual actors (Orleans-style grains) on one actor system.

A grain is addressed by ``(type, key)`` and always exists, virtually: there is no spawn
and no stop. ``grains.get(Player, "ana")`` returns a typed `GrainRef` at once, without
I/O; the first message activates the grain, loading its state through a
`PersistenceProvider`; an idle grain is deactivated and comes back transparently on its
next message. (Bykov et al., "Orleans: Distributed Virtual Actors for Programmability and
Scalability", MSR-TR-2014-41; the Orleans docs, "Grain lifecycle" and "Grain
persistence".) Rules:

1. **One activation per grain per runtime.** `VirtualActors` keeps a directory
   ``GrainId -> activation``; every message for a grain goes to its activation, which is
   an ordinary actor, so a grain handles one message at a time, in order per sender.
2. **State.** A grain class names its ``state_type`` (anything msgspec encodes: a Struct,
   a dataclass, a dict...). On activation the state is loaded (or ``initial_state()``
   when nothing is stored). **Saved on change, before the reply:** after each message the
   state is encoded, and if the bytes differ from the last saved ones they are saved
   (with the etag) before the asker gets the reply, so an acknowledged change is
   persisted. A class with ``save_on_change = False`` saves only when it calls
   ``await self.write_state()`` (and at deactivation).
3. **Failures.** When ``receive`` raises, the asker gets `ActorFailed` with the cause, and
   the in-memory state goes back to the last saved one (with ``save_on_change``), so
   memory never holds a change the store refused or never saw. A save refused with
   `StateConflict` (another activation wrote first, see rule 5) reloads the state and
   fails the message; a `PersistenceError` fails the message and keeps the last saved
   state. A failed activation load fails the messages queued for it and the grain is
   activated afresh by the next message.
4. **Deactivation** happens after ``idle_after_s`` without a message (the runtime's
   default, or the class's), on ``self.deactivate_on_idle()``, or when the runtime
   stops. It saves the state if it is dirty, then leaves the directory, but only at a
   moment when no message routed to it is still unhandled; otherwise it stays active
   (so a message is never handed to an activation that is going away).
5. **Single activation, and its limits.** Inside one runtime rule 1 is exact. Across
   nodes (`tejido.actors.virtual_cluster`) each node places a grain with the same hash
   ring over its view of the members, so while views agree there is one activation;
   while they disagree (a member just joined, left or was declared dead) two nodes may
   briefly both activate a grain (an activation on a node whose own view places the
   grain elsewhere leaves after each message, so the overlap lasts only as long as the
   views differ). The etag is what keeps that safe: the second writer's
   save fails with `StateConflict` instead of overwriting an update, the same guarantee
   Orleans documents (single activation is the normal case, "eventually" enforced; the
   storage ETag prevents lost writes when it is violated).

Messages to a grain are ordinary actor messages (frozen dataclasses, msgspec Structs,
scalars). ``receive``'s return value is the reply to an ask, as for actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

import msgspec

from tejido.actors.actor import Actor
from tejido.actors.errors import (
    ActorError,
    ActorFailed,
    ActorStopped,
    MailboxFull,
    UnexpectedReply,
    WrongThread,
)
from tejido.actors.local import LocalActorRef, _Ask
from tejido.actors.persistence import (
    GrainId,
    PersistenceProvider,
    StateConflict,
)
from tejido.actors.placement import NoMembers
from tejido.actors.ref import DEFAULT_ASK_TIMEOUT_S, ActorPath, ActorRef
from tejido.core.errors import LocalProtocolError

if TYPE_CHECKING:
    from tejido.actors.messages import Terminated
    from tejido.actors.system import ActorSystem
    from tejido.actors.virtual_cluster import ClusterPlacement

__all__ = ["Grain", "GrainRef", "VirtualActors"]

log = logging.getLogger("tejido.actors")

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)
S = TypeVar("S")
R = TypeVar("R")

#: The idle period after which a grain is deactivated unless its class says otherwise.
DEFAULT_IDLE_AFTER_S = 300.0


class Grain(Generic[M, S]):
    """Base class of virtual actors: accepts messages ``M``, keeps state ``S``.

    Set ``state_type`` (a class msgspec can decode); override ``receive`` and, when the
    state type cannot be built without arguments, ``initial_state``. Inside: ``self.key``,
    ``self.state``, ``self.grains`` (reach other grains), ``self.write_state()``,
    ``self.clear_state()``, ``self.deactivate_on_idle()``.
    """

    #: The type of ``self.state``, used to decode what the provider stored.
    state_type: ClassVar[type[Any]]
    #: The name in the grain's identity (default: the class name). Every node must use
    #: the same name for the same class.
    grain_type: ClassVar[str | None] = None
    #: Deactivate after this many seconds without a message (None: the runtime's default).
    idle_after_s: ClassVar[float | None] = None
    #: Save after every message that changed the state (rule 2), or only explicitly.
    save_on_change: ClassVar[bool] = True

    key: str
    state: S
    _activation: _Activation

    def initial_state(self) -> S:
        """The state of a grain nothing was stored for (default: ``state_type()``)."""
        state: S = self.state_type()
        return state

    async def activated(self) -> None:
        """Runs after the state was loaded, before the first message."""

    async def receive(self, message: M) -> Any:
        """Handle one message; for an ask, the return value is the reply."""
        raise LocalProtocolError(f"{type(self).__name__} does not handle {message!r}")

    @property
    def grains(self) -> VirtualActors:
        """The runtime this grain lives in (``self.grains.get(Other, key)``)."""
        return self._activation.runtime

    @property
    def identity(self) -> GrainId:
        return self._activation.gid

    async def write_state(self) -> None:
        """Save the state now (raises `StateConflict` / `PersistenceError`)."""
        await self._activation.save()

    async def clear_state(self) -> None:
        """Delete the stored state; ``self.state`` becomes ``initial_state()``."""
        await self._activation.clear()

    def deactivate_on_idle(self) -> None:
        """Deactivate after this message (when nothing else is queued for the grain)."""
        self._activation.deactivate_requested = True

    @classmethod
    def type_name(cls) -> str:
        return cls.grain_type or cls.__name__


class _IdleCheck(msgspec.Struct, frozen=True):
    """The periodic timer message of an activation."""


class _Deactivate(msgspec.Struct, frozen=True):
    """Ask an activation to deactivate now (as if idle)."""


class _Failed:
    """The reply of an activation whose grain raised (turned into `ActorFailed`)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Entry:
    """The directory's record of one activation: its reference, and how many messages
    were routed to it (compared with how many it handled, rule 4)."""

    __slots__ = ("handled", "ref", "routed")

    def __init__(self) -> None:
        self.ref: LocalActorRef[Any] | None = None
        self.routed = 0
        self.handled = 0


class _Activation(Actor[Any]):
    """The actor that hosts one activation of one grain (rules 2-4)."""

    def __init__(
        self,
        runtime: VirtualActors,
        grain_class: type[Grain[Any, Any]],
        gid: GrainId,
        entry: _Entry,
    ) -> None:
        self.runtime = runtime
        self.grain_class = grain_class
        self.gid = gid
        self.entry = entry
        self.grain: Grain[Any, Any] | None = None
        self.saved: bytes | None = None  # the encoding last loaded or saved
        self.etag = 0
        self.load_error: BaseException | None = None
        self.deactivate_requested = False
        self.idle_after_s = 0.0
        self.last_message = 0.0
        self.gone = False

    # ------------------------------------------------------------------ state
    def _encode(self, grain: Grain[Any, Any]) -> bytes:
        return msgspec.msgpack.encode(grain.state)

    def _decode(self, data: bytes | None) -> Any:
        grain = self.grain
        if grain is None:
            raise LocalProtocolError("no grain")
        if data is None:
            return grain.initial_state()
        return msgspec.msgpack.decode(data, type=self.grain_class.state_type)

    async def _load(self) -> None:
        stored = await self.runtime.provider.load(self.gid)
        grain = self.grain
        if grain is None:
            raise LocalProtocolError("no grain")
        grain.state = self._decode(stored.data)
        self.etag = stored.etag
        self.saved = self._encode(grain)

    async def save(self) -> None:
        grain = self.grain
        if grain is None:
            return
        data = self._encode(grain)
        if data == self.saved:
            return
        try:
            self.etag = await self.runtime.provider.save(self.gid, data, self.etag)
        except StateConflict:
            await self._load()  # another activation wrote: take its state (rule 3)
            raise
        self.saved = data
        self.runtime.saves += 1

    async def clear(self) -> None:
        grain = self.grain
        if grain is None:
            return
        self.etag = await self.runtime.provider.clear(self.gid, self.etag)
        grain.state = grain.initial_state()
        self.saved = self._encode(grain)

    def _revert(self) -> None:
        grain = self.grain
        if grain is not None and self.grain_class.save_on_change and self.saved is not None:
            grain.state = msgspec.msgpack.decode(self.saved, type=self.grain_class.state_type)

    # ------------------------------------------------------------------ lifecycle
    async def started(self) -> None:
        grain = self.grain_class()
        grain.key = self.gid.key
        grain._activation = self
        self.grain = grain
        try:
            await self._load()
            await grain.activated()
        except Exception as exc:  # rule 3: fail what is queued, reactivate on the next one
            log.warning("activating grain %s failed: %s", self.gid, exc)
            self.load_error = exc
            self.runtime._forget(self.gid, self.entry)
            self.stop(drain=True)
            return
        self.last_message = self.runtime.loop.time()
        idle = self.grain_class.idle_after_s
        idle = self.runtime.idle_after_s if idle is None else idle
        if idle > 0:
            self.idle_after_s = idle
            self.timers.start_periodic("idle", _IdleCheck(), max(idle / 4, 0.005))
        self.runtime.activations_total += 1

    async def stopping(self) -> None:
        if self.load_error is None and not self.gone:
            self.runtime._forget(self.gid, self.entry)
            try:
                await self.save()
            except ActorError as exc:
                log.warning("saving grain %s while stopping failed: %s", self.gid, exc)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, _IdleCheck | _Deactivate):
            if (
                isinstance(message, _Deactivate)
                or self.deactivate_requested
                or self.runtime.loop.time() - self.last_message >= self.idle_after_s
                or self.runtime.owned_elsewhere(self.gid)
            ):
                await self._try_deactivate()
            return None
        self.entry.handled += 1
        if self.load_error is not None:
            return _Failed(self.load_error)
        grain = self.grain
        if grain is None:
            return _Failed(LocalProtocolError(f"grain {self.gid} has no instance"))
        self.last_message = self.runtime.loop.time()
        try:
            reply = await grain.receive(message)
        except Exception as exc:
            self._revert()
            return _Failed(exc)
        if self.grain_class.save_on_change:
            try:
                await self.save()
            except StateConflict as exc:
                return _Failed(exc)
            except ActorError as exc:
                self._revert()
                return _Failed(exc)
        if self.deactivate_requested or self.runtime.owned_elsewhere(self.gid):
            await self._try_deactivate()
        return reply

    async def _try_deactivate(self) -> None:
        """Rule 4: save, then leave only if nothing routed here is still unhandled."""
        try:
            await self.save()
        except ActorError as exc:
            log.warning("saving grain %s before deactivation failed: %s", self.gid, exc)
            return
        if self.entry.routed != self.entry.handled:
            return  # messages are queued behind this one: stay, try again when idle
        self.gone = True
        self.runtime._forget(self.gid, self.entry)
        self.runtime.deactivations_total += 1
        self.stop(drain=True)


class GrainRef(ActorRef[M_contra], Generic[M_contra]):
    """A reference to a grain: always valid, whether or not the grain is active.

    ``tell`` and ``ask`` behave as for actors (an ask that the grain failed raises
    `ActorFailed`); ``stop`` deactivates the grain (it comes back on the next message).
    Grains cannot be watched: they never terminate. To name a grain in a message to
    another node, send its key (a `GrainRef` does not cross the wire).
    """

    __slots__ = ("_class", "_gid", "_path", "_runtime")

    def __init__(
        self, runtime: VirtualActors, grain_class: type[Grain[Any, Any]], gid: GrainId
    ) -> None:
        self._runtime = runtime
        self._class = grain_class
        self._gid = gid
        # no node: a grain is wherever the ring puts it, so refs from any node are equal
        self._path = ActorPath(runtime.system.name, ("grains", gid.type, gid.key), 0)

    @property
    def path(self) -> ActorPath:
        return self._path

    @property
    def identity(self) -> GrainId:
        return self._gid

    def tell(self, message: M_contra) -> None:
        self._runtime.tell(self._class, self._gid, message)

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
        reply = await self._runtime.ask(self._class, self._gid, message, timeout)
        if expect is not None and not isinstance(reply, expect):
            raise UnexpectedReply(str(self._path), expect, reply)
        return reply

    async def _ask(self, message: M_contra, timeout_s: float) -> Any:
        return await self._runtime.ask(self._class, self._gid, message, timeout_s)

    async def stop(self, *, drain: bool = True) -> None:
        """Deactivate the grain if it is active here (its state is saved first)."""
        await self._runtime.deactivate(self._gid)

    def _watch(self, watcher: ActorRef[Terminated]) -> None:
        raise LocalProtocolError(f"grain {self._gid} cannot be watched: grains never terminate")

    def _unwatch(self, watcher: ActorRef[Terminated]) -> None:
        raise LocalProtocolError(f"grain {self._gid} cannot be watched: grains never terminate")


class VirtualActors:
    """The grains of one actor system: directory, activation, idle deactivation.

    ``async with VirtualActors(system, provider) as grains`` (or `start` / `stop`);
    ``grains.get(Player, "ana")`` returns a `GrainRef`. `stop` deactivates every grain,
    saving its state; messages routed after it raise `ActorStopped`.

    On a clustered system (``ActorSystem(..., node=...)``), `start` also places grains on
    the members by consistent hashing (`tejido.actors.virtual_cluster`): ``hosting``
    says which nodes host grains (default: all; every node must use the same rule), and
    a node that hosts none (a client) may pass ``provider=None``.
    """

    def __init__(
        self,
        system: ActorSystem,
        provider: PersistenceProvider | None,
        *,
        idle_after_s: float = DEFAULT_IDLE_AFTER_S,
        hosting: Callable[[str], bool] | None = None,
    ) -> None:
        self.system = system
        self._provider = provider
        self.idle_after_s = idle_after_s
        self.hosting = hosting
        self.classes: dict[str, type[Grain[Any, Any]]] = {}
        self._entries: dict[GrainId, _Entry] = {}
        self._closed = False
        self.activations_total = 0
        self.deactivations_total = 0
        self.saves = 0
        #: Set by `start` on a clustered system: where each grain lives.
        self.placement: ClusterPlacement | None = None

    async def __aenter__(self) -> VirtualActors:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Become the system's grain runtime (``system.grain(...)``, unless it has one)
        and join the cluster's placement when the system is a cluster node."""
        if self.system.grains is None:
            self.system.grains = self
        if self.system.remoting is not None and self.placement is None:
            from tejido.actors.virtual_cluster import ClusterPlacement

            self.placement = ClusterPlacement(self, self.hosting)
            self.placement.start()

    @property
    def node(self) -> str:
        return self.system.node

    @property
    def closed(self) -> bool:
        """Stopped: grains are no longer activated here."""
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.system.loop

    @property
    def provider(self) -> PersistenceProvider:
        if self._provider is None:
            raise LocalProtocolError(
                f"node {self.node or self.system.name!r} hosts no grains (it has no "
                "persistence provider)"
            )
        return self._provider

    # ------------------------------------------------------------------ references
    def register(self, *grain_classes: type[Grain[Any, Any]]) -> None:
        """Make grain classes known by their type name (a node must know the classes of
        the grains other nodes send it; `get` registers its class itself)."""
        for cls in grain_classes:
            if not isinstance(getattr(cls, "state_type", None), type):
                raise TypeError(f"grain class {cls.__name__} must set state_type to a class")
            name = cls.type_name()
            known = self.classes.get(name)
            if known is not None and known is not cls:
                raise ValueError(f"grain type name {name!r} is taken by {known.__qualname__}")
            self.classes[name] = cls

    def get(self, grain_class: type[Grain[M, Any]], key: str) -> GrainRef[M]:
        """The reference to grain ``(grain_class, key)`` (no I/O, no activation)."""
        if not isinstance(key, str):
            raise TypeError(f"a grain key is a str, not {type(key).__name__}")
        self.register(grain_class)
        return GrainRef(self, grain_class, GrainId(grain_class.type_name(), key))

    @property
    def active(self) -> frozenset[GrainId]:
        """The grains active in this runtime now."""
        return frozenset(self._entries)

    def owned_elsewhere(self, gid: GrainId) -> bool:
        """Whether this node's view places `gid` on another node (its activation here
        then leaves after the message in hand: rule 5)."""
        placement = self.placement
        if placement is None:
            return False
        try:
            return placement.owner_of(gid) is not None
        except NoMembers:
            return False

    # ------------------------------------------------------------------ routing
    def _entry(self, grain_class: type[Grain[Any, Any]], gid: GrainId) -> _Entry:
        entry = self._entries.get(gid)
        if entry is None:
            if self._closed:
                raise ActorStopped(f"grains of {self.node or self.system.name}", gid)
            self.provider  # noqa: B018 (refuse at once on a node that hosts no grains)
            entry = _Entry()
            entry.ref = self.system.guardian.spawn_child(
                _Activation, (self, grain_class, gid, entry), {}, None, None
            )
            self._entries[gid] = entry
        return entry

    def _forget(self, gid: GrainId, entry: _Entry) -> None:
        if self._entries.get(gid) is entry:
            del self._entries[gid]

    def tell(self, grain_class: type[Grain[Any, Any]], gid: GrainId, message: object) -> None:
        """Deliver `message` to the grain, wherever it lives (at most once)."""
        if self.system.thread_id != threading.get_ident():
            self.loop.call_soon_threadsafe(self.tell, grain_class, gid, message)
            return
        placement = self.placement
        if placement is not None:
            owner = placement.owner_of(gid)
            if owner is not None:
                placement.forward_tell(owner, gid, message)
                return
        self.deliver_tell(grain_class, gid, message)

    def deliver_tell(
        self, grain_class: type[Grain[Any, Any]], gid: GrainId, message: object
    ) -> None:
        """Deliver to the activation in this runtime (activating it if needed)."""
        entry = self._entry(grain_class, gid)
        entry.routed += 1
        if entry.ref is not None:
            entry.ref.tell(message)

    async def ask(
        self, grain_class: type[Grain[Any, Any]], gid: GrainId, message: object, timeout_s: float
    ) -> Any:
        """Ask the grain, wherever it lives; `ActorFailed` when the grain failed it."""
        if self.system.thread_id != threading.get_ident():
            raise WrongThread(
                f"ask grain {gid} from another thread: use the system's loop "
                "(asyncio.run_coroutine_threadsafe) or tell"
            )
        placement = self.placement
        if placement is not None:
            owner = placement.owner_of(gid)
            if owner is not None:
                return await placement.forward_ask(owner, gid, message, timeout_s)
        return unwrap(gid, message, await self.deliver_ask(grain_class, gid, message, timeout_s))

    def deliver_ask(
        self, grain_class: type[Grain[Any, Any]], gid: GrainId, message: object, timeout_s: float
    ) -> asyncio.Future[Any]:
        """Queue an ask at the activation here, now (so it keeps its place among the
        tells); the future's result goes through `unwrap` (a failure is a value)."""
        entry = self._entry(grain_class, gid)
        entry.routed += 1
        ref = entry.ref
        if ref is None:
            raise LocalProtocolError(f"grain {gid} has no activation")
        future: asyncio.Future[Any] = self.loop.create_future()
        bucket = self.system.ask_deadlines.add(future, ref.path, message, timeout_s)
        future.add_done_callback(lambda done: bucket.pop(done, None))
        try:
            ref._cell.enqueue(_Ask(message, future))
        except MailboxFull as exc:
            if not future.done():
                future.set_exception(exc)
        return future

    async def deactivate(self, gid: GrainId, *, timeout_s: float = DEFAULT_ASK_TIMEOUT_S) -> bool:
        """Deactivate `gid` if it is active here, saving its state first; True once it
        has left the directory. The request queues behind the messages already routed
        to the grain (rule 4), and is repeated while new ones keep arriving."""
        for _ in range(10):
            entry = self._entries.get(gid)
            if entry is None or entry.ref is None:
                return True
            with contextlib.suppress(ActorStopped):
                await entry.ref.ask(_Deactivate(), timeout=timeout_s)
            if self._entries.get(gid) is not entry:
                return True
        return False

    async def stop(self) -> None:
        """Deactivate every grain (saving dirty state); refuse messages from now on."""
        self._closed = True
        if self.system.grains is self:
            self.system.grains = None
        if self.placement is not None:
            self.placement.stop()
        entries = list(self._entries.values())
        await asyncio.gather(*(e.ref.stop(drain=True) for e in entries if e.ref is not None))
        self._entries.clear()


def is_failure(reply: object) -> bool:
    """Whether an activation's reply stands for a failure of the grain."""
    return isinstance(reply, _Failed)


def unwrap(gid: GrainId, message: object, reply: Any) -> Any:
    """An activation's reply as the asker sees it: a grain's failure raises
    `ActorFailed` naming the grain."""
    if isinstance(reply, _Failed):
        raise ActorFailed(f"grain {gid}", message, reply.error)
    return reply
