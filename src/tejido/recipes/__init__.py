"""Coordination recipes built on the replicated store's client.

Fenced locks, read-write locks, semaphores, leader election, barriers, an at-least-once
queue and a shared counter, written against :mod:`tejido.kv` (docs/recipes.md). The
decision logic of each is a pure state machine in `tejido.mvcc.recipes`, which the
simulator also runs (``tejido sim recipes``).
"""

from tejido.mvcc.recipes import (
    ClaimLost,
    FencedResource,
    NotHolder,
    RecipeError,
    SessionExpired,
    StaleToken,
)
from tejido.recipes.coordination import Barrier, ClaimedItem, Counter, DoubleBarrier, Queue
from tejido.recipes.election import Election, Leader, LeadershipLost
from tejido.recipes.lock import Lock, ReadWriteLock, Semaphore
from tejido.recipes.session import Session

__all__ = [
    "Barrier",
    "ClaimLost",
    "ClaimedItem",
    "Counter",
    "DoubleBarrier",
    "Election",
    "FencedResource",
    "Leader",
    "LeadershipLost",
    "Lock",
    "NotHolder",
    "Queue",
    "ReadWriteLock",
    "RecipeError",
    "Semaphore",
    "Session",
    "SessionExpired",
    "StaleToken",
]
