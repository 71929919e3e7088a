"""The tcp backend's progress engine: sockets to every other rank, message matching, requests.

One `Engine` per rank holds a connection to every other rank, the posted receives and
unexpected messages of every communicator context, and the failure state. Its parts live
in their own modules and are mixed in:
- `tejido.mpi.wire`: the wire format (frame header, message kinds), `Message`;
- `tejido.mpi.requests`: `TcpRequest`;
- `tejido.mpi.stream`: reading and writing the sockets;
- `tejido.mpi.matching`: matching messages with receives (MPI's non-overtaking rule);
- `tejido.mpi.samehost`: large buffers to same-host ranks through shared memory or
  cross-memory reads;
- `tejido.mpi.failure`: lost connections, heartbeats, `RankFailed`;
- `tejido.mpi.state`: the attributes they share (`EngineState`) and per-peer state.

Progress happens only inside MPI calls, as in most MPI implementations: a blocking call
(or `Request.wait`/`test`) runs `progress`, which waits on a selector for readable or
writable sockets. Reading and writing interleave, so two ranks that both send large
messages before receiving do not deadlock: each one's unread data lands in the other's
unexpected queue.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable

from tejido.core.errors import LocalProtocolError
from tejido.mpi import cma, shm
from tejido.mpi.api import (
    MPIError,
)
from tejido.mpi.failure import FailureDetection
from tejido.mpi.matching import Matching
from tejido.mpi.requests import TcpRequest
from tejido.mpi.samehost import SameHostTransfers
from tejido.mpi.state import EngineState, _Peer
from tejido.mpi.stream import SocketStreams
from tejido.mpi.wire import (
    BUFFER,
    BYE,
    HEADER_SIZE,
    HEARTBEAT,
    OBJECT,
    READY,
    SHM_MIN_BYTES,
    Message,
    as_bytes_view,
    encode_header,
)

__all__ = [
    "BUFFER",
    "BYE",
    "HEADER_SIZE",
    "HEARTBEAT",
    "OBJECT",
    "READY",
    "SHM_MIN_BYTES",
    "Engine",
    "Message",
    "TcpRequest",
    "as_bytes_view",
    "encode_header",
]


class Engine(SocketStreams, Matching, SameHostTransfers, FailureDetection, EngineState):
    """Sockets, queues and matching for one rank of a tcp-backend job.

    `heartbeat_timeout_s` (None or 0: off) is how long a peer may stay silent before it
    counts as failed (see the module docstring). Buffers of at least `shm_min_bytes` to
    the `shm_peers` (world ranks on this host) go through shared memory, in segments
    named after `shm_job` (see `tejido.mpi.shm`).
    """

    def __init__(
        self,
        rank: int,
        size: int,
        socks: dict[int, socket.socket],
        *,
        heartbeat_timeout_s: float | None = None,
        shm_job: str | None = None,
        shm_peers: Iterable[int] = (),
        shm_min_bytes: int = SHM_MIN_BYTES,
        cross_memory: bool = True,
    ) -> None:
        self.rank = rank
        self.size = size
        # Shared memory with same-host peers for buffers of at least shm_min_bytes.
        self.shm_job = shm_job
        self.shm_peers = frozenset(shm_peers) if shm_job and shm.available() else frozenset()
        self.shm_min_bytes = shm_min_bytes
        # Single-copy reads of same-host peers' buffers where the kernel allows it.
        self.cross_memory = bool(self.shm_peers) and cross_memory and cma.available()
        self.pid = os.getpid()
        self.selector = selectors.DefaultSelector()
        self.peers: dict[int, _Peer] = {}
        for peer_rank, sock in socks.items():
            sock.setblocking(False)
            peer = _Peer(peer_rank, sock)
            self.peers[peer_rank] = peer
            self.selector.register(sock, selectors.EVENT_READ, peer)
        self.live_peers = len(self.peers)
        self.failed: dict[int, str] = {}  # world rank -> why
        self.posted: dict[int, list[TcpRequest]] = {}
        self.unexpected: dict[int, list[Message]] = {}
        self.paused_peers: set[int] = set()
        self.closed = False
        # Held while a frame is being put on a socket (and while one is closed), so the
        # heartbeat thread never writes into the middle of a message.
        self._wlock = threading.RLock()
        self.heartbeat_timeout_s = heartbeat_timeout_s or None
        self._beat_stop = threading.Event()
        self._next_check = 0.0
        self._beater: threading.Thread | None = None
        if self.heartbeat_timeout_s is not None and self.peers:
            if self.heartbeat_timeout_s < 0:
                raise LocalProtocolError(
                    f"heartbeat timeout must be positive, got {heartbeat_timeout_s}"
                )
            self._beater = threading.Thread(
                target=self._beat, name=f"tejido-mpi-heartbeat-{rank}", daemon=True
            )
            self._beater.start()

    def progress(self, timeout: float | None) -> None:
        """Handle whatever the sockets have ready, waiting at most `timeout` seconds."""
        if not self.peers:
            return
        if self.paused_peers:
            timeout = self._check_paused(timeout)
        try:
            events = self.selector.select(timeout)
        except InterruptedError:
            return
        for key, mask in events:
            peer: _Peer = key.data
            if mask & selectors.EVENT_READ and peer.alive:
                self._on_readable(peer)
                if peer.shm_acks and peer.alive:
                    acks, peer.shm_acks = peer.shm_acks, []
                    self._announce(peer, acks)
                if peer.shm_jobs and peer.shm_free:
                    self._pump(peer)
            if mask & selectors.EVENT_WRITE and peer.alive:
                self._on_writable(peer)
        beat = self.heartbeat_timeout_s
        if beat is not None:
            now = time.monotonic()
            if now >= self._next_check:  # a few checks per timeout are enough
                self._next_check = now + beat / 8
                self._check_heartbeats()

    def wait(
        self,
        done: Callable[[], bool],
        group: Iterable[int] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Make progress until `done()`; with `group` (world ranks), fail fast if one died."""
        deadline = None if timeout is None else time.monotonic() + timeout
        members = None if group is None else frozenset(group)
        beat = self.heartbeat_timeout_s
        while not done():
            if members is not None:
                self.check_group(members)
            if not self.live_peers:
                if done():
                    return
                if members is not None:
                    self.check_group(members)
                raise MPIError("no other rank is reachable and the operation cannot complete")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise MPIError(f"operation timed out after {timeout} s")
            if beat is not None:
                # Wake up often enough to notice a silent peer within the timeout.
                left = beat / 4 if left is None else min(left, beat / 4)
            self.progress(left)

    def finalize(self, timeout: float) -> None:
        """Say BYE to every peer, flush, wait for theirs (or their loss), close."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + timeout
        for world in list(self.paused_peers):  # a BYE may wait behind a paused message
            self._unpause(self.peers[world])
        # Buffers still passing through shared memory go out before the BYE that says
        # nothing more will come.
        while any(p.alive and (p.shm_jobs or p.cma_sent) for p in self.peers.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.progress(min(left, 0.05) if self.heartbeat_timeout_s else left)
        crashed = sum(1 << world for world in self.failed if world < 64)
        for peer in self.peers.values():
            if peer.alive:
                with contextlib.suppress(MPIError):
                    self.send(peer.rank, BYE, crashed, 0, b"", None)

        def settled() -> bool:
            return all(
                not p.alive or (p.bye and not p.out and not p.shm_jobs and not p.cma_sent)
                for p in self.peers.values()
            )

        beat = self.heartbeat_timeout_s
        while not settled() and time.monotonic() < deadline:
            left = max(0.0, deadline - time.monotonic())
            self.progress(left if beat is None else min(left, beat / 4))
        self._beat_stop.set()
        if self._beater is not None:
            self._beater.join()
        with self._wlock:
            for peer in self.peers.values():
                self._close_segments(peer)
                if peer.alive:
                    peer.alive = False
                    self.live_peers -= 1
                    with contextlib.suppress(KeyError, ValueError):
                        self.selector.unregister(peer.sock)
                    with contextlib.suppress(OSError):
                        peer.sock.close()
            self.selector.close()
