"""Matching incoming messages with posted receives (part of the tcp backend's engine).

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

The methods here are mixed into `tejido.mpi.engine.Engine` (they use its queues).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tejido.mpi.api import (
    ANY_SOURCE,
    ANY_TAG,
    MessageMismatch,
    RankFailed,
)
from tejido.mpi.state import EngineState
from tejido.mpi.wire import (
    BUFFER,
    CMA,
    SHM,
    Message,
)

if TYPE_CHECKING:
    from tejido.mpi.requests import TcpRequest

__all__ = ["Matching"]


class Matching(EngineState):
    """Posted receives against arrived messages (mixed into `Engine`)."""

    def post_recv(self, request: TcpRequest) -> None:
        """Match `request` against queued messages, else queue it (see module docstring)."""
        queue = self.unexpected.get(request.ctx)
        if queue:
            for index, message in enumerate(queue):
                if self._matches(request, message):
                    del queue[index]
                    self._bind(request, message)
                    peer = self.peers.get(message.source)
                    if peer is not None and peer.paused is not None and peer.cur is message:
                        # Its bytes are still on the socket: now they have a place (the
                        # receive buffer when _bind could put them there).
                        self._unpause(peer)
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
        source = request.rank_of.get(message.source, message.source)
        request.matched = (source, message.tag, message.nbytes)
        if request.kind == BUFFER:
            if message.kind != BUFFER:
                request.fail(
                    MessageMismatch(
                        f"Recv (buffer) matched an object message from rank {source} "
                        f"tag {message.tag}; receive it with recv()"
                    )
                )
                self._discard(message)
                return
            buf = request.buffer
            assert buf is not None
            if message.nbytes > len(buf):
                request.fail(
                    MessageMismatch(
                        f"message truncated: rank {source} sent {message.nbytes} bytes "
                        f"(tag {message.tag}) into a {len(buf)}-byte receive buffer"
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
                request.finish()
                return
            message.request = request
            return
        request.message = message
        if message.complete:
            request.finish()
        else:
            message.request = request

    def _discard(self, message: Message) -> None:
        if not message.complete and message.data is None:
            message.data = bytearray(message.nbytes)

    def _arrived(self, message: Message, lazy: bool = False) -> bool:
        """A header arrived: match it against posted receives or queue it.

        With `lazy` (a large buffer still on the socket), an unmatched message is queued
        without a place for its bytes, and False returned: the caller stops reading that
        socket until a receive matches it (`post_recv`) or its bytes are needed.
        """
        posted = self.posted.get(message.ctx)
        if posted:
            for index, request in enumerate(posted):
                if self._matches(request, message):
                    del posted[index]
                    self._bind(request, message)
                    if message.data is None:
                        message.data = bytearray(message.nbytes)
                    return True
        self.unexpected.setdefault(message.ctx, []).append(message)
        if message.data is None:
            if lazy:
                return False
            message.data = bytearray(message.nbytes)
        return True

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
        request.finish()
