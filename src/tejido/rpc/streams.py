"""Both ends of a credit-flow-controlled stream of items (used by clients and servers).

`Inbound` is the receiving end: an async iterator over items that arrive as raw msgpack;
it decodes each one with the stream's item type when the consumer takes it, and grants the
sender more credit once the consumer has taken half a window, so the sender never runs
more than one window ahead of a slow consumer (memory per stream is bounded by the window).

`Outbound` is the sending end's credit counter: `acquire()` waits until a credit is
available, `grant(n)` adds credits (from a `Credit` frame), `close()` wakes a waiting
sender with `ConnectionClosed`-like failure.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from tejido.rpc.errors import BadArguments, ProtocolViolation

__all__ = ["Inbound", "Outbound"]

T = TypeVar("T")


class Inbound(Generic[T]):
    """Receiving end of one stream: push raw items in, iterate decoded items out."""

    __slots__ = (
        "_consumed",
        "_decoder",
        "_done",
        "_error",
        "_grant",
        "_items",
        "_outstanding",
        "_waiter",
        "_what",
        "window",
    )

    def __init__(
        self,
        decoder: msgspec.msgpack.Decoder[Any],
        window: int,
        grant: Callable[[int], None],
        what: str,
    ) -> None:
        self._decoder = decoder
        self.window = window
        self._grant = grant
        self._what = what
        self._items: collections.deque[msgspec.Raw] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._consumed = 0  # taken since the last grant
        self._outstanding = window  # items the sender may still send

    def set_grant(self, grant: Callable[[int], None]) -> None:
        """Where credit grants go (set once the call is open)."""
        self._grant = grant

    @property
    def done(self) -> bool:
        return self._done

    def push(self, raw: msgspec.Raw) -> None:
        """An item arrived; raises `ProtocolViolation` if the sender exceeded its credit."""
        if self._done:
            return
        if self._outstanding <= 0:
            raise ProtocolViolation(
                f"{self._what}: the sender sent more items than the {self.window}-item window"
            )
        self._outstanding -= 1
        self._items.append(raw)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        """No more items will come; `error` (if any) is raised after the buffered items."""
        if self._done:
            return
        self._done = True
        self._error = error
        self._wake()

    def abort(self, error: BaseException) -> None:
        """End at once, dropping buffered items."""
        self._items.clear()
        self._done = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> Inbound[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._done:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter
        raw = self._items.popleft()
        self._consumed += 1
        if self._consumed * 2 >= self.window and not self._done:
            granted, self._consumed = self._consumed, 0
            self._outstanding += granted
            self._grant(granted)
        try:
            item: T = self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise BadArguments(f"{self._what}: an item does not match its type: {exc}") from None
        return item


class Outbound:
    """Sending end's credit: one credit per item, replenished by the receiver."""

    __slots__ = ("_closed", "_credit", "_waiter")

    def __init__(self, window: int) -> None:
        self._credit = window
        self._waiter: asyncio.Future[None] | None = None
        self._closed: BaseException | None = None

    def grant(self, count: int) -> None:
        self._credit += count
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(None)

    def close(self, error: BaseException) -> None:
        self._closed = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(error)

    async def acquire(self) -> None:
        """Take one credit, waiting for the receiver to grant more if none is left."""
        while self._credit <= 0:
            if self._closed is not None:
                raise self._closed
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter
        self._credit -= 1
