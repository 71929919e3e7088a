"""The tcp backend's `Request`: a send or receive in flight, completed by the engine.

A receive request carries what it matches (context, world source or ANY_SOURCE, tag, and
for buffers the caller's memory); the engine fills in what it matched (`status`) and either
a value or an error. `wait`/`test` run the engine's progress loop until it is done, then
raise the error, unpickle an object receive's bytes, or return; they copy the match into a
caller's `Status` when one is passed (mpi4py's signatures).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tejido.core.errors import LocalProtocolError
from tejido.mpi.api import (
    ANY_SOURCE,
    ANY_TAG,
    MessageMismatch,
    MPIError,
    Request,
    Status,
)
from tejido.mpi.wire import OBJECT, Message

if TYPE_CHECKING:
    from tejido.mpi.engine import Engine

__all__ = ["TcpRequest"]


class TcpRequest(Request):
    """A tcp-backend request; completed by the engine, waited on through it."""

    __slots__ = (
        "_engine",
        "buffer",
        "ctx",
        "done",
        "error",
        "kind",
        "matched",
        "message",
        "rank_of",
        "source",
        "tag",
        "value",
    )

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.done = False
        self.error: BaseException | None = None
        self.value: Any = None
        #: What a receive matched: (source rank in its communicator, tag, size in bytes).
        self.matched: tuple[int, int, int] | None = None
        # receive side
        self.kind = 0
        self.ctx = 0
        self.source = ANY_SOURCE  # world rank or ANY_SOURCE
        self.tag = ANY_TAG
        self.buffer: memoryview | None = None
        self.message: Message | None = None
        self.rank_of: dict[int, int] = {}

    @property
    def status(self) -> Status | None:
        """What a receive matched (None for sends and until matched)."""
        matched = self.matched
        return None if matched is None else Status(*matched)

    def finish(self, value: Any = None) -> None:
        self.done = True
        self.value = value

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self.error = error

    def wait(self, status: Status | None = None) -> Any:
        if not self.done:
            self._engine.wait(lambda: self.done)
        value = self._result()
        if status is not None:
            self._fill(status)
        return value

    def test(self, status: Status | None = None) -> tuple[bool, Any]:
        if not self.done:
            self._engine.progress(0.0)
        if not self.done:
            return False, None
        value = self._result()
        if status is not None:
            self._fill(status)
        return True, value

    def _fill(self, status: Status) -> None:
        """Copy what this receive matched into the caller's `status` (a send: unchanged)."""
        matched = self.matched
        if matched is not None:
            status.source, status.tag, status.count = matched

    def _result(self) -> Any:
        if self.error is not None:
            raise self.error
        message = self.message
        if message is not None and self.kind == OBJECT:
            self.message = None
            data = message.data
            if message.kind != OBJECT:
                raise MessageMismatch(
                    f"recv (objects) matched a buffer message from rank "
                    f"{self.rank_of.get(message.source, message.source)} tag {message.tag}; "
                    "receive it with Recv(buffer)"
                )
            # Pickles come only from ranks of this job that proved they hold its secret
            # (see tejido.mpi.setup), never from an unauthenticated connection.
            self.value = pickle.loads(data if data is not None else b"")  # noqa: S301
        return self.value

    @classmethod
    def _waitany(cls, requests: Sequence[Request], status: Status | None = None) -> tuple[int, Any]:
        reqs = [r for r in requests if isinstance(r, TcpRequest)]
        if len(reqs) != len(requests):
            raise LocalProtocolError("waitany: requests from different backends")
        engine = reqs[0]._engine
        engine.wait(lambda: any(r.done for r in reqs))
        for index, r in enumerate(reqs):
            if r.done:
                return index, r.wait(status)
        raise MPIError("waitany: no request completed")  # unreachable: wait returned
