"""Large buffers between ranks on one host, off the socket (the tcp backend's engine).

Only a small notice crosses the socket, matched exactly like any message, so order and
wildcards are unchanged; the bytes go one of two ways:
- CMA (`tejido.mpi.cma`): the notice carries ``(pid, address, length)``; the receiver
  copies the bytes straight from the sender's memory with ``process_vm_readv`` (into the
  posted receive buffer, or into the unexpected queue so the sender never waits for a
  receive) and answers CMA_ACK, which completes the send.
- Shared-memory slots (`tejido.mpi.shm`): the notice (SHM) carries the length; the sender
  copies the buffer slot by slot into its segment to that peer, announcing each filled
  slot (SHM_CHUNK); the receiver copies each out and frees it (SHM_ACK). Notices and acks
  are batched per write, because each write wakes the other process.

The methods here are mixed into `tejido.mpi.engine.Engine`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from tejido.mpi import cma, shm
from tejido.mpi.api import (
    RankFailed,
)
from tejido.mpi.state import EngineState, _Peer
from tejido.mpi.wire import (
    _CMA_NOTE,
    _SHM_SIZE,
    BUFFER,
    CMA_ACK,
    SHM,
    SHM_ACK,
    SHM_CHUNK,
    Message,
    encode_header,
)

if TYPE_CHECKING:
    from tejido.mpi.requests import TcpRequest

__all__ = ["SameHostTransfers"]


class SameHostTransfers(EngineState):
    """Shared-memory and cross-memory transfers (mixed into `Engine`)."""

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

    @staticmethod
    def _close_segments(peer: _Peer) -> None:
        for segment in (peer.shm_tx, peer.shm_rx_segment):
            if segment is not None:
                segment.close()
        peer.shm_tx = peer.shm_rx_segment = None
