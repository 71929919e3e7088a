"""Leader election on the store (after etcd's ``concurrency.Election``).

Rules:

1. `campaign` puts ``<name>/<lease>`` with our proposal and waits until every earlier
   candidate's key is gone (`tejido.mvcc.recipes` rule 1); then we lead. The **term** is our
   key's create revision: a later leader always has a larger term, so it fences like a
   lock's token. A campaign that fails or is cancelled deletes its key again.
2. `proclaim` changes our value with a guarded put: it applies only while our key exists
   with our term (`NotHolder` otherwise).
3. `resign` deletes our key; the next candidate takes over. A leader that dies loses its
   key when its lease expires.
4. `observe` yields the leader (key, value, term) each time it changes (a new term or a new
   value), starting with the current one; `None` while nobody leads. It reads the prefix,
   watches it from the next revision, and reads again after each change.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import cast

from tejido.mvcc import api
from tejido.mvcc.recipes import Acquire, NotHolder, contender_key, election_blockers, leader_of
from tejido.recipes._driver import drive
from tejido.recipes.lock import _leave_line
from tejido.recipes.session import Session
from tejido.store.service import WatchResponse

__all__ = ["Election", "Leader"]


@dataclass(frozen=True, slots=True)
class Leader:
    key: bytes
    value: bytes
    term: int


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class Election:
    """Rules in the module docstring."""

    def __init__(self, session: Session, name: bytes | str) -> None:
        self.session = session
        self.name = _bytes(name)
        if not self.name.strip(b"/"):
            raise ValueError("an election needs a non-empty name")
        self.prefix = self.name.rstrip(b"/") + b"/"
        self.term = 0

    @property
    def key(self) -> bytes:
        return contender_key(self.name, self.session.lease)

    @property
    def is_leader(self) -> bool:
        return self.term > 0 and not self.session.expired

    async def campaign(self, value: bytes | str) -> int:
        """Rule 1: block until elected; returns the term."""
        machine = Acquire(
            self.name,
            self.key,
            self.session.lease,
            value=_bytes(value),
            blockers=election_blockers,
        )
        try:
            holding = await self.session.guard(drive(self.session.client, machine))
        except BaseException:
            await _leave_line(self.session, self.key)
            raise
        self.term = holding.token
        if holding.value != _bytes(value):  # we were already a candidate: update our value
            await self.proclaim(value)
        return self.term

    async def proclaim(self, value: bytes | str) -> None:
        """Rule 2."""
        if self.term == 0:
            raise NotHolder(f"election {self.name!r}: not the leader, cannot proclaim")
        put = api.PutRequest(key=self.key, value=_bytes(value), ignore_lease=True)
        reply = await self.session.client.txn(
            api.TxnRequest(
                compare=[api.Compare(key=self.key, target="CREATE", create_revision=self.term)],
                success=[put],
            )
        )
        if not reply.result.succeeded:
            self.term = 0
            raise NotHolder(f"election {self.name!r}: our term ended (the lease expired)")

    async def resign(self) -> None:
        """Rule 3."""
        self.term = 0
        await self.session.client.delete(self.key)

    async def leader(self) -> Leader | None:
        reply = await self.session.client.range(self.prefix, prefix=True)
        kv = leader_of(reply.result.kvs)
        return None if kv is None else Leader(kv.key, kv.value, kv.create_revision)

    async def observe(self) -> AsyncIterator[Leader | None]:
        """Rule 4."""
        client = self.session.client
        last: Leader | bool | None = False  # False: nothing yielded yet
        while True:
            reply = await client.range(self.prefix, prefix=True)
            kv = leader_of(reply.result.kvs)
            current = None if kv is None else Leader(kv.key, kv.value, kv.create_revision)
            if current != last:
                last = current
                yield current
            stream = cast(
                AsyncGenerator[WatchResponse, None],
                client.watch(self.prefix, prefix=True, start_revision=reply.header.revision + 1),
            )
            async with contextlib.aclosing(stream):
                async for response in stream:
                    if response.events:
                        break
