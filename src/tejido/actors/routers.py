"""Routers: one reference in front of a pool of identical worker actors.

``pool = system.spawn_pool(RoundRobin(), 4, Worker, arg)`` spawns a pool actor (which
supervises the workers: its ``strategy``, default restart) and 4 workers as its children
(``w0`` .. ``w3``), and returns an ``ActorRef[M]`` that routes each message itself, in the
sender's call, without an extra hop through the pool's mailbox (as Akka's pool routers
do). Routing logics:

- `RoundRobin`: workers in turn.
- `RandomRouting`: a worker drawn from the system's seeded generator.
- `Broadcast`: every worker gets every message; an ask returns the list of the replies in
  worker order (and fails like the first failing worker).
- `ConsistentHash(key)`: messages with equal ``key(message)`` go to the same worker; a
  ring of ``virtual_nodes`` points per worker (BLAKE2b of the worker's path, so the mapping
  is the same in every process) moves only about 1/n of the keys when a worker goes
  (Karger et al., "Consistent hashing and random trees", STOC 1997).

A worker that stops for good (its supervisor's STOP, or stopped by hand) leaves the pool
as it stops, before anyone hears its `Terminated`. With no workers
left, messages are dead letters (reason ``no routees``) and asks fail with `ActorStopped`.
Stopping the pool reference stops the pool and its workers.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from tejido.actors.actor import Actor
from tejido.actors.errors import ActorStopped
from tejido.actors.messages import DeadLetterReason, Terminated, TerminationCause
from tejido.actors.ref import ActorPath, ActorRef
from tejido.actors.supervision import SupervisorStrategy, one_for_one

if TYPE_CHECKING:
    from tejido.actors.cell import ActorCell

__all__ = ["Broadcast", "ConsistentHash", "RandomRouting", "RoundRobin", "Routing"]

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)


class Routing(Generic[M_contra]):
    """Chooses the worker for a message (subclasses below)."""

    broadcast = False

    def select(
        self, message: M_contra, routees: Sequence[ActorRef[Any]], rng: random.Random
    ) -> ActorRef[Any]:
        raise NotImplementedError


class RoundRobin(Routing[object]):
    def __init__(self) -> None:
        self._counter = itertools.count()

    def select(
        self, message: object, routees: Sequence[ActorRef[Any]], rng: random.Random
    ) -> ActorRef[Any]:
        return routees[next(self._counter) % len(routees)]


class RandomRouting(Routing[object]):
    def select(
        self, message: object, routees: Sequence[ActorRef[Any]], rng: random.Random
    ) -> ActorRef[Any]:
        return routees[rng.randrange(len(routees))]


class Broadcast(Routing[object]):
    broadcast = True

    def select(
        self, message: object, routees: Sequence[ActorRef[Any]], rng: random.Random
    ) -> ActorRef[Any]:
        return routees[0]


def _point(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _key_bytes(key: object) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, int):
        return str(key).encode()
    return msgspec.msgpack.encode(key)


class ConsistentHash(Routing[M_contra]):
    """Route by ``key(message)`` on a hash ring (see the module docstring)."""

    def __init__(self, key: Callable[[M_contra], object], *, virtual_nodes: int = 64) -> None:
        if virtual_nodes < 1:
            raise ValueError(f"virtual_nodes must be at least 1, got {virtual_nodes}")
        self.key = key
        self.virtual_nodes = virtual_nodes
        self._ring_of: tuple[ActorRef[Any], ...] = ()
        self._points: list[int] = []
        self._owners: list[ActorRef[Any]] = []

    def _build(self, routees: Sequence[ActorRef[Any]]) -> None:
        ring = sorted(
            (_point(f"{ref.path}#{i}".encode()), str(ref.path), ref)
            for ref in routees
            for i in range(self.virtual_nodes)
        )
        self._points = [point for point, _, _ in ring]
        self._owners = [ref for _, _, ref in ring]
        self._ring_of = tuple(routees)

    def select(
        self, message: M_contra, routees: Sequence[ActorRef[Any]], rng: random.Random
    ) -> ActorRef[Any]:
        if tuple(routees) != self._ring_of:
            self._build(routees)
        index = bisect.bisect(self._points, _point(_key_bytes(self.key(message))))
        return self._owners[index % len(self._owners)]


class _Pool(Actor[Any]):
    """Supervises the workers and drops the ones that stop for good."""

    def __init__(self, strategy: SupervisorStrategy) -> None:
        self.strategy = strategy
        self.routees: list[ActorRef[Any]] = []

    @property
    def supervisor_strategy(self) -> SupervisorStrategy:  # type: ignore[override]
        return self.strategy

    def _child_terminated(self, child: ActorRef[Any]) -> None:
        if child in self.routees:
            self.routees.remove(child)


class PoolRef(ActorRef[M_contra], Generic[M_contra]):
    """The routing reference of a pool (see the module docstring)."""

    __slots__ = ("_cell", "_pool", "_routing")

    def __init__(self, cell: ActorCell, pool: _Pool, routing: Routing[M_contra]) -> None:
        self._cell = cell
        self._pool = pool
        self._routing = routing

    @property
    def path(self) -> ActorPath:
        return self._cell.path

    @property
    def routees(self) -> tuple[ActorRef[Any], ...]:
        return tuple(self._pool.routees)

    def tell(self, message: M_contra) -> None:
        routees = self._pool.routees
        if not routees:
            self._cell.system.dead_letter(message, self._cell.path, DeadLetterReason.NO_ROUTEES)
        elif self._routing.broadcast:
            for ref in tuple(routees):
                ref.tell(message)
        else:
            self._routing.select(message, routees, self._cell.system.rng).tell(message)

    async def _ask(self, message: M_contra, timeout_s: float) -> Any:
        routees = self._pool.routees
        if not routees:
            self._cell.system.dead_letter(message, self._cell.path, DeadLetterReason.NO_ROUTEES)
            raise ActorStopped(str(self._cell.path), message)
        if self._routing.broadcast:
            return list(
                await asyncio.gather(*(ref._ask(message, timeout_s) for ref in tuple(routees)))
            )
        ref = self._routing.select(message, routees, self._cell.system.rng)
        return await ref._ask(message, timeout_s)

    async def stop(self, *, drain: bool = True) -> None:
        await self._cell.request_stop(drain, TerminationCause.STOPPED)

    def _watch(self, watcher: ActorRef[Terminated]) -> None:
        self._cell.ref._watch(watcher)

    def _unwatch(self, watcher: ActorRef[Terminated]) -> None:
        self._cell.ref._unwatch(watcher)


def spawn_pool(
    parent: ActorCell,
    routing: Routing[M],
    size: int,
    actor_class: type[Actor[M]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str | None,
    strategy: SupervisorStrategy | None,
) -> ActorRef[M]:
    """Spawn a pool under `parent` (see the module docstring)."""
    if size < 1:
        raise ValueError(f"a pool needs at least one worker, got size {size}")
    pool_ref = parent.spawn_child(_Pool, (strategy or one_for_one(),), {}, name, None)
    cell = pool_ref._cell
    pool = cell.actor
    if not isinstance(pool, _Pool):  # cannot happen: we just built it
        raise TypeError(f"pool actor of unexpected type {type(pool).__name__}")
    for index in range(size):
        worker = cell.spawn_child(actor_class, args, kwargs, f"w{index}", None)
        pool.routees.append(worker)
    return PoolRef(cell, pool, routing)
