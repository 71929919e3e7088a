"""Per-call context: options a caller sets, and the call a server implementation serves.

- `call_options(timeout=..., metadata=...)` is a context manager; calls made inside it (in
  that task, and tasks it starts) use those options. Nested blocks combine: the tighter
  timeout wins and metadata is merged.
- While a server runs an implementation (and its interceptors), `current_call()` returns
  its `CallContext`: service, method, object id, metadata, deadline and the `Peer` (the
  connection the call came on).
- **Deadline propagation**: a call made while serving another call gets at most the time
  left before the served call's deadline, so a chain of nested calls gives up together
  (what gRPC calls deadline propagation). The effective timeout of a call is the
  `call_options` timeout if one is set, else the client's default timeout, capped by the
  time left of the call being served. Deadlines are kept on the event loop's monotonic
  clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "CallContext",
    "CallOptions",
    "Peer",
    "call_options",
    "current_call",
    "effective_timeout",
]


@dataclasses.dataclass(frozen=True, slots=True)
class CallOptions:
    """Options for the calls made inside a `call_options` block."""

    timeout: float | None = None
    metadata: Mapping[str, str] | None = None


_options: contextvars.ContextVar[CallOptions | None] = contextvars.ContextVar(
    "tejido_rpc_call_options", default=None
)
_serving: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "tejido_rpc_serving", default=None
)


@contextlib.contextmanager
def call_options(
    *, timeout: float | None = None, metadata: Mapping[str, str] | None = None
) -> Iterator[CallOptions]:
    """Set a timeout (seconds) and/or metadata for the RPC calls made inside the block."""
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout}")
    outer = _options.get()
    if outer is not None:
        if outer.timeout is not None and (timeout is None or outer.timeout < timeout):
            timeout = outer.timeout
        if outer.metadata:
            metadata = {**outer.metadata, **(metadata or {})}
    options = CallOptions(timeout, dict(metadata) if metadata else None)
    token = _options.set(options)
    try:
        yield options
    finally:
        _options.reset(token)


_peer_ids = itertools.count(1)


class Peer:
    """One client connection as the server sees it (what remote-object leases key on)."""

    __slots__ = ("_callbacks", "address", "closed", "id", "node")

    def __init__(self, address: object, node: str) -> None:
        self.id = next(_peer_ids)
        self.address = address
        #: The node id the client announced in its handshake ("" for plain clients).
        self.node = node
        self.closed = False
        self._callbacks: list[Callable[[Peer], None]] = []

    def on_close(self, callback: Callable[[Peer], None]) -> None:
        """Call `callback(peer)` once the connection is gone (at once if it already is)."""
        if self.closed:
            callback(self)
        else:
            self._callbacks.append(callback)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def __repr__(self) -> str:
        return f"Peer(id={self.id}, address={self.address!r})"


class CallContext:
    """The call a server implementation is serving (see `current_call`).

    A plain slotted class rather than a dataclass: one is built per call on the server's
    hot path.
    """

    __slots__ = ("_extra", "deadline", "metadata", "method", "object_id", "peer", "service")

    def __init__(
        self,
        service: str,
        method: str,
        object_id: str,
        metadata: Mapping[str, str],
        deadline: float | None,
        peer: Peer,
    ) -> None:
        self.service = service
        self.method = method
        self.object_id = object_id
        self.metadata = metadata
        #: Deadline on the event loop clock (``loop.time()``), or None for no deadline.
        self.deadline = deadline
        self.peer = peer
        self._extra: dict[str, Any] | None = None

    @property
    def extra(self) -> dict[str, Any]:
        """Free slot for interceptors (e.g. the authenticated principal)."""
        if self._extra is None:
            self._extra = {}
        return self._extra

    @property
    def extra_used(self) -> bool:
        """Whether anyone has asked for `extra` (the server then never shares this context)."""
        return self._extra is not None

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), None without one."""
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()

    def __repr__(self) -> str:
        target = f"@{self.object_id}" if self.object_id else ""
        return f"CallContext({self.service}{target}.{self.method} from {self.peer!r})"


def current_call() -> CallContext | None:
    """The call being served by the current task, or None outside a server call."""
    return _serving.get()


def effective_timeout(
    default: float | None, loop: asyncio.AbstractEventLoop
) -> tuple[float | None, CallOptions | None]:
    """The timeout for a call starting now, and the caller's options (see the rules above)."""
    options = _options.get()
    timeout = default
    if options is not None and options.timeout is not None:
        timeout = options.timeout
    serving = _serving.get()
    if serving is not None and serving.deadline is not None:
        left = serving.deadline - loop.time()
        if timeout is None or left < timeout:
            timeout = left
    return timeout, options
