"""The state every part of the tcp backend's engine shares: `EngineState` and `_Peer`.

`tejido.mpi.engine.Engine` is assembled from mixins (`tejido.mpi.stream`,
`tejido.mpi.matching`, `tejido.mpi.samehost`, `tejido.mpi.failure`), each in its own
module; `EngineState` is their common base. It holds no code: it declares the attributes
`Engine.__init__` sets and, for the type checker only, the methods one part calls on
another, so each part type-checks on its own.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from tejido.mpi import shm
from tejido.mpi.wire import _RBUF, Message

if TYPE_CHECKING:
    from tejido.mpi.requests import TcpRequest

__all__ = ["EngineState"]


class _Peer:
    __slots__ = (
        "alive",
        "bye",
        "cma_sent",
        "cur",
        "events",
        "heard",
        "out",
        "paused",
        "rank",
        "rbuf",
        "rend",
        "rstart",
        "rview",
        "shm_acks",
        "shm_free",
        "shm_jobs",
        "shm_rx",
        "shm_rx_segment",
        "shm_tx",
        "sock",
        "writing",
    )

    def __init__(self, rank: int, sock: socket.socket) -> None:
        self.rank = rank
        self.sock = sock
        self.alive = True
        self.bye = False
        # Outgoing: [views to write, request completed when they are all written].
        self.out: deque[tuple[list[memoryview], TcpRequest | None]] = deque()
        self.writing = False
        self.rbuf = bytearray(_RBUF)
        self.rview = memoryview(self.rbuf)
        self.rstart = 0
        self.rend = 0
        self.cur: Message | None = None
        #: time.monotonic() since when reading is paused at `cur`, a large buffer message
        #: with no receive posted yet (see `tejido.mpi.stream`); None while reading.
        self.paused: float | None = None
        #: The selector events this socket is registered for (0: not registered).
        self.events = selectors.EVENT_READ
        #: time.monotonic() of the last bytes read from this peer (heartbeats or data).
        self.heard = time.monotonic()
        # Shared memory, sending: our segment to it, its free slots, and the buffers
        # still being copied in ([view, bytes copied so far, request]).
        self.shm_tx: shm.Segment | None = None
        self.shm_free: deque[int] = deque(range(shm.SLOTS))
        self.shm_jobs: deque[list[Any]] = deque()
        # Receiving: its segment to us, and the announced messages whose chunks are due.
        self.shm_rx_segment: shm.Segment | None = None
        self.shm_rx: deque[Message] = deque()
        self.shm_acks: list[bytes] = []
        # Cross-memory sends waiting for the receiver's CMA_ACK (views kept alive), in order.
        self.cma_sent: deque[tuple[memoryview, TcpRequest | None]] = deque()


class EngineState:
    """Attributes shared by the engine's parts (set in `Engine.__init__`)."""

    rank: int
    size: int
    shm_job: str | None
    shm_peers: frozenset[int]
    shm_min_bytes: int
    cross_memory: bool
    pid: int
    selector: selectors.BaseSelector
    peers: dict[int, _Peer]
    #: how many of `peers` are still alive (connected)
    live_peers: int
    #: world rank -> why it failed
    failed: dict[int, str]
    posted: dict[int, list[TcpRequest]]
    unexpected: dict[int, list[Message]]
    #: world ranks whose socket is paused at a large unexpected message
    paused_peers: set[int]
    closed: bool
    _wlock: threading.RLock
    heartbeat_timeout_s: float | None
    _beat_stop: threading.Event
    _next_check: float
    _beater: threading.Thread | None

    if TYPE_CHECKING:
        # Implemented by the mixins (and Engine); declared here for the type checker.
        def send(
            self,
            dest: int,
            kind: int,
            ctx: int,
            tag: int,
            payload: memoryview | bytes,
            request: TcpRequest | None,
        ) -> None: ...
        def _queue(
            self, peer: _Peer, views: list[memoryview], request: TcpRequest | None
        ) -> None: ...
        def _write(self, peer: _Peer, views: list[memoryview]) -> list[memoryview]: ...
        def _on_writable(self, peer: _Peer) -> None: ...
        def _flush(self, peer: _Peer) -> None: ...
        def _on_readable(self, peer: _Peer) -> None: ...
        def _parse_header(self, peer: _Peer) -> None: ...
        def _fill(self, peer: _Peer, message: Message) -> None: ...
        def _read_more_into(self, peer: _Peer, message: Message) -> bool: ...
        def post_recv(self, request: TcpRequest) -> None: ...
        def _check_sources(self, request: TcpRequest) -> None: ...
        def _finalized(self, world: int) -> bool: ...
        def _why(self, world: int) -> str: ...
        @staticmethod
        def _matches(request: TcpRequest, message: Message) -> bool: ...
        def _bind(self, request: TcpRequest, message: Message) -> None: ...
        def _discard(self, message: Message) -> None: ...
        def _arrived(self, message: Message, lazy: bool = False) -> bool: ...
        def _set_interest(self, peer: _Peer) -> None: ...
        def _pause(self, peer: _Peer) -> None: ...
        def _unpause(self, peer: _Peer) -> None: ...
        def _payload_done(self, message: Message) -> None: ...
        def _send_shm(
            self,
            peer: _Peer,
            ctx: int,
            tag: int,
            payload: memoryview | bytes,
            request: TcpRequest | None,
        ) -> None: ...
        def _pump(self, peer: _Peer, first: bytes = b"") -> None: ...
        def _announce(self, peer: _Peer, frames: list[bytes]) -> bool: ...
        def _shm_announced(self, peer: _Peer, note: Message) -> None: ...
        def _cma_announced(self, peer: _Peer, note: Message) -> None: ...
        def _shm_chunk(self, peer: _Peer, slot: int, nbytes: int) -> None: ...
        @staticmethod
        def _close_segments(peer: _Peer) -> None: ...
        def _beat(self) -> None: ...
        def _check_heartbeats(self) -> None: ...
        def _lost(self, peer: _Peer, why: str) -> None: ...
        def _fail_waiting_on(self, world: int, why: str) -> None: ...
        def check_group(self, members: frozenset[int]) -> None: ...
        def progress(self, timeout: float | None) -> None: ...
