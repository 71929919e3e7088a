"""A recipe session: one lease, kept alive in the background, shared by the recipes.

Rules (after etcd's ``concurrency.Session``):

1. `open` grants a lease of ``ttl`` seconds; a background task renews it every
   ``ttl / 3`` seconds (the lessor renews it on the leader's clock, `tejido.store.lessor`).
2. The session is **lost** (`lost` is set, `expired` is true) when the store says the
   lease is gone, or when no renewal succeeded for ``ttl`` seconds by our own clock: from
   then on we cannot know that the store still has our keys, so every recipe using the
   session must assume it holds nothing. Keys attached to the lease vanish when it
   expires, which is how a dead holder releases its locks.
3. `close` stops the renewals and revokes the lease (its keys are deleted at once).
4. `guard` runs a coroutine but gives up with `SessionExpired` as soon as the session
   is lost (a waiter whose key expired must not wait forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import TypeVar

from tejido.kv import Client, NotApplied, OutcomeUnknown
from tejido.mvcc.recipes import SessionExpired
from tejido.store.errors import StoreError

__all__ = ["Session"]

T = TypeVar("T")


class Session:
    """Rules in the module docstring. ``async with Session(client, ttl=10) as s: ...``"""

    def __init__(self, client: Client, ttl: int = 10) -> None:
        if ttl < 1:
            raise ValueError(f"a session's ttl is a whole number of seconds >= 1, not {ttl}")
        self.client = client
        self.ttl = ttl
        self.lease = 0
        self.lost = asyncio.Event()
        self.reason = ""
        self._task: asyncio.Task[None] | None = None
        self._last_renewal = 0.0

    @property
    def expired(self) -> bool:
        return self.lost.is_set()

    async def open(self) -> Session:
        sent = time.monotonic()
        reply = await self.client.lease_grant(self.ttl)
        self.lease = reply.id
        self._last_renewal = sent
        self._task = asyncio.get_running_loop().create_task(self._renew())
        return self

    async def __aenter__(self) -> Session:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()

    async def _renew(self) -> None:
        interval = self.ttl / 3
        while not self.lost.is_set():
            # The renewal period, or less after failures: the session is lost (rule 2) as
            # soon as a whole TTL passed without a renewal, not at the next period.
            until_expiry = self.ttl - (time.monotonic() - self._last_renewal)
            await asyncio.sleep(max(0.0, min(interval, until_expiry)))
            sent = time.monotonic()
            left = self.ttl - (sent - self._last_renewal)
            try:
                await asyncio.wait_for(self.client.lease_keepalive(self.lease), max(left, 0.001))
            except StoreError as exc:
                self._lose(f"lease {self.lease:x} is gone: {exc}")
                return
            except (NotApplied, OutcomeUnknown, TimeoutError):
                if time.monotonic() - self._last_renewal >= self.ttl:
                    self._lose(f"lease {self.lease:x} not renewed for {self.ttl} s")
                    return
                continue
            self._last_renewal = sent  # the lease runs from no earlier than when we asked

    async def guard(self, work: Awaitable[T]) -> T:
        """Rule 4."""
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise SessionExpired(f"session lost while waiting: {self.reason}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.lease and not self.lost.is_set():
            with contextlib.suppress(NotApplied, OutcomeUnknown):
                await self.client.lease_revoke(self.lease)
        self._lose("closed")
