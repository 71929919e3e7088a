"""Failure detection for the tcp backend's engine: lost connections and heartbeats.

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

The methods here are mixed into `tejido.mpi.engine.Engine`.
"""

from __future__ import annotations

import contextlib
import time

from tejido.mpi.api import (
    ANY_SOURCE,
    RankFailed,
)
from tejido.mpi.state import EngineState, _Peer
from tejido.mpi.wire import (
    HEARTBEAT,
    encode_header,
)

__all__ = ["FailureDetection"]


class FailureDetection(EngineState):
    """Dead and silent peers: failing what waits on them (mixed into `Engine`)."""

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
                        self._set_interest(peer)

    def _check_heartbeats(self) -> None:
        """Treat every peer silent for longer than the timeout as failed."""
        limit = self.heartbeat_timeout_s
        if limit is None:
            return
        now = time.monotonic()
        for peer in list(self.peers.values()):
            if peer.paused is not None:
                continue  # not read on purpose (see tejido.mpi.stream); not silent
            if peer.alive and not peer.bye and now - peer.heard > limit:
                self._lost(
                    peer,
                    f"no heartbeat for {limit:g} s (the process is stopped, hung or unreachable)",
                )

    def _lost(self, peer: _Peer, why: str) -> None:
        with self._wlock:
            if not peer.alive:
                return
            peer.alive = False
            self.live_peers -= 1
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(peer.sock)
            peer.events = 0
            with contextlib.suppress(OSError):
                peer.sock.close()
        peer.paused = None
        self.paused_peers.discard(peer.rank)
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

    def check_group(self, members: frozenset[int]) -> None:
        """Raise `RankFailed` if a member crashed (one that finalized may just be done)."""
        for world in sorted(members):
            if world in self.failed:
                raise RankFailed(world, self.failed[world])
