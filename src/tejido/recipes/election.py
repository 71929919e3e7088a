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
5. **Losing leadership is reported at once.** `observe` raises `LeadershipLost` (and
   `term` drops to 0) as soon as either happens, whatever it was waiting for:
   - the session is lost (the store says its lease is gone, or no keep-alive got through
     for a whole TTL: `Session` rule 2): our key is gone or may be gone;
   - while we lead, a read of the prefix at a revision at or after our term lacks our key
     (created at our term, so it was deleted since: the lease expired or was revoked, or
     someone deleted the key) although we did not `resign`.
   The error carries the term that ended (0 if we were only a candidate) and the reason.
   A `campaign` still waiting ends with `SessionExpired` (`Session` rule 4). To lead again,
   open a new session and campaign again (`tejido elect` exits 1 instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar, cast

from tejido.mvcc import api
from tejido.mvcc.recipes import (
    Acquire,
    NotHolder,
    SessionExpired,
    contender_key,
    election_blockers,
    leader_of,
)
from tejido.recipes._driver import drive
from tejido.recipes.lock import _leave_line
from tejido.recipes.session import Session
from tejido.store.service import WatchResponse

__all__ = ["Election", "Leader", "LeadershipLost"]

T = TypeVar("T")


class LeadershipLost(SessionExpired):
    """Rule 5: the election's session was lost; ``term`` is the term that ended (0 when we
    were not leading) and ``reason`` why the session was lost."""

    def __init__(self, message: str, term: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.term = term
        self.reason = reason


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
        """Rules 4 and 5."""
        client = self.session.client
        last: Leader | bool | None = False  # False: nothing yielded yet
        while True:
            reply = await self._guarded(client.range(self.prefix, prefix=True))
            kv = leader_of(reply.result.kvs)
            current = None if kv is None else Leader(kv.key, kv.value, kv.create_revision)
            if self._key_gone(reply.header.revision, reply.result.kvs):
                raise self._lost(f"our key {self.key!r} is gone (lease expired or revoked?)")
            if current != last:
                last = current
                yield current
            stream = cast(
                AsyncGenerator[WatchResponse, None],
                client.watch(self.prefix, prefix=True, start_revision=reply.header.revision + 1),
            )
            async with contextlib.aclosing(stream):
                while not (await self._guarded(anext(stream))).events:
                    pass

    async def _guarded(self, work: Awaitable[T]) -> T:
        """Rule 5: `work`, unless the session is lost first."""
        try:
            if self.session.expired:
                close = getattr(work, "close", None)
                if close is not None:
                    close()  # never started: do not leave it un-awaited
                raise SessionExpired(self.session.reason)
            return await self.session.guard(work)
        except SessionExpired:
            raise self._lost(f"session lost: {self.session.reason}") from None

    def _key_gone(self, revision: int, kvs: list[api.KeyValue]) -> bool:
        """Rule 5: we lead, yet a read at or after our term misses the key of our term."""
        term = self.term
        if not term or revision < term:
            return False
        return not any(kv.key == self.key and kv.create_revision == term for kv in kvs)

    def _lost(self, reason: str) -> LeadershipLost:
        term, self.term = self.term, 0
        ended = f"leadership in term {term} ended" if term else "no longer a candidate"
        name = self.name.decode(errors="replace")
        return LeadershipLost(f"election {name!r}: {reason}; {ended}", term, reason)
