"""Remote actors: references to actors on other nodes, and the node side that serves them.

A clustered `ActorSystem` owns one `Remoting`: the `Cluster` (links and membership), the
`TypeRegistry` (which message types and behaviours may cross the wire) and the requests in
flight. Rules:

1. **Same API.** A `RemoteActorRef` is an `ActorRef`: ``tell``, ``ask`` (with the same
   typed errors), ``stop``, death watch. A reference travels inside messages as
   `RefData` (node, system, path, uid) and is resolved on arrival: to the local actor on
   its own node, to a `RemoteActorRef` elsewhere.
2. **Registered types only.** A message (or spawn argument, or reply) is plain data
   (None, bool, int, float, str, bytes, list, tuple, dict: tuples arrive as lists), an
   actor reference, or an instance of a type registered in the `TypeRegistry` (msgspec
   Structs, dataclasses, enums...). It is msgpack-encoded with msgspec and decoded on
   arrival against the registered type; nothing is unpickled. Sending an unregistered
   type raises `NotSerializable` in the sender; a frame naming a type the receiver does
   not know is a dead letter there (and fails an ask with `NotSerializable`).
3. **Delivery.** At most once by default: a tell is one frame on the sender's link to the
   node; it is lost if the link drops before the peer read it, or if the node is down
   (then it is a dead letter at the sender, reason ``node unreachable``). Per
   sender-receiver pair, tells keep their order (one ordered link per direction).
   With ``Delivery.AT_LEAST_ONCE`` each tell carries a sequence number per (sender
   incarnation, receiving node); the receiver acknowledges cumulatively and delivers only
   the next expected number (a duplicate or a message after a gap is dropped and
   re-acknowledged), the sender resends everything unacknowledged after ``retry_min_s``,
   doubling up to ``retry_max_s`` (go-back-N, as in TCP's retransmission with a
   cumulative ack). So while both nodes live every tell is delivered exactly once and in
   order; unacknowledged tells to a node that goes down are dropped (counted). Asks,
   replies and control frames stay at most once (an ask has its timeout).
4. **Spawn on a node**: ``system.spawn(Behaviour, *args, node="b", name=...)`` sends
   `Spawn` naming a *registered behaviour* (never code) with the encoded arguments, and
   returns at once a reference whose uid the spawner chose; tells sent meanwhile follow
   the `Spawn` on the same link, so they arrive after it. ``await`` the reference to learn
   that the spawn succeeded (or get its typed error). An actor spawned on behalf of a node
   is stopped when that node leaves or is lost (it belongs to the spawner, as Akka's
   remote deployment makes it a child of the deploying parent).
5. **Death watch across nodes**: ``watch`` sends `Watch` to the target's node, whose actor
   then tells the watcher `Terminated` like any other watcher; if the target's node goes
   down first, the watcher gets ``Terminated(ref, NODE_LOST)`` from its own node. Asks
   pending to a lost node fail with `NodeLost`.
6. **Cluster registry**: ``await system.find("name")`` asks every up member (this one
   first) for the live actor at ``/user/name`` (or a full path); entries are never
   stored, so a stopped actor or a lost node is never found. Names are unique per node
   (per parent), not across the cluster: when several members have the name, this
   node's actor wins, else the one on the up member with the lowest node name among
   those that answered within the timeout. (Refusing a name another member has would
   cost a round trip to every member per named spawn, which is synchronous today, and
   would still let two members that spawn it at the same moment both succeed: real
   uniqueness needs a consensus-backed registry.)
7. **Eager receive**: an ask or tell arriving for an idle actor runs its ``receive``
   on the reading callback's stack (`tejido.actors.cell`, rule 6), so a reply computed
   without suspending is written before that read returns (`tejido.actors.cluster`,
   rule 5); a sequential asker writes its next ask at once. A remote ask then costs
   each side one loop turn and one write, like a bare echo.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import enum
import logging
import random
import threading
import types
import typing
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import msgspec

from tejido.actors.actor import Actor
from tejido.actors.cluster import Cluster, ClusterConfig, Delivery, MemberDown, MemberEvent
from tejido.actors.errors import (
    ActorError,
    ActorFailed,
    ActorNameTaken,
    ActorStopped,
    InvalidActorName,
    MailboxFull,
    NodeLost,
    NotSerializable,
    RemoteError,
    SpawnFailed,
    UnexpectedReply,
    UnhandledMessage,
)
from tejido.actors.local import LocalActorRef, _Ask
from tejido.actors.messages import DeadLetterReason, Terminated, TerminationCause
from tejido.actors.ref import DEFAULT_ASK_TIMEOUT_S, ActorPath, ActorRef
from tejido.actors.wire import (
    Ack,
    Ask,
    Fail,
    Find,
    Frame,
    Payload,
    RefData,
    Reply,
    Spawn,
    StopActor,
    Tell,
    Unwatch,
    Watch,
    encode_frame,
)

if TYPE_CHECKING:
    from tejido.actors.cell import ActorCell
    from tejido.actors.system import ActorSystem

__all__ = ["RemoteActorRef", "Remoting", "TypeRegistry"]

log = logging.getLogger("tejido.actors.remote")

M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")
T = TypeVar("T")

_PLAIN = frozenset((type(None), bool, int, float, str, bytes, list, tuple, dict))
#: plain values encoded without `encode_value` on the hot path
_PLAIN_SCALARS = frozenset((type(None), bool, int, float, str, bytes))
#: what msgspec raises for a value it cannot encode (an int beyond 64 bits: OverflowError)
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, msgspec.EncodeError)
_REF = "@ref"
_get_ident = threading.get_ident


class TypeRegistry:
    """Which message types and actor behaviours may cross the wire, by name.

    The default name is ``module.QualName``; both sides must register the same types
    under the same names. `Terminated` is registered from the start.
    """

    def __init__(self) -> None:
        self._types: dict[str, type] = {}
        self._type_names: dict[type, str] = {}
        self._behaviours: dict[str, type[Actor[Any]]] = {}
        self._behaviour_names: dict[type, str] = {}
        self.register(Terminated, TerminationCause)

    @staticmethod
    def default_name(cls: type) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def register(self, *classes: type, name: str | None = None) -> None:
        """Register message types (`name` only with a single class)."""
        if name is not None and len(classes) != 1:
            raise ValueError("a name can be given for one class at a time")
        for cls in classes:
            if not isinstance(cls, type):
                raise TypeError(f"register() takes classes, got {cls!r}")
            key = name or self.default_name(cls)
            if key in self._types and self._types[key] is not cls:
                raise ValueError(f"message type name {key!r} is already taken by another class")
            self._types[key] = cls
            self._type_names[cls] = key

    def register_behaviour(self, cls: type[Actor[Any]], name: str | None = None) -> None:
        """Register an `Actor` subclass that other nodes may spawn here (by name)."""
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise TypeError(f"register_behaviour() takes an Actor subclass, got {cls!r}")
        key = name or self.default_name(cls)
        if key in self._behaviours and self._behaviours[key] is not cls:
            raise ValueError(f"behaviour name {key!r} is already taken by another class")
        self._behaviours[key] = cls
        self._behaviour_names[cls] = key

    def register_module(self, module: types.ModuleType) -> None:
        """Register every Actor subclass (as a behaviour) and every msgspec Struct,
        dataclass and enum (as a message type) defined in `module`."""
        for value in vars(module).values():
            if not isinstance(value, type) or value.__module__ != module.__name__:
                continue
            if issubclass(value, Actor):
                self.register_behaviour(value)
            elif (
                issubclass(value, msgspec.Struct | enum.Enum) or dataclasses.is_dataclass(value)
            ) and not issubclass(value, BaseException):
                self.register(value)

    def type_name(self, cls: type) -> str | None:
        return self._type_names.get(cls)

    def type_named(self, name: str) -> type | None:
        return self._types.get(name)

    def behaviour_name(self, cls: type) -> str | None:
        return self._behaviour_names.get(cls)

    def behaviour_named(self, name: str) -> type[Actor[Any]] | None:
        return self._behaviours.get(name)


class RemoteActorRef(ActorRef[M_contra], Generic[M_contra]):
    """A reference to an actor on another node (see the module docstring)."""

    __slots__ = ("_path", "_remoting", "_spawned")

    def __init__(
        self,
        remoting: Remoting,
        path: ActorPath,
        spawned: asyncio.Future[None] | None = None,
    ) -> None:
        self._remoting = remoting
        self._path = path
        self._spawned = spawned

    @property
    def path(self) -> ActorPath:
        return self._path

    def tell(self, message: M_contra) -> None:
        remoting = self._remoting
        if _get_ident() != remoting.system.thread_id:
            remoting.system.loop.call_soon_threadsafe(remoting.tell, self, message)
            return
        remoting.tell(self, message)

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
        # Remoting.ask in this coroutine's frame (the hot path of a remote ask).
        remoting = self._remoting
        request_id, future, bucket = remoting.start_ask(self._path, message, timeout)
        try:
            reply = await future
        finally:
            del bucket[future]
            remoting._pending.pop(request_id, None)
        if expect is not None and not isinstance(reply, expect):
            raise UnexpectedReply(str(self._path), expect, reply)
        return reply

    async def _ask(self, message: M_contra, timeout_s: float) -> Any:
        return await self._remoting.ask(self, message, timeout_s)

    async def stop(self, *, drain: bool = True) -> None:
        await self._remoting.stop_remote(self, drain)

    def _watch(self, watcher: ActorRef[Terminated]) -> None:
        self._remoting.watch(self, watcher)

    def _unwatch(self, watcher: ActorRef[Terminated]) -> None:
        self._remoting.unwatch(self, watcher)

    def __await__(self) -> Generator[Any, None, RemoteActorRef[M_contra]]:
        spawned = self._spawned
        if spawned is not None:
            yield from asyncio.shield(spawned).__await__()
        return self


_Pending = tuple[asyncio.Future[Any], str, object, ActorPath]


class _ReplySink:
    """Stands in for an ask's future on the serving node: the actor's reply (or error)
    goes straight back to the asking node as a `Reply` / `Fail` frame, with no future and
    no loop hop in between. It answers once; the asker applies the timeout."""

    __slots__ = ("_done", "_id", "_node", "_remoting")

    def __init__(self, remoting: Remoting, node: str, request_id: int) -> None:
        self._remoting = remoting
        self._node = node
        self._id = request_id
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: object) -> None:
        if self._done:
            return
        self._done = True
        remoting = self._remoting
        try:
            if type(result) in _PLAIN_SCALARS:  # `encode_value`'s common case, one call less
                payload = Payload("", msgspec.Raw(remoting._encoder.encode(result)))
            else:
                payload = remoting.encode_value(result)
        except NotSerializable as exc:
            remoting._send(self._node, Fail(self._id, "NotSerializable", str(exc)))
            return
        except _ENCODE_ERRORS as exc:
            text = f"cannot encode {type(result).__qualname__} for the wire: {exc}"
            remoting._send(self._node, Fail(self._id, "NotSerializable", text))
            return
        remoting.cluster.send(self._node, encode_frame(Reply(self._id, payload)))

    def set_exception(self, error: BaseException) -> None:
        if self._done:
            return
        self._done = True
        self._remoting._send(self._node, _fail_frame(self._id, error))


@dataclasses.dataclass
class _Outbox:
    """At-least-once state for one receiving node (rule 3)."""

    next_seq: int = 1
    unacked: deque[tuple[int, bytes]] = dataclasses.field(default_factory=deque)
    rto: float = 0.0
    timer: asyncio.TimerHandle | None = None


class Remoting:
    """A clustered system's remote side (see the module docstring)."""

    def __init__(self, system: ActorSystem, config: ClusterConfig, registry: TypeRegistry) -> None:
        self.system = system
        self.loop = system.loop  # made by a started system
        self.config = config
        self.node = config.node
        self.registry = registry
        self.cluster = Cluster(config, system.name, self._on_frame)
        # the hot kinds straight to their handlers (the rest through `_on_frame`)
        self.cluster.handlers.update(
            {Ask: self._on_ask, Reply: self._on_reply, Tell: self._on_tell}
        )
        self.cluster.add_listener(self._on_member)
        self.reliable = config.delivery is Delivery.AT_LEAST_ONCE
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)
        self._plain = msgspec.msgpack.Decoder()
        # by registered type name ("" for plain values)
        self._decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {"": self._plain}
        self._ref_decoder = msgspec.msgpack.Decoder(RefData)
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._solo = False  # the last reply emptied `_pending` (see `_on_reply`)
        # node -> {(target, watcher): None}: remote actors our local actors watch
        self._watches: dict[str, dict[tuple[RemoteActorRef[Any], ActorRef[Any]], None]] = {}
        # node -> actors we spawned on its behalf (stopped when it goes)
        self._owned: dict[str, dict[LocalActorRef[Any], None]] = {}
        self._outboxes: dict[str, _Outbox] = {}
        self._delivered: dict[tuple[str, int], int] = {}
        self._acks_due: set[str] = set()
        self._uids = random.SystemRandom()
        self.counters = {"resent": 0, "duplicates": 0, "gaps": 0, "unacked_dropped": 0}

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> None:
        self.cluster.before_leave_done = self._owner_left
        await self.cluster.start()

    async def leave(self) -> None:
        await self.cluster.leave()
        for outbox in self._outboxes.values():
            if outbox.timer is not None:
                outbox.timer.cancel()

    # ------------------------------------------------------------------ codec
    def _enc_hook(self, obj: Any) -> Any:
        if isinstance(obj, ActorRef):
            return self.ref_data(obj)
        raise NotImplementedError(f"cannot encode {type(obj).__name__}")

    def _dec_hook(self, kind: Any, obj: Any) -> Any:
        if kind is ActorRef or typing.get_origin(kind) is ActorRef:
            return self.resolve(msgspec.convert(obj, RefData))
        raise NotImplementedError(f"cannot decode {kind!r}")

    def ref_data(self, ref: ActorRef[Any]) -> RefData:
        path = ref.path
        return RefData(path.node or self.node, path.system, path.elements, path.uid)

    def resolve(self, data: RefData) -> ActorRef[Any]:
        """The reference `data` names: the local actor, or a remote reference."""
        path = ActorPath(data.system, data.elements, data.uid, data.node)
        if data.node == self.node:
            cell = self.system.registry.get(data.elements)
            if cell is not None and cell.path.uid == data.uid:
                return cell.ref
        return RemoteActorRef(self, path)

    def encode_value(self, value: object) -> Payload:
        """`value` as a `Payload` (rule 2); `NotSerializable` if it cannot travel."""
        cls = type(value)
        if cls in _PLAIN:
            name = ""
        else:
            found = self.registry.type_name(cls)
            if found is not None:
                name = found
            elif isinstance(value, ActorRef):
                name = _REF
            else:
                raise NotSerializable(
                    f"{cls.__module__}.{cls.__qualname__} is not a registered message type: "
                    "register it on both nodes (system.types.register(...))"
                )
        try:
            body = self._encoder.encode(value)
        except _ENCODE_ERRORS as exc:
            raise NotSerializable(f"cannot encode {cls.__qualname__} for the wire: {exc}") from exc
        return Payload(name, msgspec.Raw(body))

    def decode_value(self, payload: Payload) -> Any:
        """The value in `payload`; `NotSerializable` when its type is unknown here."""
        name = payload.type
        try:
            decoder = self._decoders.get(name)  # "" (plain values) is there from the start
            if decoder is not None:
                return decoder.decode(payload.body)
            if name == _REF:
                return self.resolve(self._ref_decoder.decode(payload.body))
            cls = self.registry.type_named(name)
            if cls is None:
                raise NotSerializable(f"message type {name!r} is not registered on {self.node}")
            # a registered name always names the same class, so its decoder is kept
            decoder = self._decoders[name] = msgspec.msgpack.Decoder(cls, dec_hook=self._dec_hook)
            return decoder.decode(payload.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NotSerializable(f"cannot decode a {name or 'plain'} value: {exc}") from exc

    # ------------------------------------------------------------------ sending
    def _send(self, node: str, frame: Frame) -> bool:
        return self.cluster.send(node, encode_frame(frame))

    def tell(self, ref: RemoteActorRef[Any], message: object) -> None:
        path = ref.path
        payload = self.encode_value(message)
        node = path.node
        if node == self.node:  # a reference to one of our actors that has stopped
            self.system.dead_letter(message, path, DeadLetterReason.STOPPED)
            return
        if self.cluster.member(node) is None:
            self.system.dead_letter(message, path, DeadLetterReason.NODE_UNREACHABLE)
            return
        if not self.reliable:
            self.cluster.send(node, encode_frame(Tell(path.elements, path.uid, payload)))
            return
        outbox = self._outboxes.get(node)
        if outbox is None:
            outbox = self._outboxes[node] = _Outbox(rto=self.config.retry_min_s)
        seq = outbox.next_seq
        outbox.next_seq = seq + 1
        frame = encode_frame(Tell(path.elements, path.uid, payload, seq))
        outbox.unacked.append((seq, frame))
        self.cluster.send(node, frame)
        if outbox.timer is None:
            outbox.timer = self.system.loop.call_later(outbox.rto, self._resend, node)

    def _resend(self, node: str) -> None:
        outbox = self._outboxes.get(node)
        if outbox is None:
            return
        outbox.timer = None
        if not outbox.unacked:
            return
        if self.cluster.member(node) is None:
            self.counters["unacked_dropped"] += len(outbox.unacked)
            del self._outboxes[node]
            return
        for _, frame in outbox.unacked:
            self.cluster.send(node, frame)
        self.counters["resent"] += len(outbox.unacked)
        outbox.rto = min(self.config.retry_max_s, outbox.rto * 2)
        outbox.timer = self.system.loop.call_later(outbox.rto, self._resend, node)

    def _request(
        self, node: str, what: object, make: Callable[[int], Frame], timeout_s: float
    ) -> tuple[asyncio.Future[Any], dict[Any, Any]]:
        """Send a request frame and register its future (failed by the deadline)."""
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Any] = self.system.loop.create_future()
        path = ActorPath(self.system.name, (), 0, node)
        bucket = self.system.ask_deadlines.add(future, path, what, timeout_s)
        self._pending[request_id] = (future, node, what, path)
        future.add_done_callback(lambda _: self._pending.pop(request_id, None))
        if not self._send(node, make(request_id)):
            future.set_exception(NodeLost(node, what))
        return future, bucket

    async def ask(self, ref: RemoteActorRef[Any], message: object, timeout_s: float) -> Any:
        request_id, future, bucket = self.start_ask(ref.path, message, timeout_s)
        try:
            return await future
        finally:
            del bucket[future]
            self._pending.pop(request_id, None)

    def start_ask(
        self, path: ActorPath, message: object, timeout_s: float
    ) -> tuple[int, asyncio.Future[Any], dict[Any, Any]]:
        """Send an ask; the caller awaits the future, then removes it from the bucket and
        `_pending` (as `ask` does)."""
        if _get_ident() != self.system.thread_id:
            from tejido.actors.errors import WrongThread

            raise WrongThread(
                f"ask {path} from another thread: use the blocking facade "
                "(tejido.actors.BlockingActorSystem) or run on the system's loop"
            )
        name = self.registry._type_names.get(type(message))
        if name is not None:  # `encode_value`'s common case for a message, one call less
            try:
                payload = Payload(name, msgspec.Raw(self._encoder.encode(message)))
            except _ENCODE_ERRORS:
                payload = self.encode_value(message)  # raises NotSerializable, worded
        else:
            payload = self.encode_value(message)
        if path.node == self.node:  # one of our actors that has stopped
            self.system.dead_letter(message, path, DeadLetterReason.STOPPED)
            raise ActorStopped(str(path), message)
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Any] = self.loop.create_future()
        bucket = self.system.ask_deadlines.add(future, path, message, timeout_s)
        self._pending[request_id] = (future, path.node, message, path)
        frame = encode_frame(Ask(request_id, path.elements, path.uid, payload, timeout_s))
        if self._solo:  # a sequential asker: nothing to coalesce this ask with
            self._solo = False
            sent = self.cluster.send_at_once(path.node, frame)
        else:
            sent = self.cluster.send(path.node, frame)
        if not sent:
            del bucket[future]
            del self._pending[request_id]
            raise NodeLost(path.node, message, str(path))
        return request_id, future, bucket

    async def stop_remote(self, ref: RemoteActorRef[Any], drain: bool) -> None:
        path = ref.path
        if path.node == self.node:
            return  # one of our actors that has stopped already
        future, bucket = self._request(
            path.node,
            f"stop {path}",
            lambda i: StopActor(i, path.elements, path.uid, drain),
            self.config.failure_timeout_s * 4,
        )
        try:
            await future
        except NodeLost:
            return  # its node is gone: so is the actor
        finally:
            bucket.pop(future, None)

    def spawn(
        self,
        node: str,
        actor_class: type[Actor[Any]],
        args: tuple[Any, ...],
        name: str | None,
    ) -> RemoteActorRef[Any]:
        behaviour = self.registry.behaviour_name(actor_class)
        if behaviour is None:
            raise NotSerializable(
                f"{actor_class.__qualname__} is not a registered behaviour: register it on "
                "both nodes (system.types.register_behaviour(...))"
            )
        if name is not None:
            from tejido.actors.cell import _check_name

            _check_name(name)
        payloads = tuple(self.encode_value(arg) for arg in args)
        uid = self._uids.getrandbits(62) | (1 << 62)
        elements = ("user", name if name is not None else f"${uid}")
        future, bucket = self._request(
            node,
            f"spawn {behaviour}",
            lambda i: Spawn(i, behaviour, payloads, name, uid),
            self.config.failure_timeout_s * 4,
        )
        path = ActorPath(self.system.name, elements, uid, node)

        def spawned(done: asyncio.Future[Any]) -> None:
            bucket.pop(done, None)
            error = None if done.cancelled() else done.exception()
            if error is not None:  # also marks it retrieved when nobody awaits the ref
                log.warning("%s: spawning %s on %s failed: %s", self.node, path, node, error)

        future.add_done_callback(spawned)
        return RemoteActorRef(self, path, future)

    async def find(self, name: str, timeout_s: float) -> ActorRef[Any] | None:
        """The live actor named `name` anywhere in the cluster (rule 6), or None."""
        elements = _elements(name)
        local = self.system.registry.get(elements)
        if local is not None:
            return local.ref
        requests = []
        for member in self.cluster.members():
            if member.node == self.node:
                continue
            requests.append(
                self._request(member.node, f"find {name}", lambda i: Find(i, elements), timeout_s)
            )
        found: ActorRef[Any] | None = None
        for future, bucket in requests:
            try:
                ref = await future
            except ActorError:
                continue
            finally:
                bucket.pop(future, None)
            if found is None and isinstance(ref, ActorRef):
                found = ref
        return found

    def watch(self, target: RemoteActorRef[Any], watcher: ActorRef[Any]) -> None:
        node = target.path.node
        if node == self.node:  # one of our actors that has stopped already
            watcher.tell(Terminated(target, TerminationCause.STOPPED))
            return
        if self.cluster.member(node) is None:
            watcher.tell(Terminated(target, TerminationCause.NODE_LOST))
            return
        self._watches.setdefault(node, {})[(target, watcher)] = None
        self._send(node, Watch(self.ref_data(target), self.ref_data(watcher)))

    def unwatch(self, target: RemoteActorRef[Any], watcher: ActorRef[Any]) -> None:
        node = target.path.node
        watches = self._watches.get(node)
        if watches is not None:
            watches.pop((target, watcher), None)
        self._send(node, Unwatch(self.ref_data(target), self.ref_data(watcher)))

    # ------------------------------------------------------------------ receiving
    def _cell(self, elements: tuple[str, ...], uid: int) -> ActorCell | None:
        cell = self.system.registry.get(elements)
        if cell is None or cell.path.uid != uid:
            return None
        return cell

    def _on_frame(self, node: str, frame: Frame) -> None:
        kind = type(frame)  # the hot kinds first
        if kind is Ask:
            self._on_ask(node, frame)  # type: ignore[arg-type]
        elif kind is Reply:
            self._on_reply(node, frame)  # type: ignore[arg-type]
        elif kind is Tell:
            self._on_tell(node, frame)  # type: ignore[arg-type]
        elif isinstance(frame, Fail):
            self._on_fail(frame)
        elif isinstance(frame, Watch):
            self._on_watch(frame)
        elif isinstance(frame, Unwatch):
            cell = self._cell(frame.target.elements, frame.target.uid)
            if cell is not None:
                cell.ref._unwatch(self.resolve(frame.watcher))
        elif isinstance(frame, Spawn):
            self._on_spawn(node, frame)
        elif isinstance(frame, StopActor):
            self.system.loop.create_task(self._on_stop(node, frame))
        elif isinstance(frame, Find):
            cell = self.system.registry.get(frame.elements)
            value = cell.ref if cell is not None else None
            self._send(node, Reply(frame.id, self.encode_value(value)))
        elif isinstance(frame, Ack):
            self._on_ack(node, frame)

    def _on_tell(self, node: str, frame: Tell) -> None:
        if frame.seq:
            member = self.cluster.member(node)
            if member is None:
                return
            key = (node, member.incarnation)
            delivered = self._delivered.get(key, 0)
            self._ack_soon(node)
            if frame.seq != delivered + 1:
                if frame.seq <= delivered:
                    self.counters["duplicates"] += 1
                else:
                    self.counters["gaps"] += 1
                return
            self._delivered[key] = frame.seq
        path = ActorPath(self.system.name, frame.elements, frame.uid, self.node)
        try:
            message = self.decode_value(frame.message)
        except NotSerializable as exc:
            log.warning("%s: tell to %s from %s dropped: %s", self.node, path, node, exc)
            self.system.dead_letter(frame.message.type, path, DeadLetterReason.UNDECODABLE)
            return
        if isinstance(message, Terminated) and isinstance(message.ref, RemoteActorRef):
            self._watch_ended(message.ref, frame)
        cell = self._cell(frame.elements, frame.uid)
        if cell is None:
            self.system.dead_letter(message, path, DeadLetterReason.STOPPED)
            return
        try:
            cell.deliver(message)
        except MailboxFull:
            self.system.dead_letter(message, path, DeadLetterReason.MAILBOX_FULL)

    def _watch_ended(self, target: RemoteActorRef[Any], frame: Tell) -> None:
        watches = self._watches.get(target.path.node)
        if not watches:
            return
        cell = self._cell(frame.elements, frame.uid)
        if cell is None:
            return
        watches.pop((target, cell.ref), None)
        if cell.watching:
            cell.watching.pop(target, None)

    def _ack_soon(self, node: str) -> None:
        if not self._acks_due:
            self.system.loop.call_soon(self._send_acks)
        self._acks_due.add(node)

    def _send_acks(self) -> None:
        due, self._acks_due = self._acks_due, set()
        for node in due:
            member = self.cluster.member(node)
            if member is not None:
                upto = self._delivered.get((node, member.incarnation), 0)
                self._send(node, Ack(member.incarnation, upto))

    def _on_ack(self, node: str, frame: Ack) -> None:
        if frame.incarnation != self.cluster.incarnation:
            return
        outbox = self._outboxes.get(node)
        if outbox is None:
            return
        unacked = outbox.unacked
        progressed = False
        while unacked and unacked[0][0] <= frame.upto:
            unacked.popleft()
            progressed = True
        if progressed:
            outbox.rto = self.config.retry_min_s
            if outbox.timer is not None:
                outbox.timer.cancel()
                outbox.timer = None
            if unacked:
                outbox.timer = self.system.loop.call_later(outbox.rto, self._resend, node)

    def _on_ask(self, node: str, frame: Ask) -> None:
        payload = frame.message
        try:
            decoder = self._decoders.get(payload.type)
            if decoder is not None:  # `decode_value`'s common case, one call less
                message = decoder.decode(payload.body)
            else:
                message = self.decode_value(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            text = f"cannot decode a {payload.type or 'plain'} value: {exc}"
            self._send(node, Fail(frame.id, "NotSerializable", text))
            return
        except NotSerializable as exc:
            self._send(node, Fail(frame.id, "NotSerializable", str(exc)))
            return
        cell = self.system.registry.get(frame.elements)
        if cell is None or cell.path.uid != frame.uid:
            path = ActorPath(self.system.name, frame.elements, frame.uid, self.node)
            self.system.dead_letter(message, path, DeadLetterReason.STOPPED)
            self._send(node, _fail_frame(frame.id, ActorStopped(str(path), message)))
            return
        sink = _ReplySink(self, node, frame.id)
        try:
            cell.deliver(_Ask(message, sink))  # type: ignore[arg-type]
        except MailboxFull as exc:
            sink.set_exception(exc)

    def _on_reply(self, node: str, frame: Reply) -> None:
        pending = self._pending.pop(frame.id, None)
        if not self._pending:
            # Nothing else in flight: whoever this wakes most likely sends the next
            # request alone this turn, so it may write it at once (see `ask`).
            self._solo = True
        if pending is None or pending[0].done():
            return
        payload = frame.value
        decoder = self._decoders.get(payload.type)
        try:
            if decoder is not None:  # `decode_value`'s common case, one call less
                value = decoder.decode(payload.body)
            else:
                value = self.decode_value(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            text = f"cannot decode a {payload.type or 'plain'} value: {exc}"
            pending[0].set_exception(NotSerializable(text))
            return
        except NotSerializable as exc:
            pending[0].set_exception(exc)
            return
        pending[0].set_result(value)

    def _on_fail(self, frame: Fail) -> None:
        pending = self._pending.get(frame.id)
        if pending is None or pending[0].done():
            return
        pending[0].set_exception(_error_from(frame, pending[2], str(pending[3])))

    def _on_watch(self, frame: Watch) -> None:
        watcher = self.resolve(frame.watcher)
        cell = self._cell(frame.target.elements, frame.target.uid)
        if cell is None:
            target = self.resolve(frame.target)
            watcher.tell(Terminated(target, TerminationCause.STOPPED))
            return
        cell.ref._watch(watcher)

    def _on_spawn(self, node: str, frame: Spawn) -> None:
        try:
            cls = self.registry.behaviour_named(frame.behaviour)
            if cls is None:
                raise NotSerializable(
                    f"behaviour {frame.behaviour!r} is not registered on {self.node}"
                )
            args = tuple(self.decode_value(arg) for arg in frame.args)
            ref = self.system.guardian.spawn_child(cls, args, {}, frame.name, None, uid=frame.uid)
        except ActorError as exc:
            self._send(node, _fail_frame(frame.id, exc))
            return
        owned = self._owned.setdefault(node, {})
        owned[ref] = None
        ref._cell.terminated.add_done_callback(lambda _: owned.pop(ref, None))
        self._send(node, Reply(frame.id, self.encode_value(None)))

    async def _on_stop(self, node: str, frame: StopActor) -> None:
        cell = self._cell(frame.elements, frame.uid)
        if cell is not None:
            await cell.request_stop(frame.drain, TerminationCause.STOPPED)
        self._send(node, Reply(frame.id, self.encode_value(None)))

    # ------------------------------------------------------------------ membership
    async def _owner_left(self, node: str) -> None:
        """A node leaves: stop what we spawned for it before answering `LeaveDone`."""
        owned = self._owned.pop(node, None)
        if owned:
            await asyncio.gather(
                *(
                    ref._cell.request_stop(False, TerminationCause.STOPPED)
                    for ref in owned
                    if ref.is_alive
                )
            )

    def _on_member(self, event: MemberEvent) -> None:
        if not isinstance(event, MemberDown):
            return
        node = event.member.node
        for future, pending_node, what, _ in list(self._pending.values()):
            if pending_node == node and not future.done():
                future.set_exception(NodeLost(node, what))
        for target, watcher in self._watches.pop(node, {}):
            if isinstance(watcher, LocalActorRef) and watcher._cell.watching:
                watcher._cell.watching.pop(target, None)
            watcher.tell(Terminated(target, TerminationCause.NODE_LOST))
        incarnation = event.member.incarnation
        self._delivered.pop((node, incarnation), None)
        outbox = self._outboxes.pop(node, None)
        if outbox is not None:
            if outbox.timer is not None:
                outbox.timer.cancel()
            self.counters["unacked_dropped"] += len(outbox.unacked)
        if event.reason != "left" and node in self._owned:
            self.system.loop.create_task(self._owner_left(node))

    def stats(self) -> dict[str, int]:
        return {**self.cluster.stats(), **self.counters}


def _elements(name: str) -> tuple[str, ...]:
    parts = tuple(part for part in name.strip("/").split("/") if part)
    if len(parts) == 1:
        return ("user", parts[0])
    return parts


def _fail_frame(request_id: int, error: BaseException) -> Fail:
    if isinstance(error, ActorFailed | SpawnFailed):
        cause = error.cause
        return Fail(
            request_id, type(error).__name__, str(error), _qualified(type(cause)), str(cause)
        )
    return Fail(request_id, type(error).__name__, str(error))


def _qualified(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _cause(frame: Fail) -> Exception:
    """What a remote actor raised: the builtin exception itself when it is one (so
    ``isinstance(cause, ValueError)`` works across nodes), else a `RemoteError`."""
    builtin = getattr(builtins, frame.cause_type, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        with contextlib.suppress(Exception):
            return builtin(frame.cause_text)
    return RemoteError(frame.cause_type, frame.cause_text)


def _error_from(frame: Fail, what: object, path: str) -> Exception:
    """The typed error a `Fail` frame stands for, as the asker would get it locally."""
    kind = frame.kind
    error: Exception
    if kind == "ActorFailed":
        error = ActorFailed(path, what, _cause(frame))
    elif kind == "SpawnFailed":
        error = SpawnFailed(path, _cause(frame))
    elif kind == "NotSerializable":
        error = NotSerializable(frame.text)
    elif kind == "ActorStopped":
        error = ActorStopped(path, what)
    elif kind == "MailboxFull":
        error = MailboxFull(path, 0, what)
    elif kind == "UnhandledMessage":
        error = UnhandledMessage(path, what)
    elif kind == "InvalidActorName":
        error = InvalidActorName(frame.text)
    elif kind == "ActorNameTaken":
        error = ActorNameTaken(frame.text)
    else:
        return RemoteError(kind, frame.text)
    error.args = (frame.text,)
    return error
