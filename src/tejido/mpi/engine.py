"""The tcp backend's progress engine: sockets to every other rank, message matching, requests.

Wire format (after the connection is set up and authenticated, see `tejido.mpi.setup`):
every message is one tejido frame (`tejido.net.frames`: a 4-byte big-endian length, then
that many bytes) whose payload starts with a fixed 13-byte header ``kind, context, tag``
followed by the message bytes: a pickled object (kind OBJECT) or a buffer's raw bytes
(kind BUFFER), never re-encoded.

Progress happens only inside MPI calls, as in most MPI implementations: a blocking call
(or `Request.wait`/`test`) runs `progress`, which waits on a selector for readable or
writable sockets. Reading and writing interleave, so two ranks that both send large
messages before receiving do not deadlock: each one's unread data lands in the other's
unexpected queue.

Matching rules:
- A message is matched when its header arrives, in arrival order per connection (one TCP
  stream per pair of ranks), against the receives posted on its context in the order they
  were posted; unmatched messages queue in arrival order. This is the non-overtaking rule
  of MPI 4.0 §3.5: two messages from one sender that both match a receive are received in
  the order sent.
- A buffer message matched by a posted buffer receive is read straight into the
  receiver's buffer (`socket.recv_into`), with no intermediate copy or Python object.
- A message for a context this rank does not know yet (a communicator the sender created
  first) waits in that context's unexpected queue.

Failure rules: a connection that closes without the peer's BYE means the peer died. Every
pending receive naming it, every receive from ANY_SOURCE on a communicator containing it,
every unfinished send to it, and every later operation that needs it fails with
`RankFailed(rank)`; collectives fail as soon as any member of their communicator has
failed (`wait(..., group=...)`). A peer that said BYE (finalized) and closed has its
already-received messages delivered; receives that would need more from it fail too.
A BYE names the ranks its sender saw crash, so a survivor that hears of a finalized
neighbour before its own connection to the crashed rank breaks still names the crashed
rank.

Heartbeats (hung ranks): a closed connection only reveals a dead process. With a
`heartbeat_timeout_s`, a daemon thread sends a 17-byte HEARTBEAT frame to every peer every
``timeout / 4`` seconds, whatever the program is doing (a rank busy computing still beats;
a stopped or wedged process does not, since SIGSTOP stops all of its threads). Every read
from a peer counts as hearing from it; while waiting inside an MPI call a rank checks
every peer it has not said goodbye to, and one silent for longer than the timeout is
treated exactly like a closed connection: `RankFailed(rank, "no heartbeat for T s ...")`.
The thread writes a frame only when no frame to that peer is half written (both sides
hold the engine's write lock), so heartbeats never split a message on the wire. A frame
the kernel only half takes is queued like any other, finished by the progress loop.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tejido.core.errors import LocalProtocolError
from tejido.mpi import cma, shm
from tejido.mpi.api import (
    ANY_SOURCE,
    ANY_TAG,
    MessageMismatch,
    MPIError,
    RankFailed,
    Request,
    Status,
)

__all__ = ["BUFFER", "BYE", "HEARTBEAT", "OBJECT", "READY", "Engine", "Message", "TcpRequest"]

OBJECT = 1
BUFFER = 2
BYE = 3
READY = 4
HEARTBEAT = 5
#: A buffer whose bytes travel through shared memory (see tejido.mpi.shm); then its chunks.
SHM = 6
SHM_CHUNK = 7
SHM_ACK = 8
#: A buffer the receiver reads straight from the sender's memory (tejido.mpi.cma); its ack.
CMA = 9
CMA_ACK = 10
_CMA_NOTE = struct.Struct("<QQQ")  # sender's pid, buffer address, length
#: Buffers at least this large go through shared memory to a peer on the same host.
SHM_MIN_BYTES = 256 * 1024
_SHM_SIZE = struct.Struct("<Q")

_LEN = struct.Struct(">I")
_META = struct.Struct("<BQi")
#: Frame length prefix plus the message header.
HEADER_SIZE = _LEN.size + _META.size
_RBUF = 256 * 1024
#: Payloads up to this size are copied behind their header and written in one piece.
_SMALL = 16 * 1024
_MAX_FRAME = 2**32 - 1


def encode_header(kind: int, ctx: int, tag: int, nbytes: int) -> bytes:
    size = _META.size + nbytes
    if size > _MAX_FRAME:
        raise LocalProtocolError(f"a message is at most {_MAX_FRAME - _META.size} bytes")
    return _LEN.pack(size) + _META.pack(kind, ctx, tag)


def as_bytes_view(buf: Any) -> memoryview:
    """A flat, byte-format view of any contiguous buffer (numpy array, bytes, memoryview)."""
    try:
        view = memoryview(buf)
    except TypeError:
        raise LocalProtocolError(
            f"expected a buffer (numpy array, bytes, bytearray, memoryview), "
            f"got {type(buf).__name__}"
        ) from None
    if not view.contiguous:
        raise LocalProtocolError("buffers must be contiguous (use numpy.ascontiguousarray)")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class Message:
    """One incoming message: header known, payload possibly still arriving."""

    __slots__ = ("ctx", "data", "direct", "filled", "kind", "nbytes", "request", "source", "tag")

    def __init__(self, kind: int, ctx: int, tag: int, source: int, nbytes: int) -> None:
        self.kind = kind
        self.ctx = ctx
        self.tag = tag
        self.source = source  # world rank
        self.nbytes = nbytes
        self.filled = 0
        self.data: bytearray | memoryview | None = None
        self.request: TcpRequest | None = None
        #: True when `data` is the matched receive's own buffer.
        self.direct = False

    @property
    def complete(self) -> bool:
        return self.filled == self.nbytes


class TcpRequest(Request):
    """A tcp-backend request; completed by the engine, waited on through it."""

    __slots__ = (
        "_engine",
        "_status",
        "buffer",
        "ctx",
        "done",
        "error",
        "kind",
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
        self._status: Status | None = None
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
        return self._status

    def finish(self, value: Any = None, status: Status | None = None) -> None:
        self.done = True
        self.value = value
        self._status = status

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
        matched = self._status
        if matched is not None:
            status.source = matched.source
            status.tag = matched.tag
            status.count = matched.count

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


class _Peer:
    __slots__ = (
        "alive",
        "bye",
        "cma_sent",
        "cur",
        "heard",
        "out",
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


class Engine:
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
        self.failed: dict[int, str] = {}  # world rank -> why
        self.posted: dict[int, list[TcpRequest]] = {}
        self.unexpected: dict[int, list[Message]] = {}
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

    # ------------------------------------------------------------------ heartbeats
    def _beat(self) -> None:
        """The heartbeat thread: one HEARTBEAT frame to every live peer per interval."""
        assert self.heartbeat_timeout_s is not None
        interval = self.heartbeat_timeout_s / 4
        frame = encode_header(HEARTBEAT, 0, 0, 0)
        while not self._beat_stop.wait(interval):
            with self._wlock:
                for peer in self.peers.values():
                    # A queued frame means bytes are on their way anyway (and one may be
                    # half written): no heartbeat is needed, and none may be interleaved.
                    if not peer.alive or peer.out:
                        continue
                    try:
                        sent = peer.sock.send(frame)
                    except OSError:  # full (would block) or broken: the main loop sees it
                        continue
                    if sent < len(frame):
                        peer.out.append(([memoryview(frame)[sent:]], None))
                        peer.writing = True
                        self.selector.modify(
                            peer.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, peer
                        )

    def _check_heartbeats(self) -> None:
        """Treat every peer silent for longer than the timeout as failed."""
        limit = self.heartbeat_timeout_s
        if limit is None:
            return
        now = time.monotonic()
        for peer in list(self.peers.values()):
            if peer.alive and not peer.bye and now - peer.heard > limit:
                self._lost(
                    peer,
                    f"no heartbeat for {limit:g} s (the process is stopped, hung or unreachable)",
                )

    # ------------------------------------------------------------------ sending
    def send(
        self,
        dest: int,
        kind: int,
        ctx: int,
        tag: int,
        payload: memoryview | bytes,
        request: TcpRequest | None,
    ) -> None:
        """Start sending one message; `request` completes when it is all in the kernel."""
        if dest == self.rank:
            message = Message(kind, ctx, tag, self.rank, len(payload))
            message.data = bytearray(payload)
            message.filled = message.nbytes
            self._arrived(message)
            if request is not None:
                request.finish()
            return
        peer = self.peers[dest]
        if dest in self.failed:
            raise RankFailed(dest, self.failed[dest])
        if not peer.alive:
            raise RankFailed(dest, self.failed.get(dest, "it finalized"))
        nbytes = len(payload)
        if kind == BUFFER and nbytes >= max(1, self.shm_min_bytes) and dest in self.shm_peers:
            view = memoryview(payload)
            where = cma.address(view) if self.cross_memory else None
            if where is not None:
                note = _CMA_NOTE.pack(self.pid, where, nbytes)
                self._queue(
                    peer, [memoryview(encode_header(CMA, ctx, tag, len(note)) + note)], None
                )
                peer.cma_sent.append((view, request))  # done at the receiver's CMA_ACK
                return
            self._send_shm(peer, ctx, tag, payload, request)
            return
        header = encode_header(kind, ctx, tag, nbytes)
        if nbytes <= _SMALL:
            # One contiguous write: cheaper than a two-part sendmsg for small messages.
            views = [memoryview(header + bytes(payload))]
        else:
            views = [memoryview(header), memoryview(payload)]
        self._queue(peer, views, request)

    def _queue(self, peer: _Peer, views: list[memoryview], request: TcpRequest | None) -> None:
        """Write a frame now as far as the socket takes it; queue the rest in order."""
        with self._wlock:
            if not peer.out:
                views = self._write(peer, views)
                if peer.alive is False:
                    raise RankFailed(peer.rank, self.failed.get(peer.rank, "connection lost"))
                if not views:
                    if request is not None:
                        request.finish()
                    return
            peer.out.append((views, request))
            if not peer.writing:
                peer.writing = True
                self.selector.modify(peer.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, peer)

    # ------------------------------------------------------------------ shared memory
    def _send_shm(
        self,
        peer: _Peer,
        ctx: int,
        tag: int,
        payload: memoryview | bytes,
        request: TcpRequest | None,
    ) -> None:
        """Announce a buffer (matched like any message), then pass it slot by slot."""
        if peer.shm_tx is None:
            assert self.shm_job is not None
            try:
                peer.shm_tx = shm.Segment(
                    shm.segment_path(self.shm_job, self.rank, peer.rank), create=True
                )
            except OSError:
                # No room (or no permission) in /dev/shm: this peer gets sockets only.
                self.shm_peers = self.shm_peers - {peer.rank}
                self.send(peer.rank, BUFFER, ctx, tag, payload, request)
                return
        view = memoryview(payload)
        header = encode_header(SHM, ctx, tag, _SHM_SIZE.size) + _SHM_SIZE.pack(len(view))
        peer.shm_jobs.append([view, 0, request])
        self._pump(peer, header)

    def _pump(self, peer: _Peer, first: bytes = b"") -> None:
        """Fill free slots with the next bytes due and announce them (SHM_CHUNK frames).

        The first chunk is announced as soon as it is copied (with `first`, a SHM header,
        in the same write) so the receiver can start copying it out while this rank fills
        the others; the rest go in one more write. Each write wakes the peer up, which
        on a busy host costs more than the frames themselves.
        """
        segment = peer.shm_tx
        frames = [first] if first else []
        announced = False
        while peer.shm_jobs and peer.shm_free and peer.alive and segment is not None:
            job = peer.shm_jobs[0]
            view, done, request = job
            slot = peer.shm_free.popleft()
            take = min(shm.SLOT_BYTES, len(view) - done)
            segment.slot(slot, take)[:] = view[done : done + take]
            job[1] = done + take
            if job[1] == len(view):
                peer.shm_jobs.popleft()
                if request is not None:
                    request.finish()  # the caller's buffer may be reused now
            frames.append(encode_header(SHM_CHUNK, slot, take, 0))
            if not announced:
                announced = self._announce(peer, frames)
                frames = []
        if frames:
            self._announce(peer, frames)

    def _announce(self, peer: _Peer, frames: list[bytes]) -> bool:
        with contextlib.suppress(RankFailed):  # _lost failed the waiting requests
            self._queue(peer, [memoryview(b"".join(frames))], None)
        return True

    def _shm_announced(self, peer: _Peer, note: Message) -> None:
        """A SHM header's size arrived: the message is matched now, its bytes come later."""
        (nbytes,) = _SHM_SIZE.unpack_from(note.data or b"\0" * _SHM_SIZE.size)
        message = Message(BUFFER, note.ctx, note.tag, peer.rank, nbytes)
        self._arrived(message)
        peer.shm_rx.append(message)

    def _cma_announced(self, peer: _Peer, note: Message) -> None:
        """Match the announced buffer, then read it from the sender's memory at once (into
        the receive buffer when one is posted, else into the unexpected queue), so the
        sender is never kept waiting for a receive; acknowledge after this read."""
        assert note.data is not None
        pid, where, nbytes = _CMA_NOTE.unpack_from(note.data)
        message = Message(BUFFER, note.ctx, note.tag, peer.rank, nbytes)
        self._arrived(message)
        data = message.data
        assert data is not None
        try:
            cma.read(pid, where, data if isinstance(data, memoryview) else memoryview(data))
        except OSError as exc:
            self._lost(peer, f"its buffer could not be read from its memory ({exc})")
            return
        message.filled = nbytes
        peer.shm_acks.append(encode_header(CMA_ACK, 0, 0, 0))
        self._payload_done(message)

    def _shm_chunk(self, peer: _Peer, slot: int, nbytes: int) -> None:
        """Copy one slot out into the head announced message, then free it (SHM_ACK)."""
        if peer.shm_rx_segment is None:
            assert self.shm_job is not None
            peer.shm_rx_segment = shm.Segment(
                shm.segment_path(self.shm_job, peer.rank, self.rank), create=False
            )
        if not peer.shm_rx or not 0 <= slot < shm.SLOTS or nbytes > shm.SLOT_BYTES:
            self._lost(peer, f"it announced a shared-memory chunk out of order (slot {slot})")
            return
        message = peer.shm_rx[0]
        data = message.data
        assert data is not None
        take = min(nbytes, message.nbytes - message.filled)
        data[message.filled : message.filled + take] = peer.shm_rx_segment.slot(slot, take)
        message.filled += take
        # Acknowledged after this read (`progress`): one frame for all slots freed.
        peer.shm_acks.append(encode_header(SHM_ACK, slot, 0, 0))
        if message.complete:
            peer.shm_rx.popleft()
            self._payload_done(message)

    def _write(self, peer: _Peer, views: list[memoryview]) -> list[memoryview]:
        """Write as much of `views` as the socket takes; return what is left."""
        while views:
            try:
                sent = peer.sock.send(views[0]) if len(views) == 1 else peer.sock.sendmsg(views)
            except (BlockingIOError, InterruptedError):
                return views
            except OSError as exc:
                self._lost(peer, f"connection lost while sending ({exc})")
                return []
            while sent:
                first = views[0]
                if sent >= len(first):
                    sent -= len(first)
                    views.pop(0)
                else:
                    views[0] = first[sent:]
                    sent = 0
        return views

    def _on_writable(self, peer: _Peer) -> None:
        with self._wlock:
            self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        while peer.out:
            views, request = peer.out[0]
            left = self._write(peer, views)
            if not peer.alive:
                return
            if left:
                peer.out[0] = (left, request)
                return
            peer.out.popleft()
            if request is not None:
                request.finish()
        if peer.writing:
            peer.writing = False
            self.selector.modify(peer.sock, selectors.EVENT_READ, peer)

    # ------------------------------------------------------------------ receiving
    def post_recv(self, request: TcpRequest) -> None:
        """Match `request` against queued messages, else queue it (see module docstring)."""
        queue = self.unexpected.get(request.ctx)
        if queue:
            for index, message in enumerate(queue):
                if self._matches(request, message):
                    del queue[index]
                    self._bind(request, message)
                    return
        self._check_sources(request)
        if not request.done:
            self.posted.setdefault(request.ctx, []).append(request)

    def _check_sources(self, request: TcpRequest) -> None:
        """Fail a receive that can only be satisfied by ranks that are gone."""
        if request.source != ANY_SOURCE:
            if request.source in self.failed or self._finalized(request.source):
                request.fail(RankFailed(request.source, self._why(request.source)))
            return
        for world in request.rank_of:
            if world in self.failed:
                request.fail(RankFailed(world, self.failed[world]))
                return

    def _finalized(self, world: int) -> bool:
        peer = self.peers.get(world)
        return peer is not None and not peer.alive

    def _why(self, world: int) -> str:
        return self.failed.get(world, "it finalized before sending a matching message")

    @staticmethod
    def _matches(request: TcpRequest, message: Message) -> bool:
        return (request.source == ANY_SOURCE or request.source == message.source) and (
            request.tag == ANY_TAG or request.tag == message.tag
        )

    def _bind(self, request: TcpRequest, message: Message) -> None:
        status = Status(
            request.rank_of.get(message.source, message.source), message.tag, message.nbytes
        )
        request._status = status
        if request.kind == BUFFER:
            if message.kind != BUFFER:
                request.fail(
                    MessageMismatch(
                        f"Recv (buffer) matched an object message from rank {status.source} "
                        f"tag {status.tag}; receive it with recv()"
                    )
                )
                self._discard(message)
                return
            buf = request.buffer
            assert buf is not None
            if message.nbytes > len(buf):
                request.fail(
                    MessageMismatch(
                        f"message truncated: rank {status.source} sent {message.nbytes} bytes "
                        f"(tag {status.tag}) into a {len(buf)}-byte receive buffer"
                    )
                )
                self._discard(message)
                return
            if message.data is None:
                # Just arrived, nothing read yet: the payload goes straight into the
                # receiver's buffer.
                message.data = buf[: message.nbytes]
                message.direct = True
                message.request = request
                return
            if message.complete:
                buf[: message.nbytes] = message.data[: message.nbytes]
                request.finish(None, status)
                return
            message.request = request
            return
        request.message = message
        if message.complete:
            request.finish(None, status)
        else:
            message.request = request

    def _discard(self, message: Message) -> None:
        if not message.complete and message.data is None:
            message.data = bytearray(message.nbytes)

    def _arrived(self, message: Message) -> None:
        """A header arrived: match it against posted receives or queue it."""
        posted = self.posted.get(message.ctx)
        if posted:
            for index, request in enumerate(posted):
                if self._matches(request, message):
                    del posted[index]
                    self._bind(request, message)
                    if message.data is None:
                        message.data = bytearray(message.nbytes)
                    return
        if message.data is None:
            message.data = bytearray(message.nbytes)
        self.unexpected.setdefault(message.ctx, []).append(message)

    def _payload_done(self, message: Message) -> None:
        if message.kind == SHM:
            self._shm_announced(self.peers[message.source], message)
            return
        if message.kind == CMA:
            self._cma_announced(self.peers[message.source], message)
            return
        request = message.request
        if request is None or request.done:
            return
        message.request = None
        if request.kind == BUFFER and not message.direct:
            data = message.data
            assert data is not None
            assert request.buffer is not None
            request.buffer[: message.nbytes] = data[: message.nbytes]
        request.finish(None, request._status)

    def _on_readable(self, peer: _Peer) -> None:
        sock = peer.sock
        while True:
            message = peer.cur
            if message is not None:
                self._fill(peer, message)
                if not message.complete:
                    if not self._read_more_into(peer, message):
                        return
                    continue
                peer.cur = None
                self._payload_done(message)
                continue
            if peer.rend - peer.rstart >= HEADER_SIZE:
                self._parse_header(peer)
                continue
            # Need more bytes for a header: compact and read.
            if peer.rstart:
                left = peer.rend - peer.rstart
                peer.rbuf[:left] = peer.rbuf[peer.rstart : peer.rend]
                peer.rstart, peer.rend = 0, left
            want = _RBUF - peer.rend
            try:
                got = sock.recv_into(peer.rview[peer.rend :], want)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(peer, f"connection lost ({exc})")
                return
            if got == 0:
                self._lost(peer, "its connection closed (process exited or was killed)")
                return
            peer.heard = time.monotonic()
            peer.rend += got
            if got < want and peer.rend - peer.rstart < HEADER_SIZE:
                return

    def _parse_header(self, peer: _Peer) -> None:
        (size,) = _LEN.unpack_from(peer.rbuf, peer.rstart)
        kind, ctx, tag = _META.unpack_from(peer.rbuf, peer.rstart + _LEN.size)
        peer.rstart += HEADER_SIZE
        nbytes = size - _META.size
        if kind == BYE:
            # The BYE's context field carries the ranks (< 64) its sender saw crash, so a
            # crash one rank noticed is never reported as that rank's mere finalizing.
            for world in range(min(64, self.size)):
                if ctx >> world & 1 and world not in self.failed and world != self.rank:
                    why = f"rank {peer.rank} saw it fail before finalizing"
                    self.failed[world] = why
                    self._fail_waiting_on(world, why)
            peer.bye = True
            self._fail_waiting_on(peer.rank, "it finalized before sending a matching message")
            return
        if kind == HEARTBEAT:
            return
        if kind == SHM_CHUNK:
            self._shm_chunk(peer, ctx, tag)
            return
        if kind == SHM_ACK:
            if 0 <= ctx < shm.SLOTS and ctx not in peer.shm_free:
                peer.shm_free.append(ctx)  # refilled after this read (`progress`)
            return
        if kind == CMA_ACK:
            if peer.cma_sent:
                _view, request = peer.cma_sent.popleft()
                if request is not None:
                    request.finish()
            return
        if kind in (SHM, CMA):
            # The size (and for CMA where to read) follows; read it like a payload, then
            # act on it in _payload_done.
            note = Message(kind, ctx, tag, peer.rank, nbytes)
            note.data = bytearray(nbytes)
            peer.cur = note
            return
        if kind not in (OBJECT, BUFFER):
            self._lost(peer, f"it sent an unknown message kind {kind}")
            return
        message = Message(kind, ctx, tag, peer.rank, nbytes)
        peer.cur = message
        self._arrived(message)

    def _fill(self, peer: _Peer, message: Message) -> None:
        """Copy what the staging buffer holds of `message`'s payload."""
        have = peer.rend - peer.rstart
        if not have or message.complete:
            return
        take = min(have, message.nbytes - message.filled)
        data = message.data
        assert data is not None
        data[message.filled : message.filled + take] = peer.rview[peer.rstart : peer.rstart + take]
        message.filled += take
        peer.rstart += take
        if peer.rstart == peer.rend:
            peer.rstart = peer.rend = 0

    def _read_more_into(self, peer: _Peer, message: Message) -> bool:
        """Read the rest of a payload straight into its destination; False when blocked."""
        data = message.data
        assert data is not None
        view = data if isinstance(data, memoryview) else memoryview(data)
        want = message.nbytes - message.filled
        if want < _RBUF // 4:
            # Small remainder: read into the staging buffer (may also bring next headers).
            try:
                got = peer.sock.recv_into(peer.rview, _RBUF)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                self._lost(peer, f"connection lost ({exc})")
                return False
            if got == 0:
                self._lost(peer, "its connection closed (process exited or was killed)")
                return False
            peer.heard = time.monotonic()
            peer.rstart, peer.rend = 0, got
            return True
        try:
            got = peer.sock.recv_into(view[message.filled :], want)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._lost(peer, f"connection lost ({exc})")
            return False
        if got == 0:
            self._lost(peer, "its connection closed (process exited or was killed)")
            return False
        peer.heard = time.monotonic()
        message.filled += got
        return True

    # ------------------------------------------------------------------ failure
    def _lost(self, peer: _Peer, why: str) -> None:
        with self._wlock:
            if not peer.alive:
                return
            peer.alive = False
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(peer.sock)
            with contextlib.suppress(OSError):
                peer.sock.close()
        if not peer.bye:
            self.failed[peer.rank] = why
        reason = why if not peer.bye else "it finalized before sending a matching message"
        error = RankFailed(peer.rank, reason)
        for _views, request in peer.out:
            if request is not None:
                request.fail(error)
        peer.out.clear()
        message = peer.cur
        peer.cur = None
        if message is not None and message.request is not None:
            message.request.fail(error)
        for _view, _done, sending in peer.shm_jobs:
            if sending is not None:
                sending.fail(error)
        peer.shm_jobs.clear()
        for _view, sending in peer.cma_sent:
            if sending is not None:
                sending.fail(error)
        peer.cma_sent.clear()
        for announced in peer.shm_rx:
            if announced.request is not None:
                announced.request.fail(error)
        peer.shm_rx.clear()
        self._close_segments(peer)
        for queue in self.unexpected.values():
            queue[:] = [m for m in queue if m.complete or m.source != peer.rank]
        self._fail_waiting_on(peer.rank, reason)

    @staticmethod
    def _close_segments(peer: _Peer) -> None:
        for segment in (peer.shm_tx, peer.shm_rx_segment):
            if segment is not None:
                segment.close()
        peer.shm_tx = peer.shm_rx_segment = None

    def _fail_waiting_on(self, world: int, why: str) -> None:
        error = RankFailed(world, why)
        for posted in self.posted.values():
            keep = []
            for request in posted:
                if request.source == world or (
                    request.source == ANY_SOURCE
                    and world in request.rank_of
                    and world in self.failed
                ):
                    request.fail(error)
                else:
                    keep.append(request)
            posted[:] = keep

    # ------------------------------------------------------------------ progress
    def progress(self, timeout: float | None) -> None:
        """Handle whatever the sockets have ready, waiting at most `timeout` seconds."""
        if not self.peers:
            return
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
            if not self.peers or all(not p.alive for p in self.peers.values()):
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

    def check_group(self, members: frozenset[int]) -> None:
        """Raise `RankFailed` if a member crashed (one that finalized may just be done)."""
        for world in sorted(members):
            if world in self.failed:
                raise RankFailed(world, self.failed[world])

    # ------------------------------------------------------------------ shutdown
    def finalize(self, timeout: float) -> None:
        """Say BYE to every peer, flush, wait for theirs (or their loss), close."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + timeout
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
                    with contextlib.suppress(KeyError, ValueError):
                        self.selector.unregister(peer.sock)
                    with contextlib.suppress(OSError):
                        peer.sock.close()
            self.selector.close()
