"""Barriers, a double barrier, an at-least-once FIFO queue and a shared counter.

The decision logic is in `tejido.mvcc.recipes` (rules 4 to 6); this module runs it with
the asyncio client.

- `Barrier` (etcd ``recipes.Barrier``): `hold` creates the barrier key, `release`
  deletes it, `wait` blocks while it exists. No lease: the barrier outlives its holder.
- `DoubleBarrier` (etcd ``recipes.DoubleBarrier``): `enter` blocks until `count`
  participants have entered; `leave` blocks until every participant has left. Each
  participant's key is on its session's lease, so a participant that dies before leaving
  is counted out when its lease expires. One-shot: use a fresh name per round.
- `Queue`: FIFO by creation order, **at least once**: `get` claims the oldest unclaimed
  item with a key on the consumer's lease; `ack` removes item and claim together, only
  while the claim is still ours (`ClaimLost` otherwise: the item was or will be delivered
  again); a consumer that dies loses its claims with its lease and the items are
  redelivered. A consumer must therefore be ready to see an item twice.
- `Counter`: `add` is a compare-and-swap loop on the key's mod revision.
"""

from __future__ import annotations

import uuid

from tejido.kv import Client
from tejido.mvcc import api
from tejido.mvcc.recipes import (
    Claim,
    ClaimedItem,
    ClaimLost,
    CounterAdd,
    DoubleBarrierEnter,
    DoubleBarrierLeave,
    WaitDeleted,
    ack_txn,
    guarded_txn,
)
from tejido.recipes._driver import drive
from tejido.recipes.session import Session

__all__ = ["Barrier", "ClaimedItem", "Counter", "DoubleBarrier", "Queue"]


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class Barrier:
    def __init__(self, client: Client, name: bytes | str) -> None:
        self.client = client
        self.key = _bytes(name)

    async def hold(self) -> None:
        await self.client.put(self.key, b"")

    async def release(self) -> None:
        await self.client.delete(self.key)

    async def wait(self) -> int:
        """Block until the barrier key does not exist; returns the revision seen."""
        return await drive(self.client, WaitDeleted(self.key))


class DoubleBarrier:
    def __init__(self, session: Session, name: bytes | str, count: int) -> None:
        self.session = session
        self.name = _bytes(name)
        self.count = count

    async def enter(self) -> int:
        machine = DoubleBarrierEnter(self.name, self.session.lease, self.count)
        return await self.session.guard(drive(self.session.client, machine))

    async def leave(self) -> int:
        machine = DoubleBarrierLeave(self.name, self.session.lease)
        return await drive(self.session.client, machine)


class Queue:
    def __init__(self, session: Session, name: bytes | str) -> None:
        self.session = session
        self.name = _bytes(name).rstrip(b"/")
        self.items = self.name + b"/items/"

    async def put(self, value: bytes | str) -> bytes:
        """Append an item; returns its key."""
        key = self.items + uuid.uuid4().hex.encode()
        await self.session.client.put(key, _bytes(value))
        return key

    async def get(self) -> ClaimedItem:
        """Claim the oldest unclaimed item, waiting for one if the queue is empty."""
        machine = Claim(self.name, self.session.lease)
        return await self.session.guard(drive(self.session.client, machine))

    async def ack(self, item: ClaimedItem) -> None:
        """Done with `item`: remove it; `ClaimLost` if our claim expired meanwhile."""
        reply = await self.session.client.txn(ack_txn(item))
        if not reply.result.succeeded:
            raise ClaimLost(
                f"the claim on {item.key!r} expired before the acknowledgement: "
                "the item is delivered again"
            )

    async def nack(self, item: ClaimedItem) -> None:
        """Give `item` back at once (it keeps its place: the oldest is served first)."""
        await self.session.client.txn(
            guarded_txn(
                item.claim_key, item.claim_revision, [api.DeleteRangeRequest(key=item.claim_key)]
            )
        )

    async def size(self) -> int:
        reply = await self.session.client.range(self.items, prefix=True, count_only=True)
        return reply.result.count


class Counter:
    def __init__(self, client: Client, key: bytes | str) -> None:
        self.client = client
        self.key = _bytes(key)

    async def add(self, delta: int = 1) -> int:
        """Add `delta` atomically; returns the new value."""
        return await drive(self.client, CounterAdd(self.key, delta))

    async def get(self) -> int:
        kv = await self.client.get(self.key)
        return int(kv.value) if kv is not None else 0
