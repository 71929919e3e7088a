"""Local delivery: the mailbox items, the local `ActorRef`, and ask deadlines.

1. A mailbox holds told messages as they are (no envelope, no copy, no encoding) and three
   kinds of control items: `_Ask` (a message plus the future its reply resolves), the stop
   marker, and `_Escalate` (a child's failure its parent takes on as its own).
2. `LocalActorRef.tell` appends to the recipient's mailbox when called on the system's
   loop thread and hands the message to the loop with ``call_soon_threadsafe`` otherwise;
   ``ask`` must run on the loop (`WrongThread` otherwise).
3. Ask timeouts (`AskDeadlines`) are never early and at most ``RESOLUTION_S`` late.
"""

from __future__ import annotations

import asyncio
import math
import threading
import types
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from tejido.actors.errors import AskTimeout, UnexpectedReply, WrongThread
from tejido.actors.messages import Terminated, TerminationCause
from tejido.actors.ref import DEFAULT_ASK_TIMEOUT_S, ActorPath, ActorRef
from tejido.actors.timers import TimerMessage

if TYPE_CHECKING:
    from tejido.actors.cell import ActorCell

__all__ = ["AskDeadlines", "LocalActorRef", "fail_ask", "message_of"]

M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")

_NEW, _RUNNING, _SUSPENDED, _RESTARTING, _STOPPING, _STOPPED = range(6)
_get_ident = threading.get_ident


@types.coroutine
def _yield() -> Generator[None, None, None]:
    """Give the loop one turn (what ``asyncio.sleep(0)`` does, minus a frame)."""
    yield


class _Control:
    """Base of the mailbox items that are not plain told messages."""

    __slots__ = ()


class _Ask(_Control):
    __slots__ = ("future", "message")

    def __init__(self, message: object, future: asyncio.Future[Any]) -> None:
        self.message = message
        self.future = future


class _Stop(_Control):
    __slots__ = ()


class _Escalate(_Control):
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_STOP = _Stop()


def message_of(item: object) -> object:
    """The user's message inside a mailbox item."""
    if isinstance(item, _Ask | TimerMessage):
        return item.message
    return item


def fail_ask(item: object, error: Exception) -> None:
    if isinstance(item, _Ask) and not item.future.done():
        item.future.set_exception(error)


_Bucket = dict[asyncio.Future[Any], tuple[ActorPath, object, float]]


class AskDeadlines:
    """Ask timeouts without a loop timer per ask.

    Deadlines are rounded *up* to a slot of `RESOLUTION_S`; one loop timer per slot fails
    the asks still waiting in it with `AskTimeout`. So an ask never times out early and at
    most `RESOLUTION_S` late, and a busy asker costs a dict insert and delete per ask.
    """

    RESOLUTION_S = 0.01

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, _Bucket] = {}

    def add(
        self, future: asyncio.Future[Any], path: ActorPath, message: object, timeout_s: float
    ) -> _Bucket:
        slot = math.ceil((self._loop.time() + timeout_s) / self.RESOLUTION_S)
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = {}
            self._loop.call_at(slot * self.RESOLUTION_S, self._expire, slot)
        bucket[future] = (path, message, timeout_s)
        return bucket

    def _expire(self, slot: int) -> None:
        bucket = self._slots.pop(slot, None)
        if not bucket:
            return
        for future, (path, message, timeout_s) in list(bucket.items()):
            if not future.done():
                future.set_exception(AskTimeout(str(path), message, timeout_s))


class LocalActorRef(ActorRef[M_contra], Generic[M_contra]):
    """A reference to an actor in this process: delivery is a deque append, no encoding."""

    __slots__ = ("_cell", "_path")

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell
        self._path = cell.path

    @property
    def path(self) -> ActorPath:
        return self._path

    def tell(self, message: M_contra) -> None:
        cell = self._cell
        if _get_ident() != cell.system.thread_id:
            cell.system.loop.call_soon_threadsafe(cell.enqueue, message)
            return
        cell.enqueue(message)

    @overload
    async def ask(self, message: M_contra, *, timeout: float = ...) -> Any: ...

    @overload
    async def ask(self, message: M_contra, *, timeout: float = ..., expect: type[R]) -> R: ...

    async def ask(
        self,
        message: M_contra,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT_S,
        expect: type[Any] | None = None,
    ) -> Any:
        # The same contract as ActorRef.ask, in one coroutine frame (the hot path).
        cell = self._cell
        system = cell.system
        if _get_ident() != system.thread_id:
            raise WrongThread(
                f"ask {self._path} from another thread: use the blocking facade "
                "(tejido.actors.BlockingActorSystem) or run on the system's loop"
            )
        future: asyncio.Future[Any] = cell.loop.create_future()
        bucket = system.ask_deadlines.add(future, self._path, message, timeout)
        try:
            cell.enqueue(_Ask(message, future))
            reply = await future
        finally:
            del bucket[future]
        if expect is not None and not isinstance(reply, expect):
            raise UnexpectedReply(str(self._path), expect, reply)
        return reply

    async def _ask(self, message: M_contra, timeout_s: float) -> Any:
        return await self.ask(message, timeout=timeout_s)

    async def stop(self, *, drain: bool = True) -> None:
        await self._cell.request_stop(drain, TerminationCause.STOPPED)

    def _watch(self, watcher: ActorRef[Terminated]) -> None:
        cell = self._cell
        if cell.state == _STOPPED:
            watcher.tell(Terminated(self, cell.stop_cause or TerminationCause.STOPPED))
        else:
            if cell.watchers is None:
                cell.watchers = {}
            cell.watchers[watcher] = None

    def _unwatch(self, watcher: ActorRef[Terminated]) -> None:
        if self._cell.watchers:
            self._cell.watchers.pop(watcher, None)

    @property
    def is_alive(self) -> bool:
        """Not stopped (a stopping actor still counts as alive)."""
        return self._cell.state != _STOPPED
