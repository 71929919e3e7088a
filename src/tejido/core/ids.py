"""Identifiers shared by every layer.

They are `NewType`s over `int` so that mypy catches a node id passed where a request id is
expected; at run time they cost nothing.
"""

from __future__ import annotations

from typing import NewType

__all__ = ["NodeId", "ProcessId", "RequestId", "TimerName"]

NodeId = NewType("NodeId", int)
"""A member of a cluster (a replica, a rank, a site). Node ids are small non-negative ints."""

ProcessId = NewType("ProcessId", int)
"""A client process in a history; each has at most one operation outstanding."""

RequestId = NewType("RequestId", int)
"""Identifies one client command so that its reply can be matched to it."""

TimerName = NewType("TimerName", str)
"""A protocol's own name for one of its timers; setting a name again replaces the timer."""
