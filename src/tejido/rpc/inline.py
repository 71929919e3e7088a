"""Running implementations inline: a call that does not suspend costs no task.

The server steps an implementation's coroutine once, right where the call frame was
decoded. Rules:

1. If the coroutine finishes without suspending, its outcome is known at once and no task
   is created (the common case for cheap methods).
2. If it suspends, whatever it yielded (a future, or None for a bare yield) is handed with
   the coroutine to a task running `resume`, which forwards results and exceptions
   (cancellation included) exactly as if the task had run the coroutine from the start.
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


class _Yield:
    """Awaitable that hands one value to the running task, then returns what it sends."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


async def resume(coro: Coroutine[Any, Any, Any] | Generator[Any, Any, Any], waiting: object) -> Any:
    """Continue a coroutine that was stepped once outside a task and suspended on `waiting`.

    The task running this wrapper waits on whatever the coroutine yielded and forwards
    results and exceptions (cancellation included) into it (rule 2).
    """
    while True:
        try:
            sent = await _Yield(waiting)
        except BaseException as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting = coro.send(sent)
        except StopIteration as stop:
            return stop.value


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
