"""Reading and writing the tcp backend's sockets (the engine's byte streams).

Writing: a frame goes out at once as far as the socket takes it (payloads up to 16 KiB are
copied behind their header and written in one piece, larger ones are written with
``sendmsg`` straight from the caller's memory); what the socket does not take is queued in
order and finished by the progress loop when the socket is writable. Frames to one peer
never interleave: the write lock is held while a frame is put on the socket.

Reading: bytes are read into a per-peer staging buffer, headers parsed from it, and a
payload whose receive is already posted is read with ``recv_into`` straight into the
receiver's buffer (no intermediate copy or Python object); small remainders go through the
staging buffer, which may also bring the next headers. Reading and writing interleave, so
two ranks that both send large messages before receiving do not deadlock.

The methods here are mixed into `tejido.mpi.engine.Engine`.
"""

from __future__ import annotations

import selectors
import time
from typing import TYPE_CHECKING

from tejido.mpi import cma, shm
from tejido.mpi.api import (
    RankFailed,
)
from tejido.mpi.state import EngineState, _Peer
from tejido.mpi.wire import (
    _CMA_NOTE,
    _LEN,
    _META,
    _RBUF,
    _SMALL,
    BUFFER,
    BYE,
    CMA,
    CMA_ACK,
    HEADER_SIZE,
    HEARTBEAT,
    OBJECT,
    SHM,
    SHM_ACK,
    SHM_CHUNK,
    Message,
    encode_header,
)

if TYPE_CHECKING:
    from tejido.mpi.requests import TcpRequest

__all__ = ["SocketStreams"]


class SocketStreams(EngineState):
    """Socket reads and writes, frame by frame (mixed into `Engine`)."""

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
