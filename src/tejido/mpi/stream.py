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

Large unexpected buffers are read lazily: a buffer message of at least `LAZY_MIN_BYTES`
whose header arrives before any receive matches it is queued (so probes and matching see
it, in order) but its bytes are left in the kernel, and that socket is not read further
(the sender's writes wait for room, as with a slow reader). When a receive matches it, the
socket is read again and the bytes go straight into the receive buffer, instead of into a
temporary buffer that is copied later (a 16 MiB temporary cost more CPU than the transfer
itself: zeroed pages, a second copy). The pause ends without a receive as soon as this
rank, waiting inside an MPI call, could need something behind that message (a posted
receive that a later message from that rank could match, or its acks of our same-host
sends), after `LAZY_WAIT_S` of waiting in any case (so no pattern of sends, however
unsafe by MPI's rules, can wait on a pause for ever), and at finalize; then the message is
read into a temporary buffer as before. A paused rank is not reported silent by the
heartbeat check (nothing is read from it on purpose).

The methods here are mixed into `tejido.mpi.engine.Engine`.
"""

from __future__ import annotations

import selectors
import time
from typing import TYPE_CHECKING

from tejido.mpi import cma, shm
from tejido.mpi.api import ANY_SOURCE, RankFailed
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
    LAZY_MIN_BYTES,
    LAZY_WAIT_S,
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
                self._set_interest(peer)

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
            self._set_interest(peer)

    def _set_interest(self, peer: _Peer) -> None:
        """Register `peer`'s socket for what this rank wants from it now: reading unless
        paused, writing while frames are queued; neither: not registered."""
        with self._wlock:
            if not peer.alive:
                return
            events = 0 if peer.paused is not None else selectors.EVENT_READ
            if peer.writing:
                events |= selectors.EVENT_WRITE
            if events == peer.events:
                return
            if not peer.events:
                self.selector.register(peer.sock, events, peer)
            elif not events:
                self.selector.unregister(peer.sock)
            else:
                self.selector.modify(peer.sock, events, peer)
            peer.events = events

    def _pause(self, peer: _Peer) -> None:
        """Stop reading `peer` at its current message (a large buffer nobody receives yet)."""
        peer.paused = time.monotonic()
        self.paused_peers.add(peer.rank)
        self._set_interest(peer)

    def _unpause(self, peer: _Peer) -> None:
        """Read `peer` again: into the receive buffer its message was bound to, or (no
        receive yet) into a temporary buffer, as any unexpected message."""
        message = peer.cur
        if message is not None and message.data is None:
            message.data = bytearray(message.nbytes)
        peer.paused = None
        peer.heard = time.monotonic()  # nothing was read while paused, by choice
        self.paused_peers.discard(peer.rank)
        self._set_interest(peer)

    def _check_paused(self, timeout: float | None) -> float | None:
        """Unpause every peer this rank now needs bytes from (a posted receive that its
        later messages could match, or acks it owes us), or that has been paused for
        `LAZY_WAIT_S` (so no pattern of sends can wait on a pause for ever); return
        `timeout` shortened to the next pause's end."""
        now = time.monotonic()
        for world in list(self.paused_peers):
            peer = self.peers[world]
            since = peer.paused
            if since is None or now - since >= LAZY_WAIT_S or self._awaits(peer):
                self._unpause(peer)
                continue
            left = LAZY_WAIT_S - (now - since)
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    def _awaits(self, peer: _Peer) -> bool:
        """Whether something this rank waits for could come from `peer`'s stream."""
        if peer.shm_jobs or peer.cma_sent:
            return True  # its SHM_ACK / CMA_ACK frames
        world = peer.rank
        for posted in self.posted.values():
            for request in posted:
                if request.source == world or (
                    request.source == ANY_SOURCE and world in request.rank_of
                ):
                    return True
        return False

    def _on_readable(self, peer: _Peer) -> None:
        # Set once a read of the staging buffer came back short: the socket was empty then,
        # so another read would only fail (a syscall and an exception); the selector
        # reports the socket again when more arrives.
        drained = False
        while True:
            if peer.paused is not None:
                return
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
            if drained:
                return
            if peer.rstart:
                left = peer.rend - peer.rstart
                peer.rbuf[:left] = peer.rbuf[peer.rstart : peer.rend]
                peer.rstart, peer.rend = 0, left
            want = _RBUF - peer.rend
            got = self._recv_into(peer, peer.rview[peer.rend :], want)
            if not got:
                return
            peer.rend += got
            if got < want:
                if peer.rend - peer.rstart < HEADER_SIZE:
                    return
                drained = True

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
        if not self._arrived(message, lazy=kind == BUFFER and nbytes >= LAZY_MIN_BYTES):
            self._pause(peer)

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
            got = self._recv_into(peer, peer.rview, _RBUF)
            if not got:
                return False
            peer.rstart, peer.rend = 0, got
            return True
        got = self._recv_into(peer, view[message.filled :], want)
        if not got:
            return False
        message.filled += got
        return True

    def _recv_into(self, peer: _Peer, into: memoryview, want: int) -> int:
        """Read up to `want` bytes from `peer` into `into`: the count, or 0 when nothing
        could be read now (would block) or the peer is lost (closed or failed, reported
        through `_lost`)."""
        try:
            got = peer.sock.recv_into(into, want)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._lost(peer, f"connection lost ({exc})")
            return 0
        if got == 0:
            self._lost(peer, "its connection closed (process exited or was killed)")
            return 0
        peer.heard = time.monotonic()
        return got
