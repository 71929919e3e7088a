"""Coordination recipes as pure, sans-I/O client state machines over the store's API.

Each recipe's decision logic is written once here and driven twice: by the asyncio client
on real clusters (`tejido.recipes`) and by simulated client processes
(`tejido.sim.specs.recipes`). A recipe is an object with three methods, each returning the
next `Action`:

- ``start()``: the first action;
- ``on_result(result)``: the store answered the last `Send` (a response or a `StoreError`);
- ``on_change()``: something changed in the range of the last `Wait`.

Actions: `Send` (send this request: range, put, delete or txn), `Wait` (wake me when any
key in ``[key, range_end)`` changes at a revision >= ``start_revision``; ``count`` is how
many keys the range held just before, so a poller can tell a deletion), `Done` (finished,
with a value) and `Failed` (finished, with a `RecipeError`).

Rules (after etcd's ``client/v3/concurrency`` Mutex and Election and the ``contrib/recipes``
of etcd 3.5, re-derived here; etcd.io/docs/v3.5/dev-guide/api_concurrency_reference_v3):

1. **Ordered acquisition** (lock, read-write lock, semaphore, election): a contender puts
   ``<name>/<lease id>`` attached to its lease in a transaction that only creates it if it
   is missing (a retry finds the key instead of making a second one) and lists the whole
   prefix in the same revision. Contenders are ordered by their key's create revision. A
   lock is held when no key with a lower create revision remains; a semaphore of N when
   fewer than N do. A waiter watches only its predecessor (the newest earlier key), so a
   release wakes one waiter, not all of them (no herd); a semaphore waiter watches the
   prefix. After every wake-up the prefix is listed again, and a waiter whose own key is
   gone (its lease expired) fails with `SessionExpired`.
2. **The fencing token** is the create revision of the holder's key: revisions only grow,
   so a later holder always has a larger token, and a holder's token never changes while
   it holds. A store write is *guarded* by comparing the holder key's create revision with
   the token (`guarded_txn`): it applies only while that very key exists, so a holder
   whose lease expired (and whose key was deleted) cannot write any more, even if it does
   not know it yet. A resource outside the store uses `FencedResource`: it rejects a token
   older than the newest it has seen (M. Kleppmann, "How to do distributed locking", 2016).
3. **Election** is ordered acquisition whose value is the candidate's proposal; the
   leader's term is its key's create revision (rule 2); proclaim is a guarded put.
4. **Counter**: compare-and-swap on the key's mod revision, retried with the value the
   failed transaction read in the same revision.
5. **Queue** (at-least-once): items are ``<name>/items/<id>`` ordered by create revision;
   a consumer claims the oldest unclaimed item by creating ``<name>/claims/<id>`` with its
   own lease, only if the claim key is missing and the item still exists. Acknowledging
   deletes item and claim together, only while the claim is still ours; a consumer that
   dies loses its lease, its claims vanish and the items are delivered again.
6. **Barriers**: a barrier is one key (waiters wait for its deletion); a double barrier of
   N puts ``<name>/waiters/<lease>``, and whoever sees N waiters creates ``<name>/ready``;
   leaving deletes the waiter key and waits until no waiter key is left.

No function here reads a clock, draws randomness or does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, Union

from tejido.core.errors import TejidoError
from tejido.mvcc.api import (
    Compare,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    Result,
    StoreError,
    TxnRequest,
    TxnResponse,
    prefix_end,
)

__all__ = [
    "Acquire",
    "Action",
    "Claim",
    "ClaimLost",
    "ClaimedItem",
    "CounterAdd",
    "DoubleBarrierEnter",
    "DoubleBarrierLeave",
    "Done",
    "Failed",
    "FencedResource",
    "Holding",
    "NotHolder",
    "RecipeError",
    "Send",
    "SessionExpired",
    "StaleToken",
    "Wait",
    "WaitDeleted",
    "ack_txn",
    "contender_key",
    "election_blockers",
    "guard",
    "guarded_txn",
    "leader_of",
    "lock_blockers",
    "read_blockers",
    "semaphore_blockers",
    "write_blockers",
]

T = TypeVar("T")


# ---------------------------------------------------------------- errors


class RecipeError(TejidoError):
    """A recipe could not do what was asked; the message says what and why."""


class SessionExpired(RecipeError):
    """Our key (and so our place in line, or our hold) is gone: the lease expired."""


class NotHolder(RecipeError):
    """A guarded write did not apply: the lock (or leadership) is no longer ours."""


class StaleToken(RecipeError):
    """A `FencedResource` refused a token older than one it has already seen."""


class ClaimLost(RecipeError):
    """A queue item's claim expired before the acknowledgement; it will be redelivered."""


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    request: RequestOp


