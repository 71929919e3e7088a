"""Blocking twins of the recipes, for code without an event loop.

Each wraps the asyncio recipe and runs it on a `tejido.kv.BlockingClient`'s loop thread
(the session's lease renewal runs there too, so it goes on while the caller blocks).

    with BlockingClient(endpoints) as kv, BlockingSession(kv, ttl=10) as session:
        with BlockingLock(session, "jobs") as lock:
            lock.put("jobs/owner", "me")   # guarded by the fencing token lock.token
"""

from __future__ import annotations

from collections.abc import Iterator

from tejido.kv import BlockingClient
from tejido.recipes.election import Election, Leader
from tejido.recipes.lock import Lock, Semaphore
from tejido.recipes.session import Session

__all__ = ["BlockingElection", "BlockingLock", "BlockingSemaphore", "BlockingSession"]


class BlockingSession:
    def __init__(self, kv: BlockingClient, ttl: int = 10) -> None:
        self.kv = kv
        self.session = Session(kv.client, ttl)

    def open(self) -> BlockingSession:
        self.kv.call(lambda _: self.session.open())
        return self

    def __enter__(self) -> BlockingSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def expired(self) -> bool:
        return self.session.expired

    def close(self) -> None:
        self.kv.call(lambda _: self.session.close())


class BlockingLock:
    def __init__(self, session: BlockingSession, name: bytes | str) -> None:
        self.kv = session.kv
        self.lock = self._make(session.session, name)

    def _make(self, session: Session, name: bytes | str) -> Lock:
        return Lock(session, name)

    @property
    def token(self) -> int:
        return self.lock.token

    @property
    def held(self) -> bool:
        return self.lock.held

    def acquire(self) -> int:
        return self.kv.call(lambda _: self.lock.acquire())

    def release(self) -> None:
        self.kv.call(lambda _: self.lock.release())

    def __enter__(self) -> BlockingLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def put(self, key: bytes | str, value: bytes | str) -> int:
        return self.kv.call(lambda _: self.lock.put(key, value))


class BlockingSemaphore(BlockingLock):
    def __init__(self, session: BlockingSession, name: bytes | str, limit: int) -> None:
        self.kv = session.kv
        self.lock = Semaphore(session.session, name, limit)


class BlockingElection:
    def __init__(self, session: BlockingSession, name: bytes | str) -> None:
        self.kv = session.kv
        self.election = Election(session.session, name)

    @property
    def term(self) -> int:
        return self.election.term

    def campaign(self, value: bytes | str) -> int:
        return self.kv.call(lambda _: self.election.campaign(value))

    def proclaim(self, value: bytes | str) -> None:
        self.kv.call(lambda _: self.election.proclaim(value))

    def resign(self) -> None:
        self.kv.call(lambda _: self.election.resign())

    def leader(self) -> Leader | None:
        return self.kv.call(lambda _: self.election.leader())

    def observe(self) -> Iterator[Leader | None]:
        """Leader changes, blocking between them (close the iterator to stop)."""
        stream = self.election.observe()
        try:
            while True:
                yield self.kv.call(lambda _: anext(stream))
        finally:
            self.kv.call(lambda _: stream.aclose())  # type: ignore[attr-defined]
