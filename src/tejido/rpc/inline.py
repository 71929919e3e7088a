"""Running implementations inline: a call that does not suspend costs no task.

The server steps an implementation's coroutine once, right where the call frame was
decoded. Rules:

1. If the coroutine finishes without suspending, its outcome is known at once and no task
   is created (the common case for cheap methods).
2. If it suspends, whatever it yielded (a future, or None for a bare yield) is handed with
   the coroutine to a task through `resume`, which forwards results and exceptions
   (cancellation included) exactly as if the task had run the coroutine from the start.
   `resume` returns a coroutine object, not an ``async def`` wrapper, so that a task
   cancelled before its first step throws the cancellation into the suspended coroutine
   (an ``async def`` wrapper would be cancelled before it could forward anything, and
   the implementation would never learn of it). The caller runs the first step inside a
   `contextvars.Context` of the call's own and gives the task that same context, so
   context variables set before and after the suspension are the same ones.
3. `InlineRunner` steps unary implementations through one long-lived driver generator
   that awaits them with ``yield from``: a call that returns without suspending then
   raises no ``StopIteration`` (CPython hands a finished sub-coroutine's value back
   without an exception object, where ``coro.send()`` from Python must raise one). When
   an implementation suspends, the driver, still inside it, becomes that call's (rule 2)
   and the runner starts a fresh driver for the next call.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any, Final

__all__ = ["DONE", "InlineRunner", "resume"]

#: What the driver yields when the implementation finished (rule 3).
DONE: Final = object()


_RUNNING: Final = object()  # `_Resumed.waiting` once the first step has been taken


class _Resumed(Coroutine[Any, Any, Any]):
    """A suspended coroutine continued by a task (rule 2).

    Its first ``send(None)`` hands the task what the coroutine was suspended on, without
    resuming it; after that (and for any ``throw``, the first one included) it forwards
    straight to the coroutine.
    """

    __slots__ = ("coro", "waiting")

    def __init__(
        self, coro: Coroutine[Any, Any, Any] | Generator[Any, Any, Any], waiting: object
    ) -> None:
        self.coro = coro
        self.waiting = waiting

    def send(self, value: Any) -> Any:
        waiting = self.waiting
        if waiting is not _RUNNING:
            self.waiting = _RUNNING
            return waiting
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.waiting = _RUNNING
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        step: Any = self.send
        message: Any = None
        while True:
            try:
                yielded = step(message)
            except StopIteration as stop:
                return stop.value
            try:
                message = yield yielded
                step = self.send
            except BaseException as exc:  # forwarded into the coroutine
                message = exc
                step = self.throw


def resume(
    coro: Coroutine[Any, Any, Any] | Generator[Any, Any, Any], waiting: object
) -> Coroutine[Any, Any, Any]:
    """Continue a coroutine that was stepped once outside a task and suspended on `waiting`.

    The result is given to a task (``loop.create_task(resume(coro, waiting),
    context=...)``); the task waits on whatever the coroutine yielded and forwards
    results and exceptions (cancellation included, even before its first step) into it
    (rule 2).
    """
    return _Resumed(coro, waiting)


class _Outcome:
    """What the last inline call of a driver ended with."""

    __slots__ = ("detached", "failed", "value")

    def __init__(self) -> None:
        #: Set once the driver belongs to a suspended call's task (it then ends with it).
        self.detached = False
        self.failed = False
        self.value: Any = None


@types.coroutine
def _driver(outcome: _Outcome) -> Generator[Any, Any, Any]:
    job = yield DONE
    while True:
        fn, values = job
        try:
            value = yield from fn(*values)
        except Exception as exc:
            if outcome.detached:
                raise
            outcome.failed = True
            outcome.value = exc
        else:
            if outcome.detached:
                return value
            outcome.failed = False
            outcome.value = value
        job = yield DONE


class InlineRunner:
    """Steps unary implementations on a reusable driver (rule 3); one per connection.

    The dispatcher's hot path uses it inline: ``yielded = runner.driver.send((fn,
    values))``; `DONE` means the call finished and `outcome` says how (clear its
    ``value`` once read); anything else means it suspended, and `detach` must be called
    at once. A BaseException escaping ``send`` (only those escape) ends the driver:
    call `restart`.
    """

    __slots__ = ("driver", "outcome")

    def __init__(self) -> None:
        self.outcome = _Outcome()
        self.driver = self._fresh()

    def _fresh(self) -> Generator[Any, Any, Any]:
        self.outcome = _Outcome()
        driver = _driver(self.outcome)
        driver.send(None)
        return driver

    def restart(self) -> None:
        self.driver = self._fresh()

    def detach(self) -> Generator[Any, Any, Any]:
        """The suspended call's coroutine (for `resume`); later calls get a fresh driver."""
        driver = self.driver
        self.outcome.detached = True
        self.driver = self._fresh()
        return driver