@dataclass(frozen=True, slots=True)
class Wait:
    key: bytes
    range_end: bytes
    start_revision: int
    count: int
    """Keys in the range at ``start_revision - 1`` (a poller's baseline)."""

    def changed(self, kvs: Sequence[KeyValue]) -> bool:
        """Whether a listing of the range taken now shows a change since the baseline."""
        return len(kvs) != self.count or any(kv.mod_revision >= self.start_revision for kv in kvs)


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Failed:
    error: RecipeError


Action = Union[Send, Wait, Done[T], Failed]  # noqa: UP007 (a generic alias needs Union)


def _unexpected(result: Result, what: str) -> Failed:
    if isinstance(result, StoreError):
        if result.code == "lease_not_found":
            return Failed(SessionExpired(f"{what}: the lease is gone ({result.message})"))
        return Failed(RecipeError(f"{what}: the store refused it: {result.code}: {result.message}"))
    return Failed(RecipeError(f"{what}: unexpected answer {type(result).__name__}"))


# ---------------------------------------------------------------- fencing


def guard(key: bytes, token: int) -> Compare:
    """Holds while `key` exists with create revision `token` (rule 2)."""
    return Compare(key=key, target="CREATE", result="EQUAL", create_revision=token)


def guarded_txn(
    key: bytes,
    token: int,
    success: Sequence[RequestOp],
    failure: Sequence[RequestOp] = (),
    compare: Sequence[Compare] = (),
) -> TxnRequest:
    """A transaction that applies `success` only while the holder key `key` still has
    create revision `token` (and every extra `compare` holds)."""
    return TxnRequest(
        compare=[guard(key, token), *compare], success=list(success), failure=list(failure)
    )


class FencedResource:
    """The resource side of fencing: admits an operation carrying `token` only if no newer
    token has been seen; an older one raises `StaleToken` (rule 2). Not thread-safe: the
    resource calls it under its own lock, together with the operation it guards."""

    __slots__ = ("highest",)

    def __init__(self, highest: int = 0) -> None:
        self.highest = highest

    def accepts(self, token: int) -> bool:
        return token >= self.highest

    def admit(self, token: int) -> None:
        if token < self.highest:
            raise StaleToken(
                f"fencing token {token} is older than {self.highest}, already seen: "
                "the lock was taken over since"
            )
        self.highest = token


# ---------------------------------------------------------------- ordered acquisition

Blockers = Callable[[KeyValue, Sequence[KeyValue]], list[KeyValue]]
"""Given our key and every key under the prefix, the earlier keys we must wait for."""


def _earlier(mine: KeyValue, kvs: Sequence[KeyValue]) -> list[KeyValue]:
    return sorted(
        (kv for kv in kvs if kv.create_revision < mine.create_revision),
        key=lambda kv: kv.create_revision,
    )


def lock_blockers(mine: KeyValue, kvs: Sequence[KeyValue]) -> list[KeyValue]:
    """A lock (and an election): every earlier contender."""
    return _earlier(mine, kvs)


election_blockers = lock_blockers
write_blockers = lock_blockers


