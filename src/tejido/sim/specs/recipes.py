"""Fenced locks and leader election on the store, in the simulator: ``tejido sim recipes``.

The cluster: nodes 1-3 run the store (`tejido.raft.RaftNode` with
`tejido.mvcc.StoreStateMachine`, plus a leader-side lessor written here after
`tejido.store.lessor`); nodes 4-6 are lock clients, nodes 7-8 election candidates and
nodes 9-11 contenders for a semaphore of 2, each a simulated process running the same
pure recipe machines as the real client (`tejido.mvcc.recipes.Acquire`). Every fault kind
applies to every node, clients included: a crashed client is a dead holder (its lease
must expire), a paused one stops renewing.

Each client also *stalls* now and then while holding (a garbage-collection pause longer
than its lease: it neither renews nor acts for 1.5 to 3 lease lengths, then carries on as
if nothing happened), which is the case fencing exists for.

What the clients do with the lock: a lock holder acts on a shared resource ``begin``, then
``end`` (the critical section), then releases; a leader acts ``lead`` a few times, then
resigns. Each act carries the fencing token (the lock key's create revision; the leader's
term). In ``recipes`` the resources are `FencedResource`-guarded and refuse stale tokens;
in ``recipes-unfenced`` (deliberately broken, to show the known unsafe interleaving) they
accept everything.

Checked after every event (`FencedExclusion`):

1. No accepted act carries a token older than one already accepted by the same resource
   (a stale holder acting after the next holder began: the interleaving fencing prevents).
2. A token (a term) belongs to one client only: never two holders, never two leaders
   acting with the same term.

Checked at the end:

3. Every acquisition was right at the revision it was decided at: reading the prefix at
   that revision from a replica's MVCC history, the winner's key is the oldest (for the
   semaphore: among the 2 oldest), so the store's reads and the recipe's logic, not only
   the resource, gave mutual exclusion.
4. Liveness: some lock was acquired after the faults healed.

Time scale: a lease TTL unit is `LEASE_UNIT_S` virtual seconds here (0.25 s, so runs stay
short); the real lessor counts whole seconds.

How a run's resources reach the clients: the spec's ``invariants()`` (called once per run,
before any node starts) makes a fresh `World` and the node factory reads it, so every run
starts from empty resources and nothing leaks between seeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import cast

import msgspec

from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered
from tejido.mvcc import api
from tejido.mvcc.machine import StoreStateMachine
from tejido.mvcc.recipes import (
    Acquire,
    Action,
    Done,
    Failed,
    FencedResource,
    Holding,
    Send,
    SessionExpired,
    Wait,
    contender_key,
    semaphore_blockers,
)
from tejido.raft.config import RaftConfig
from tejido.raft.node import RaftNode
from tejido.raft.types import Role
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = [
    "SPECS",
    "FencedExclusion",
    "RecipeClient",
    "SimStoreReplica",
    "World",
    "verify_acquisitions",
]

STORE_NODES = (NodeId(1), NodeId(2), NodeId(3))
LOCK_CLIENTS = (NodeId(4), NodeId(5), NodeId(6))
ELECTION_CLIENTS = (NodeId(7), NodeId(8))
SEMAPHORE_CLIENTS = (NodeId(9), NodeId(10), NodeId(11))
SEMAPHORE_PREFIX = b"semaphores/pool"
SEMAPHORE_LIMIT = 2
LEASE_UNIT_S = 0.25
LEASE_TTL = 2
"""Lease TTL in units: 0.5 virtual seconds."""
LOCK_PREFIX = b"locks/job"
ELECTION_PREFIX = b"election/main"
CALL_TIMEOUT_S = 0.3
POLL_S = 0.03
LESSOR_TICK_S = 0.05
STALL_PROBABILITY = 0.25
CONFIG = RaftConfig(snapshot_threshold_entries=200, snapshot_keep_entries=20)

_LESSOR = TimerName("lessor")
_CALL = TimerName("call")
_POLL = TimerName("poll")
_KEEPALIVE = TimerName("keepalive")
_STEP = TimerName("step")


# ---------------------------------------------------------------- messages


class StoreCall(Message, frozen=True):
    call: int
    op: Operation


class StoreAnswer(Message, frozen=True):
    call: int
    outcome: Outcome


class KeepAlive(Message, frozen=True):
    lease: int


class KeepAliveAnswer(Message, frozen=True):
    lease: int
    found: bool
    leader: bool


# ---------------------------------------------------------------- reported events (traces)


class Acquired(Event, frozen=True):
    prefix: str
    token: int
    revision: int


class Acted(Event, frozen=True):
    resource: str
    what: str
    token: int
    accepted: bool


class Stalled(Event, frozen=True):
    seconds: float


class LeasesExpired(Event, frozen=True):
    ids: list[int]


# ---------------------------------------------------------------- the world of one run


@dataclass(slots=True)
class Act:
    at_s: float
    client: int
    token: int
    what: str
    accepted: bool


@dataclass(slots=True)
class Resource:
    fenced: bool
    fence: FencedResource = field(default_factory=FencedResource)
    log: list[Act] = field(default_factory=list)

    def act(self, at_s: float, client: int, token: int, what: str) -> bool:
        accepted = self.fence.accepts(token) if self.fenced else True
        if accepted and self.fenced:
            self.fence.admit(token)
        self.log.append(Act(at_s, client, token, what, accepted))
        return accepted


@dataclass(slots=True)
class World:
    """The shared resources of one run and what the clients did (for the checks)."""

    fenced: bool
    lock: Resource = field(init=False)
    leader: Resource = field(init=False)
    acquisitions: list[tuple[int, bytes, int, int, float]] = field(default_factory=list)
    """(client, prefix, token, revision decided at, virtual time)."""
    now: float = 0.0

    def __post_init__(self) -> None:
        self.lock = Resource(self.fenced)
        self.leader = Resource(self.fenced)


_current: list[World] = [World(fenced=True)]


# ---------------------------------------------------------------- store replicas


class SimStoreReplica(RaftNode):
    """A store member: Raft + the MVCC machine, answering `StoreCall`s from client nodes,
    with the leader's lessor (`tejido.store.lessor` rules 1-5, on this node's clock)."""

    def __init__(self, env: Env) -> None:
        members = Env(env.node_id, STORE_NODES, env.rng, env.clock)
        super().__init__(members, CONFIG, state_machine=StoreStateMachine)
        self.calls: dict[RequestId, tuple[NodeId, int]] = {}
        self.next_call = 1
        self.deadlines: dict[int, float] = {}
        self.expiring: dict[int, float] = {}
        self.lessor_term = -1

    @property
    def machine(self) -> StoreStateMachine:
        return cast(StoreStateMachine, self.sm)

    def _route(self) -> None:
        replies = self.out.replies
        if not replies:
            return
        for request, outcome in replies:
            caller = self.calls.pop(request, None)
            if caller is not None:
                self.send(caller[0], StoreAnswer(caller[1], outcome))
        replies.clear()

    def on_start(self, recovered: Recovered) -> None:
        super().on_start(recovered)
        self.calls.clear()
        self.deadlines.clear()
        self.expiring.clear()
        self.lessor_term = -1
        self.set_timer(_LESSOR, LESSOR_TICK_S)

    def on_message(self, src: NodeId, message: Message) -> None:
        if isinstance(message, StoreCall):
            request = RequestId(self.next_call)
            self.next_call += 1
            self.calls[request] = (src, message.call)
            self.on_command(request, message.op)
        elif isinstance(message, KeepAlive):
            self._keepalive(src, message.lease)
        else:
            super().on_message(src, message)
        self._route()

    def on_timer(self, name: TimerName) -> None:
        if name == _LESSOR:
            self._tick()
            self.set_timer(_LESSOR, LESSOR_TICK_S)
        else:
            super().on_timer(name)
        self._route()

    def on_durable(self, token: int) -> None:
        super().on_durable(token)
        self._route()

    # the lessor -----------------------------------------------------------------------
    def _sync(self) -> bool:
        if self.role is not Role.LEADER:
            self.deadlines.clear()
            self.expiring.clear()
            self.lessor_term = -1
            return False
        now = self.now()
        leases = {status.id: status.ttl for status in self.machine.leases()}
        if self.lessor_term != self.term:  # rule 4: a new leader renews every lease
            self.deadlines = {i: now + ttl * LEASE_UNIT_S for i, ttl in leases.items()}
            self.lessor_term = self.term
        for lease, ttl in leases.items():
            self.deadlines.setdefault(lease, now + ttl * LEASE_UNIT_S)
        for lease in [i for i in self.deadlines if i not in leases]:
            del self.deadlines[lease]
            self.expiring.pop(lease, None)
        return True

    def _tick(self) -> None:
        if not self._sync():
            return
        now = self.now()
        due = sorted(
            i
            for i, deadline in self.deadlines.items()
            if deadline <= now and now - self.expiring.get(i, -1e9) > 0.5
        )
        if due:
            for lease in due:
                self.expiring[lease] = now
            self.report(LeasesExpired(due))
            command = api.Command(op=api.LeaseExpire(ids=due), time=now)
            data = api.encode_command(command)
            self.on_command(RequestId(0), Operation(api.STORE_OPERATION, data=data))

    def _keepalive(self, src: NodeId, lease: int) -> None:
        if not self._sync():
            self.send(src, KeepAliveAnswer(lease, found=True, leader=False))
            return
        found = any(status.id == lease for status in self.machine.leases())
        if found:
            ttl = next(s.ttl for s in self.machine.leases() if s.id == lease)
            self.deadlines[lease] = self.now() + ttl * LEASE_UNIT_S
            self.expiring.pop(lease, None)
        self.send(src, KeepAliveAnswer(lease, found=found, leader=True))


# ---------------------------------------------------------------- recipe clients


def _write(op: api.Request) -> Operation:
    return Operation(api.STORE_OPERATION, data=api.encode_command(api.Command(op=op)))


def _read(query: api.Query) -> Operation:
    return Operation("read", data=api.encode_query(query))


class RecipeClient(Process):
    """A lock client or an election candidate (module docstring)."""

    def __init__(self, env: Env, world: World, election: bool, semaphore: bool = False) -> None:
        super().__init__(env)
        self.world = world
        self.election = election
        self.semaphore = semaphore
        self.prefix = ELECTION_PREFIX if election else LOCK_PREFIX
        if semaphore:
            self.prefix = SEMAPHORE_PREFIX
        self.resource = world.leader if election else world.lock
        self.rng = cast(random.Random, env.rng)
        self.lease = 0
        self.machine: Acquire | None = None
        self.wait: Wait | None = None
        self.pending: tuple[int, Operation, str] | None = None
        """(call id, operation, purpose) of the call in flight."""
        self.next_call = 1
        self.target = STORE_NODES[0]
        self.holding: Holding | None = None
        self.acts_left = 0
        self.stalled_until = 0.0

    # plumbing -------------------------------------------------------------------------
    def now(self) -> float:
        return self.env.clock()

    def _call(self, op: Operation, purpose: str) -> None:
        call = self.next_call
        self.next_call += 1
        self.pending = (call, op, purpose)
        self.send(self.target, StoreCall(call, op))
        self.set_timer(_CALL, CALL_TIMEOUT_S)

    def _retry(self) -> None:
        """The call timed out or was refused: try it again at another member (every
        request these clients send may be repeated safely: `Acquire`'s create-if-missing
        transaction, deletes, reads; a repeated lease grant leaves an unused lease that
        expires)."""
        if self.pending is None:
            return
        others = [n for n in STORE_NODES if n != self.target]
        self.target = others[self.rng.randrange(len(others))]
        _, op, purpose = self.pending
        self._call(op, purpose)

    def on_start(self, recovered: Recovered) -> None:
        self.target = STORE_NODES[self.rng.randrange(len(STORE_NODES))]
        self._grant()

    def _grant(self) -> None:
        self.lease = 0
        self.holding = None
        self.machine = None
        self._call(_write(api.LeaseGrant(ttl=LEASE_TTL)), "grant")

    def _stalled(self) -> bool:
        return self.now() < self.stalled_until

    # inputs ---------------------------------------------------------------------------
    def on_message(self, src: NodeId, message: Message) -> None:
        if self._stalled():
            return  # a stalled process handles nothing; its calls time out and repeat
        if isinstance(message, KeepAliveAnswer):
            if message.lease == self.lease and not message.leader:
                self.target = STORE_NODES[self.rng.randrange(len(STORE_NODES))]
            return
        if not isinstance(message, StoreAnswer) or self.pending is None:
            return
        if message.call != self.pending[0]:
            return  # a late answer to a call we repeated
        purpose = self.pending[2]
        outcome = message.outcome
        if outcome.type != "ok" or outcome.data is None:
            self.set_timer(_CALL, POLL_S)  # refused (no leader yet): retry shortly
            return
        self.pending = None
        self.cancel_timer(_CALL)
        self._answer(purpose, api.decode_result(outcome.data))

    def on_timer(self, name: TimerName) -> None:
        if self._stalled():
            self.set_timer(name, self.stalled_until - self.now())
            return
        if name == _CALL:
            self._retry()
        elif name == _POLL:
            if self.wait is not None:
                self._call(_read(api.RangeRequest(self.wait.key, self.wait.range_end)), "poll")
        elif name == _KEEPALIVE:
            if self.lease:
                self.send(self.target, KeepAlive(self.lease))
                self.set_timer(_KEEPALIVE, LEASE_TTL * LEASE_UNIT_S / 3)
        elif name == _STEP:
            self._step()

    # the recipe ------------------------------------------------------------------------
    def _answer(self, purpose: str, result: api.Result) -> None:
        if purpose == "grant":
            if isinstance(result, api.LeaseGrantResponse):
                self.lease = result.id
                self.set_timer(_KEEPALIVE, LEASE_TTL * LEASE_UNIT_S / 3)
                self._acquire()
            else:
                self.set_timer(_STEP, 0.05)  # _step grants again when there is no lease
            return
        if purpose == "poll":
            wait = self.wait
            if wait is None or self.machine is None:
                return
            if isinstance(result, api.RangeResponse) and wait.changed(result.kvs):
                self.wait = None
                self._do(self.machine.on_change())
            else:
                self.set_timer(_POLL, POLL_S)
            return
        if purpose == "release":
            self.holding = None
            self.set_timer(_STEP, self.rng.uniform(0.02, 0.2))
            return
        if purpose == "acquire" and self.machine is not None:
            self._do(self.machine.on_result(result))

    def _acquire(self) -> None:
        value = f"candidate {self.node_id}".encode()
        key = contender_key(self.prefix, self.lease)
        if self.semaphore:
            blockers = semaphore_blockers(SEMAPHORE_LIMIT)
            self.machine = Acquire(
                self.prefix, key, self.lease, blockers=blockers, watch_prefix=True
            )
        else:
            self.machine = Acquire(self.prefix, key, self.lease, value=value)
        self._do(self.machine.start())

    def _do(self, action: Action[Holding]) -> None:
        if isinstance(action, Send):
            request = action.request
            if isinstance(request, api.RangeRequest):
                self._call(_read(request), "acquire")
            else:
                self._call(_write(request), "acquire")
        elif isinstance(action, Wait):
            self.wait = action
            self.set_timer(_POLL, POLL_S)
        elif isinstance(action, Done):
            self._won(action.value)
        elif isinstance(action, Failed):
            self.machine = None
            if isinstance(action.error, SessionExpired):
                self._grant()  # our lease is gone: a new one, and back in line
            else:
                raise InvariantViolation("recipe-error", str(action.error))

    def _won(self, holding: Holding) -> None:
        self.holding = holding
        self.machine = None
        self.world.acquisitions.append(
            (self.node_id, self.prefix, holding.token, holding.revision, self.world.now)
        )
        self.acts_left = 3 if self.election else 2
        self.report(Acquired(self.prefix.decode(), holding.token, holding.revision))
        if self.semaphore:  # hold a while, act on nothing (checked through the store)
            self.acts_left = 0
            self.set_timer(_STEP, self.rng.uniform(0.02, 0.2))
            return
        self._step()

    def _step(self) -> None:
        if not self.lease:
            self._grant()
            return
        holding = self.holding
        if holding is None:
            self._acquire()
            return
        if self.acts_left > 0:
            what = "lead" if self.election else ("begin" if self.acts_left == 2 else "end")
            accepted = self.resource.act(self.world.now, self.node_id, holding.token, what)
            name = "leader" if self.election else "lock"
            self.report(Acted(name, what, holding.token, accepted))
            self.acts_left -= 1
            delay = self.rng.uniform(0.01, 0.1)
            if self.rng.random() < STALL_PROBABILITY:
                # A pause longer than the lease: no renewals, no acts, then carry on.
                stall = self.rng.uniform(1.5, 3.0) * LEASE_TTL * LEASE_UNIT_S
                self.stalled_until = self.now() + stall
                self.report(Stalled(round(stall, 6)))
                delay += stall
            self.set_timer(_STEP, delay)
            return
        self._call(_write(api.DeleteRangeRequest(key=holding.key)), "release")


# ---------------------------------------------------------------- checks


class FencedExclusion(Invariant):
    """Rules 1-4 of the module docstring."""

    name = "mutual-exclusion"

    def __init__(self, world: World) -> None:
        self.world = world
        self.seen = {"lock": 0, "leader": 0}
        self.newest = {"lock": (0, 0, 0.0), "leader": (0, 0, 0.0)}
        self.owner: dict[tuple[str, int], int] = {}
        self.acquisitions_seen = 0

    def check(self, sim: Simulator) -> None:
        self.world.now = sim.now
        wins = self.world.acquisitions
        for i in range(self.acquisitions_seen, len(wins)):
            client, prefix, token, revision, _ = wins[i]
            wins[i] = (client, prefix, token, revision, sim.now)
        self.acquisitions_seen = len(wins)
        for kind, resource in (("lock", self.world.lock), ("leader", self.world.leader)):
            log = resource.log
            for act in log[self.seen[kind] :]:
                act.at_s = sim.now  # acted during the event that just ran
                if not act.accepted:
                    continue
                owner = self.owner.setdefault((kind, act.token), act.client)
                if owner != act.client:
                    what = "leaders" if kind == "leader" else "lock holders"
                    raise InvariantViolation(
                        "unique-token",
                        f"two {what} acted with token {act.token}: nodes {owner} and "
                        f"{act.client} (at {act.at_s:.6f}s)",
                    )
                token, client, at = self.newest[kind]
                if act.token < token:
                    raise InvariantViolation(
                        self.name,
                        f"{kind}: node {act.client} acted '{act.what}' with token {act.token} "
                        f"at {act.at_s:.6f}s after node {client} had acted with the newer "
                        f"token {token} at {at:.6f}s (a stale holder acting: its lease "
                        f"had expired and the {kind} had passed on)",
                    )
                if act.token > token:
                    self.newest[kind] = (act.token, act.client, act.at_s)
            self.seen[kind] = len(log)

    def finish(self, sim: Simulator, healthy_from_s: float) -> None:
        replicas = [p for p in sim.processes().values() if isinstance(p, SimStoreReplica)]
        if not replicas:
            return
        verify_acquisitions(max(replicas, key=lambda r: r.machine.revision).machine, self.world)
        lock_wins = [a for a in self.world.acquisitions if a[1] == LOCK_PREFIX]
        if healthy_from_s > 0 and not any(a[4] >= healthy_from_s - 1.0 for a in lock_wins):
            raise InvariantViolation(
                "liveness", f"no lock acquisition after the heal ({healthy_from_s - 1.0:.3f}s)"
            )


_encode_operation = msgspec.msgpack.Encoder().encode
_decode_outcome = msgspec.msgpack.Decoder(Outcome).decode


def verify_acquisitions(machine: StoreStateMachine, world: World) -> int:
    """Rule 3: re-read each acquisition's prefix at its revision; returns how many were
    checked (those the machine has applied)."""
    checked = 0
    for client, prefix, token, revision, at in world.acquisitions:
        if revision > machine.revision:
            continue  # not applied on any live replica yet
        base = prefix + b"/"
        query = api.RangeRequest(key=base, range_end=api.prefix_end(base), revision=revision)
        result = _decode_outcome(machine.read(_encode_operation(_read(query))))
        listing = api.decode_result(result.data) if result.data is not None else None
        if not isinstance(listing, api.RangeResponse):
            raise InvariantViolation("acquisition", f"revision {revision} unreadable: {listing}")
        limit = SEMAPHORE_LIMIT if prefix == SEMAPHORE_PREFIX else 1
        oldest = sorted(kv.create_revision for kv in listing.kvs)[:limit]
        if token not in oldest:
            raise InvariantViolation(
                "acquisition",
                f"node {client} took {prefix.decode()} with token {token} at revision "
                f"{revision} ({at:.6f}s), but the oldest key(s) then: "
                f"{', '.join(map(str, oldest)) or 'none'}",
            )
        checked += 1
    return checked


# ---------------------------------------------------------------- the specs


def _factory(env: Env) -> Process:
    world = _current[0]
    if env.node_id in STORE_NODES:
        return SimStoreReplica(env)
    return RecipeClient(
        env,
        world,
        election=env.node_id in ELECTION_CLIENTS,
        semaphore=env.node_id in SEMAPHORE_CLIENTS,
    )


def _invariants(fenced: bool) -> list[Invariant]:
    world = World(fenced=fenced)
    _current[0] = world
    return [FencedExclusion(world)]


SPECS: list[ProtocolSpec] = [
    ProtocolSpec(
        name="recipes",
        summary="fenced locks and leader election on the store (clients paused past their lease)",
        factory=_factory,
        invariants=lambda: _invariants(fenced=True),
        default_nodes=11,
        min_nodes=11,
    ),
    ProtocolSpec(
        name="recipes-unfenced",
        summary="BROKEN on purpose: the lock and leader resources ignore fencing tokens",
        factory=_factory,
        invariants=lambda: _invariants(fenced=False),
        default_nodes=11,
        min_nodes=11,
        broken=True,
    ),
]
