"""Event loops for the RPC runtime: uvloop when it is installed, asyncio's otherwise.

`run(main)` runs a coroutine to completion on a fresh loop (like `asyncio.run`, with
uvloop's faster loop when available); `new_event_loop()` makes one such loop for code
that manages its own (the blocking stub's background thread does); `install()` makes
uvloop the default for plain `asyncio.run` too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_uvloop: Any
__all__ = ["install", "new_event_loop", "run", "uvloop_available"]

T = TypeVar("T")

try:
    import uvloop as _uvloop
except ImportError:  # pragma: no cover - uvloop is a default dependency off Windows
    _uvloop = None


def uvloop_available() -> bool:
    return _uvloop is not None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when installed, else asyncio's default."""
    if _uvloop is not None:
        loop: asyncio.AbstractEventLoop = _uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """Run `main` on a new (uv)loop and return its result, closing the loop afterwards."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


def install() -> None:
    """Make uvloop the default loop for `asyncio.run` and friends (no-op without uvloop)."""
    if _uvloop is not None:
        asyncio.set_event_loop_policy(_uvloop.EventLoopPolicy())