def read_blockers(prefix: bytes) -> Blockers:
    """A reader of the read-write lock `prefix`: earlier writers only (``<prefix>/w/...``)."""
    writers = prefix.rstrip(b"/") + b"/w/"

    def blockers(mine: KeyValue, kvs: Sequence[KeyValue]) -> list[KeyValue]:
        return [kv for kv in _earlier(mine, kvs) if kv.key.startswith(writers)]

    return blockers


def semaphore_blockers(limit: int) -> Blockers:
    """A semaphore of `limit`: blocked while `limit` or more contenders came first."""

    def blockers(mine: KeyValue, kvs: Sequence[KeyValue]) -> list[KeyValue]:
        earlier = _earlier(mine, kvs)
        return earlier if len(earlier) >= limit else []

    return blockers


def contender_key(prefix: bytes, lease: int, kind: bytes = b"") -> bytes:
    """``<prefix>/<lease in hex>`` (``<prefix>/<kind>/<lease>`` for a read-write lock)."""
    base = prefix.rstrip(b"/") + b"/"
    if kind:
        base += kind + b"/"
    return base + f"{lease:x}".encode()


def leader_of(kvs: Sequence[KeyValue]) -> KeyValue | None:
    """The holder (or elected leader) among the keys of one prefix: the oldest key."""
    return min(kvs, key=lambda kv: kv.create_revision) if kvs else None


@dataclass(frozen=True, slots=True)
class Holding:
    """A successful acquisition: our key, the fencing token, the revision it was seen at."""

    key: bytes
    token: int
    revision: int
    value: bytes = b""


class Acquire:
    """Rule 1: wait in line under `prefix` with `key` (attached to `lease`) until
    `blockers` finds no earlier contender; ends with `Holding`."""

    def __init__(
        self,
        prefix: bytes,
        key: bytes,
        lease: int,
        *,
        value: bytes = b"",
        blockers: Blockers = lock_blockers,
        watch_prefix: bool = False,
    ) -> None:
        self.prefix = prefix.rstrip(b"/") + b"/"
        self.key = key
        self.lease = lease
        self.value = value
        self.blockers = blockers
        self.watch_prefix = watch_prefix
        self.what = f"acquire {key.decode(errors='replace')}"

    def _list(self) -> RangeRequest:
        return RangeRequest(key=self.prefix, range_end=prefix_end(self.prefix))

    def start(self) -> Action[Holding]:
        listing = self._list()
        return Send(
            TxnRequest(
                compare=[Compare(key=self.key, target="CREATE", create_revision=0)],
                success=[PutRequest(key=self.key, value=self.value, lease=self.lease), listing],
                failure=[listing],
            )
        )

    def on_result(self, result: Result) -> Action[Holding]:
        if isinstance(result, TxnResponse):
            listing = result.responses[-1] if result.responses else None
            if not isinstance(listing, RangeResponse):
                return _unexpected(result, self.what)
            return self._decide(listing)
        if isinstance(result, RangeResponse):
            return self._decide(result)
        return _unexpected(result, self.what)

    def on_change(self) -> Action[Holding]:
        return Send(self._list())

    def _decide(self, listing: RangeResponse) -> Action[Holding]:
        mine = next((kv for kv in listing.kvs if kv.key == self.key), None)
        if mine is None:
            return Failed(SessionExpired(f"{self.what}: our key is gone (the lease expired)"))
        blockers = self.blockers(mine, listing.kvs)
        if not blockers:
            return Done(
                Holding(self.key, mine.create_revision, listing.header_revision, mine.value)
            )
        if self.watch_prefix:
            return Wait(
                self.prefix, prefix_end(self.prefix), listing.header_revision + 1, len(listing.kvs)
            )
        return Wait(blockers[-1].key, b"", listing.header_revision + 1, 1)


