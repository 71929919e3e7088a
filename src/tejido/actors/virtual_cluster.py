"""Virtual actors across cluster nodes: placement by the hash ring, forwarding, rebalance.

`VirtualActors.start` on a clustered `ActorSystem` creates one `ClusterPlacement`. Rules:

1. **Placement.** The owner of grain ``(type, key)`` is
   ``HashRing(hosting members).owner("type/key")`` (`tejido.actors.placement`), computed
   locally from this node's membership view (`tejido.actors.cluster`); ``hosting`` picks
   which members host grains (a client node may host none). A message for a grain owned
   here goes to the local activation; for another owner it goes to that node's *grain
   gateway*, an actor at ``/user/tejido-grains`` with a fixed uid, so any node can
   address any other node's gateway without a lookup.
2. **No forwarding loops.** A gateway always delivers what it receives to its own
   runtime, even when its own view names another owner: two nodes that disagree never
   bounce a message between them; at worst both activate the grain (rule 5).
3. **Asks** travel as a tell to the owner's gateway (`GrainAsk`) and come back as a tell
   to the asker's gateway (`GrainReply`) matched by request number, so a gateway never
   waits for a grain and one slow grain holds up no other. The asker's deadline is the
   ask's timeout (`AskTimeout`); if the owner goes down first the ask fails with
   `NodeLost`. A grain's failure comes back as `ActorFailed` with the cause (a builtin
   exception as itself, others as `RemoteError`), as for remote actors.
4. **Membership changes.** On `MemberUp` / `MemberDown` the ring is rebuilt and every
   local activation whose owner is now another node is deactivated (its state saved
   first, rule 4 of `tejido.actors.virtual`), so the new owner loads the latest state.
   When a node dies its activations die with it; the next message for one of its
   grains, once the others have noticed (``failure_timeout_s``), activates the grain
   on its new owner, which loads the last saved state. Every acknowledged change was
   saved before its acknowledgement, so none is lost; a tell in flight to the dead node
   is lost (at most once), an ask in flight fails (`NodeLost` or `AskTimeout`), and the
   caller may retry it.
5. **Single activation, and its limit.** Views agree except for a few heartbeats after
   a change; during that window two nodes may both activate a grain. The etag makes the
   later writer's save fail with `StateConflict` (it reloads, and the message fails)
   instead of overwriting the other's update, as Orleans' storage ETags do when its
   single-activation guarantee is briefly violated (Orleans docs, "Grain persistence";
   Bykov et al. 2014, section 3.3).

6. **Leaving.** Once a node's runtime has stopped (its grains deactivated and saved)
   while the node is still a member, its gateway passes what it receives on, once, to
   the grain's next owner on the ring (which delivers it locally, rule 2), so callers
   are not refused while the others have not yet seen the node leave.

Messages to grains and their replies cross the wire like remote actor messages: their
types must be registered on every node (``system.types.register(...)``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from tejido.actors.actor import Actor
from tejido.actors.cluster import MemberDown, MemberEvent
from tejido.actors.errors import ActorFailed, ActorStopped, NodeLost, NotSerializable
from tejido.actors.persistence import GrainId
from tejido.actors.placement import HashRing, NoMembers
from tejido.actors.ref import ActorPath, ActorRef
from tejido.actors.remote import RemoteActorRef, _error_from, _fail_frame
from tejido.actors.virtual import is_failure
from tejido.actors.wire import Fail, Payload

if TYPE_CHECKING:
    from tejido.actors.local import LocalActorRef
    from tejido.actors.remote import Remoting
    from tejido.actors.virtual import VirtualActors

__all__ = ["GATEWAY_NAME", "GATEWAY_UID", "ClusterPlacement", "GrainAsk", "GrainReply", "GrainTell"]

log = logging.getLogger("tejido.actors.grains")

#: Where every node's grain gateway lives (rule 1).
GATEWAY_NAME = "tejido-grains"
#: The gateway's fixed incarnation number (far above any uid a system hands out).
GATEWAY_UID = 1 << 62


class GrainTell(msgspec.Struct, frozen=True, array_like=True):
    """A told message for grain ``(grain_type, key)``."""

    grain_type: str
    key: str
    message: Payload


class GrainAsk(msgspec.Struct, frozen=True, array_like=True):
    """An asked message; the reply goes to the gateway of node `reply_to`."""

    request: int
    grain_type: str
    key: str
    message: Payload
    timeout_s: float
    reply_to: str


class GrainReply(msgspec.Struct, frozen=True, array_like=True):
    """The answer to `GrainAsk` number `request`: a value, or a failure."""

    request: int
    value: Payload | None = None
    fail: Fail | None = None


class ClusterPlacement:
    """One node's placement of grains over the cluster (see the module docstring)."""

    def __init__(self, runtime: VirtualActors, hosting: Callable[[str], bool] | None) -> None:
        self.runtime = runtime
        self.system = runtime.system
        remoting = self.system.remoting
        if remoting is None:
            raise ActorStopped(f"actor system {self.system.name}", "grain placement")
        self.remoting: Remoting = remoting
        self.hosting = hosting or (lambda node: True)
        self.ring = HashRing()
        self.gateway: LocalActorRef[Any] | None = None
        self._pending: dict[int, tuple[asyncio.Future[Any], str, object, str]] = {}
        self._next_request = 0
        self._remove_listener: Callable[[], None] | None = None
        self._handovers: set[asyncio.Task[bool]] = set()
        self.forwarded = 0
        self.moved = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.system.types.register(GrainTell, GrainAsk, GrainReply)
        self.gateway = self.system.guardian.spawn_child(
            _Gateway, (self,), {}, GATEWAY_NAME, None, uid=GATEWAY_UID
        )
        self._remove_listener = self.system.cluster.add_listener(self._on_member)
        self._rebuild()

    def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    def _rebuild(self) -> None:
        hosts = [m.node for m in self.system.cluster.members() if self.hosting(m.node)]
        self.ring.replace(hosts)

    def _on_member(self, event: MemberEvent) -> None:
        self._rebuild()
        if isinstance(event, MemberDown):
            node = event.member.node
            for request, (future, owner, what, path) in list(self._pending.items()):
                if owner == node and not future.done():
                    future.set_exception(NodeLost(node, what, path))
                    self._pending.pop(request, None)
        for gid in self.runtime.active:  # rule 4: hand over what is no longer ours
            if self.owner_of(gid) is not None:
                self.moved += 1
                task = self.system.loop.create_task(self.runtime.deactivate(gid))
                self._handovers.add(task)  # held until done (the loop keeps weak refs)
                task.add_done_callback(self._handovers.discard)

    # ------------------------------------------------------------------ placement
    def owner_of(self, gid: GrainId) -> str | None:
        """The node that owns `gid`, or None when it is this one (rule 1)."""
        if not len(self.ring):
            raise NoMembers(f"no member hosts grains: cannot place {gid}")
        owner = self.ring.owner(f"{gid.type}/{gid.key}")
        return None if owner == self.runtime.node else owner

    def gateway_of(self, node: str) -> ActorRef[Any]:
        """The grain gateway of `node` (this node's own, local, when it is this one)."""
        if node == self.runtime.node and self.gateway is not None:
            return self.gateway
        path = ActorPath(self.system.name, ("user", GATEWAY_NAME), GATEWAY_UID, node)
        return RemoteActorRef(self.remoting, path)

    def _grain_path(self, gid: GrainId, node: str) -> str:
        return f"tejido://{self.system.name}@{node}/grains/{gid.type}/{gid.key}"

    # ------------------------------------------------------------------ sending
    def forward_tell(self, owner: str, gid: GrainId, message: object) -> None:
        payload = self.remoting.encode_value(message)  # NotSerializable here, in the sender
        self.forwarded += 1
        self.gateway_of(owner).tell(GrainTell(gid.type, gid.key, payload))

    async def forward_ask(self, owner: str, gid: GrainId, message: object, timeout_s: float) -> Any:
        payload = self.remoting.encode_value(message)
        path = self._grain_path(gid, owner)
        if self.system.cluster.member(owner) is None:
            raise NodeLost(owner, message, path)
        self._next_request += 1
        request = self._next_request
        future: asyncio.Future[Any] = self.system.loop.create_future()
        bucket = self.system.ask_deadlines.add(
            future,
            ActorPath(self.system.name, ("grains", gid.type, gid.key), 0, owner),
            message,
            timeout_s,
        )
        self._pending[request] = (future, owner, message, path)
        try:
            self.forwarded += 1
            self.gateway_of(owner).tell(
                GrainAsk(request, gid.type, gid.key, payload, timeout_s, self.runtime.node)
            )
            return await future
        finally:
            bucket.pop(future, None)
            self._pending.pop(request, None)

    # ------------------------------------------------------------------ receiving
    def _grain_class(self, grain_type: str) -> Any:
        cls = self.runtime.classes.get(grain_type)
        if cls is None:
            raise NotSerializable(
                f"grain type {grain_type!r} is not registered on node {self.runtime.node} "
                "(grains.register(...) on every node)"
            )
        return cls

    def _successor(self, gid: GrainId) -> str | None:
        """The member that will own `gid` once this node has gone (rule 6)."""
        for node in self.ring.preference(f"{gid.type}/{gid.key}", 2):
            if node != self.runtime.node:
                return node
        return None

    def _pass_on(self, gid: GrainId, frame: GrainTell | GrainAsk) -> bool:
        """Rule 6: while this node's runtime is stopped, hand `frame` to the successor."""
        if not self.runtime.closed:
            return False
        successor = self._successor(gid)
        if successor is None:
            return False
        self.forwarded += 1
        self.gateway_of(successor).tell(frame)
        return True

    def on_tell(self, frame: GrainTell) -> None:
        gid = GrainId(frame.grain_type, frame.key)
        if self._pass_on(gid, frame):
            return
        try:
            cls = self._grain_class(frame.grain_type)
            message = self.remoting.decode_value(frame.message)
            self.runtime.deliver_tell(cls, gid, message)  # rule 2: here, whatever our view
        except (NotSerializable, ActorStopped) as exc:
            log.warning("%s: tell for grain %s dropped: %s", self.runtime.node, gid, exc)

    def on_ask(self, frame: GrainAsk) -> None:
        gid = GrainId(frame.grain_type, frame.key)
        if self._pass_on(gid, frame):
            return  # the successor answers the asker directly
        reply_to = self.gateway_of(frame.reply_to)
        try:
            cls = self._grain_class(frame.grain_type)
            message = self.remoting.decode_value(frame.message)
            future = self.runtime.deliver_ask(cls, gid, message, frame.timeout_s)
        except Exception as exc:  # refused here: the asker hears why at once
            reply_to.tell(GrainReply(frame.request, fail=_fail_frame(frame.request, exc)))
            return

        def answer(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                return
            error: BaseException | None = done.exception()
            if error is None:
                result = done.result()
                if is_failure(result):
                    error = ActorFailed(f"grain {gid}", message, result.error)
                else:
                    try:
                        reply_to.tell(
                            GrainReply(frame.request, value=self.remoting.encode_value(result))
                        )
                    except NotSerializable as exc:
                        error = exc
                    else:
                        return
            reply_to.tell(GrainReply(frame.request, fail=_fail_frame(frame.request, error)))

        future.add_done_callback(answer)

    def on_reply(self, frame: GrainReply) -> None:
        pending = self._pending.get(frame.request)
        if pending is None or pending[0].done():
            return  # answered after its deadline: dropped
        future, _, what, path = pending
        if frame.fail is not None:
            future.set_exception(_error_from(frame.fail, what, path))
            return
        try:
            value = None if frame.value is None else self.remoting.decode_value(frame.value)
        except NotSerializable as exc:
            future.set_exception(exc)
            return
        future.set_result(value)


class _Gateway(Actor[GrainTell | GrainAsk | GrainReply]):
    """A node's grain gateway (rule 1): hands each frame to its placement, never waits."""

    def __init__(self, placement: ClusterPlacement) -> None:
        self.placement = placement

    async def receive(self, message: GrainTell | GrainAsk | GrainReply) -> Any:
        match message:
            case GrainTell():
                self.placement.on_tell(message)
            case GrainAsk():
                self.placement.on_ask(message)
            case GrainReply():
                self.placement.on_reply(message)
        return None
