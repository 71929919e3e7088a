"""Supervision: what a parent does when one of its children fails.

A child *fails* when its ``receive`` (or ``started`` / ``restarted``) raises. The child is
suspended (its mailbox keeps filling, nothing is processed), an asker of the failing
message gets `ActorFailed`, and the parent's `SupervisorStrategy` picks a `Directive` with
its ``decider(exception)``:

- ``RESUME``: drop the failing message, keep the instance and its state, go on.
- ``RESTART``: replace the instance with a fresh one built from the same class and
  arguments; the reference, the mailbox (minus the failing message), the watchers and the
  stash (put back at the front of the mailbox) are kept; timers are cancelled and the
  children of the old instance stopped. The old instance hears ``stopping`` and
  ``stopped``, the new one ``restarted(reason)``.
- ``STOP``: stop the child; its watchers get `Terminated` with cause ``FAILED``.
- ``ESCALATE``: the parent fails with the same exception, and its own parent decides.
  Escalating from a top-level actor stops it (there is no one above to decide) and logs
  the error.

``ONE_FOR_ONE`` applies the directive to the failing child only; ``ALL_FOR_ONE`` applies
RESTART and STOP to all the parent's children (RESUME still only to the failing one), for
children that only make sense together.

Limits: at most ``max_restarts`` restarts of a child within ``within_s`` seconds; the next
failure in that window gets ``on_limit`` (``STOP`` or ``ESCALATE``) instead. ``backoff``
delays each restart exponentially: attempt ``n`` (the restarts already in the window)
waits ``min(max_s, min_s * 2**n) * (1 + jitter * u)``, ``u`` uniform in [0, 1) from the
system's seeded generator. The rules follow Erlang/OTP supervisors (intensity and period)
and Akka's supervision and BackoffSupervisor (doc.akka.io, "Fault Tolerance"); the code is
our own.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Backoff",
    "Directive",
    "RestartTracker",
    "SupervisorStrategy",
    "Scope",
    "all_for_one",
    "one_for_one",
    "restart_always",
]


class Directive(enum.Enum):
    RESUME = "resume"
    RESTART = "restart"
    STOP = "stop"
    ESCALATE = "escalate"


class Scope(enum.Enum):
    ONE_FOR_ONE = "one-for-one"
    ALL_FOR_ONE = "all-for-one"


def restart_always(exc: Exception) -> Directive:
    """The default decider: restart whatever went wrong."""
    return Directive.RESTART


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential restart delay: ``min(max_s, min_s * 2**attempt) * (1 + jitter * u)``."""

    min_s: float
    max_s: float
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.min_s <= self.max_s:
            raise ValueError(f"backoff needs 0 <= min_s <= max_s, got {self.min_s}, {self.max_s}")
        if self.jitter < 0:
            raise ValueError(f"backoff jitter must not be negative, got {self.jitter}")

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.min_s * 2.0 ** min(attempt, 64))
        return base * (1.0 + self.jitter * rng.random())


@dataclass(frozen=True, slots=True)
class SupervisorStrategy:
    """How a parent treats its children's failures (see the module docstring)."""

    decider: Callable[[Exception], Directive] = restart_always
    scope: Scope = Scope.ONE_FOR_ONE
    max_restarts: int | None = 10
    within_s: float = 60.0
    on_limit: Directive = Directive.STOP
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if self.max_restarts is not None and self.max_restarts < 0:
            raise ValueError(f"max_restarts must not be negative, got {self.max_restarts}")
        if self.within_s <= 0:
            raise ValueError(f"within_s must be positive, got {self.within_s}")
        if self.on_limit not in (Directive.STOP, Directive.ESCALATE):
            raise ValueError(f"on_limit must be STOP or ESCALATE, got {self.on_limit}")


def one_for_one(
    decider: Callable[[Exception], Directive] = restart_always,
    *,
    max_restarts: int | None = 10,
    within_s: float = 60.0,
    on_limit: Directive = Directive.STOP,
    backoff: Backoff | None = None,
) -> SupervisorStrategy:
    """A one-for-one strategy: a directive applies to the failing child only."""
    return SupervisorStrategy(decider, Scope.ONE_FOR_ONE, max_restarts, within_s, on_limit, backoff)


def all_for_one(
    decider: Callable[[Exception], Directive] = restart_always,
    *,
    max_restarts: int | None = 10,
    within_s: float = 60.0,
    on_limit: Directive = Directive.STOP,
    backoff: Backoff | None = None,
) -> SupervisorStrategy:
    """An all-for-one strategy: RESTART and STOP apply to every child of the parent."""
    return SupervisorStrategy(decider, Scope.ALL_FOR_ONE, max_restarts, within_s, on_limit, backoff)


@dataclass(slots=True)
class RestartTracker:
    """A child's restart times within the strategy's window (times are passed in)."""

    times: deque[float] = field(default_factory=deque)

    def attempt(self, strategy: SupervisorStrategy, now: float) -> int | None:
        """Record a restart at `now` and return its attempt number (0 = first in the
        window), or None when the limit is reached (nothing recorded)."""
        times = self.times
        while times and times[0] <= now - strategy.within_s:
            times.popleft()
        if strategy.max_restarts is not None and len(times) >= strategy.max_restarts:
            return None
        times.append(now)
        return len(times) - 1