class WaitDeleted:
    """Wait until `key` does not exist (a barrier's waiters); ends with its revision."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def start(self) -> Action[int]:
        return Send(RangeRequest(key=self.key))

    def on_result(self, result: Result) -> Action[int]:
        if not isinstance(result, RangeResponse):
            return _unexpected(result, "barrier wait")
        if not result.kvs:
            return Done(result.header_revision)
        return Wait(self.key, b"", result.header_revision + 1, 1)

    def on_change(self) -> Action[int]:
        return self.start()


# ---------------------------------------------------------------- double barrier


class DoubleBarrierEnter:
    """Rule 6, entering: ends (with the revision) once `count` waiters have entered."""

    def __init__(self, name: bytes, lease: int, count: int) -> None:
        if count < 1:
            raise RecipeError(f"a double barrier needs at least 1 participant, not {count}")
        self.prefix = name.rstrip(b"/") + b"/"
        self.waiters = self.prefix + b"waiters/"
        self.ready = self.prefix + b"ready"
        self.key = self.waiters + f"{lease:x}".encode()
        self.lease = lease
        self.count = count
        self.entered = False

    def _list(self) -> RangeRequest:
        return RangeRequest(key=self.prefix, range_end=prefix_end(self.prefix))

    def start(self) -> Action[int]:
        return Send(
            TxnRequest(
                success=[PutRequest(key=self.key, lease=self.lease), self._list()],
            )
        )

    def on_result(self, result: Result) -> Action[int]:
        listing: Result | None = result
        if isinstance(result, TxnResponse):
            listing = result.responses[-1] if result.responses else None
        if isinstance(result, PutResponse):
            return Done(result.header_revision)
        if not isinstance(listing, RangeResponse):
            return _unexpected(result, "double barrier enter")
        keys = [kv.key for kv in listing.kvs]
        if self.key not in keys:
            return Failed(SessionExpired("double barrier enter: our waiter key is gone"))
        if self.ready in keys:
            return Done(listing.header_revision)
        if sum(1 for k in keys if k.startswith(self.waiters)) >= self.count:
            return Send(PutRequest(key=self.ready))
        return Wait(self.prefix, prefix_end(self.prefix), listing.header_revision + 1, len(keys))

    def on_change(self) -> Action[int]:
        return Send(self._list())


class DoubleBarrierLeave:
    """Rule 6, leaving: delete our waiter key, wait until none is left, clear ``ready``."""

    def __init__(self, name: bytes, lease: int) -> None:
        self.prefix = name.rstrip(b"/") + b"/"
        self.waiters = self.prefix + b"waiters/"
        self.ready = self.prefix + b"ready"
        self.key = self.waiters + f"{lease:x}".encode()

    def _list(self) -> RangeRequest:
        return RangeRequest(key=self.waiters, range_end=prefix_end(self.waiters))

    def start(self) -> Action[int]:
        return Send(TxnRequest(success=[DeleteRangeRequest(key=self.key), self._list()]))

    def on_result(self, result: Result) -> Action[int]:
        listing: Result | None = result
        if isinstance(result, TxnResponse):
            listing = result.responses[-1] if result.responses else None
        if isinstance(result, DeleteRangeResponse):
            return Done(result.header_revision)
        if not isinstance(listing, RangeResponse):
            return _unexpected(result, "double barrier leave")
        if not listing.kvs:
            return Send(DeleteRangeRequest(key=self.ready))
        return Wait(
            self.waiters, prefix_end(self.waiters), listing.header_revision + 1, len(listing.kvs)
        )

    def on_change(self) -> Action[int]:
        return Send(self._list())


# ---------------------------------------------------------------- counter


class CounterAdd:
    """Rule 4: add `delta` to the decimal integer at `key` (missing = 0); ends with the
    new value."""

    def __init__(self, key: bytes, delta: int) -> None:
        self.key = key
        self.delta = delta
        self.new_value = 0

    def start(self) -> Action[int]:
        return Send(RangeRequest(key=self.key))

    def on_result(self, result: Result) -> Action[int]:
        if isinstance(result, TxnResponse):
            if result.succeeded:
                return Done(self.new_value)
            listing = result.responses[0] if result.responses else None
            if not isinstance(listing, RangeResponse):
                return _unexpected(result, "counter add")
            return self._try(listing)
        if isinstance(result, RangeResponse):
            return self._try(result)
        return _unexpected(result, "counter add")

    def _try(self, listing: RangeResponse) -> Action[int]:
        current = listing.kvs[0] if listing.kvs else None
        raw = current.value if current is not None else b"0"
        try:
            value = int(raw)
        except ValueError:
            return Failed(RecipeError(f"counter {self.key!r} holds {raw!r}, not an integer"))
        self.new_value = value + self.delta
        mod = current.mod_revision if current is not None else 0
        return Send(
            TxnRequest(
                compare=[Compare(key=self.key, target="MOD", mod_revision=mod)],
                success=[PutRequest(key=self.key, value=str(self.new_value).encode())],
                failure=[RangeRequest(key=self.key)],
            )
        )

    def on_change(self) -> Action[int]:
        return self.start()


# ---------------------------------------------------------------- queue


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """A queue item claimed by us: its key and value, our claim key and its revision."""

    key: bytes
    value: bytes
    claim_key: bytes
    claim_revision: int


class Claim:
    """Rule 5: claim the oldest unclaimed item of queue `name` with `lease`."""

    def __init__(self, name: bytes, lease: int) -> None:
        self.prefix = name.rstrip(b"/") + b"/"
        self.items = self.prefix + b"items/"
        self.claims = self.prefix + b"claims/"
        self.lease = lease
        self.candidate: KeyValue | None = None

    def _list(self) -> TxnRequest:
        return TxnRequest(
            success=[
                RangeRequest(key=self.items, range_end=prefix_end(self.items)),
                RangeRequest(key=self.claims, range_end=prefix_end(self.claims)),
            ]
        )

    def claim_key(self, item: bytes) -> bytes:
        return self.claims + item[len(self.items) :]

    def start(self) -> Action[ClaimedItem]:
        self.candidate = None
        return Send(self._list())

    def on_change(self) -> Action[ClaimedItem]:
        return self.start()

    def on_result(self, result: Result) -> Action[ClaimedItem]:
        if not isinstance(result, TxnResponse):
            return _unexpected(result, "queue claim")
        if self.candidate is not None:  # the answer to our claim attempt
            item = self.candidate
            if result.succeeded:
                return Done(
                    ClaimedItem(
                        item.key, item.value, self.claim_key(item.key), result.header_revision
                    )
                )
            return self.start()  # someone else claimed it first, or it was acknowledged
        if len(result.responses) != 2:
            return _unexpected(result, "queue claim")
        items, claims = result.responses
        if not isinstance(items, RangeResponse) or not isinstance(claims, RangeResponse):
            return _unexpected(result, "queue claim")
        claimed = {kv.key for kv in claims.kvs}
        free = [kv for kv in items.kvs if self.claim_key(kv.key) not in claimed]
        if not free:
            return Wait(
                self.prefix,
                prefix_end(self.prefix),
                result.header_revision + 1,
                len(items.kvs) + len(claims.kvs),
            )
        item = min(free, key=lambda kv: kv.create_revision)
        self.candidate = item
        claim = self.claim_key(item.key)
        return Send(
            TxnRequest(
                compare=[
                    Compare(key=claim, target="CREATE", create_revision=0),
                    Compare(key=item.key, target="CREATE", create_revision=item.create_revision),
                ],
                success=[PutRequest(key=claim, lease=self.lease)],
            )
        )


def ack_txn(item: ClaimedItem) -> TxnRequest:
    """Delete an item and our claim on it, only while the claim is still ours (rule 5)."""
    return TxnRequest(
        compare=[guard(item.claim_key, item.claim_revision)],
        success=[DeleteRangeRequest(key=item.key), DeleteRangeRequest(key=item.claim_key)],
    )
