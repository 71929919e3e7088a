"""The tcp backend's communicator: point-to-point calls, split/dup, and the collectives'
entry points (their algorithms are in `tejido.mpi.collectives`).

A communicator is a group (comm rank -> world rank) and two contexts: one for the
program's point-to-point messages and one for collectives, so a collective's internal
messages never match a program's receive (MPI 4.0 §6.1: collectives and point-to-point
are separate). `dup` and `split` are collective: every member derives the same new
context id from the parent's id, a per-parent counter and the color, without messages.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from tejido.core.errors import LocalProtocolError
from tejido.mpi import collectives as coll
from tejido.mpi.api import (
    ANY_SOURCE,
    ANY_TAG,
    SUM,
    Buffer,
    Comm,
    Op,
    Request,
    Status,
    as_op,
    check_rank,
    check_tag,
)
from tejido.mpi.engine import BUFFER, OBJECT, Engine, TcpRequest, as_bytes_view

__all__ = ["TcpComm"]


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


class TcpComm(Comm):
    """A communicator of the tcp backend (see the module docstring)."""

    backend = "tcp"

    def __init__(self, engine: Engine, group: Sequence[int], ctx: int) -> None:
        self.engine = engine
        self.group = list(group)
        self.rank_of = {world: r for r, world in enumerate(self.group)}
        self._rank = self.rank_of[engine.rank]
        self.ctx = ctx & ~1
        self.cctx = ctx | 1
        self._children = 0

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def size(self) -> int:
        return len(self.group)

    # ------------------------------------------------------------------ internals
    def _send(
        self,
        kind: int,
        ctx: int,
        payload: bytes | memoryview,
        dest: int,
        tag: int,
        request: TcpRequest | None,
    ) -> None:
        self.engine.send(self.group[dest], kind, ctx, tag, payload, request)

    def _recv_request(
        self, kind: int, ctx: int, source: int, tag: int, buf: memoryview | None = None
    ) -> TcpRequest:
        request = TcpRequest(self.engine)
        request.kind = kind
        request.ctx = ctx
        request.source = ANY_SOURCE if source == ANY_SOURCE else self.group[source]
        request.tag = tag
        request.buffer = buf
        request.rank_of = self.rank_of
        self.engine.post_recv(request)
        return request

    def _check_dest(self, dest: int, tag: int) -> None:
        check_rank(dest, self.size, "dest")
        check_tag(tag)

    def _check_source(self, source: int, tag: int) -> None:
        check_rank(source, self.size, "source", wildcard=True)
        check_tag(tag, wildcard=True)

    # collective-context helpers used by tejido.mpi.collectives
    def csend_obj(self, obj: Any, dest: int, tag: int = 0) -> TcpRequest:
        request = TcpRequest(self.engine)
        self._send(OBJECT, self.cctx, _dumps(obj), dest, tag, request)
        return request

    def crecv_obj(self, source: int, tag: int = 0) -> Any:
        request = self._recv_request(OBJECT, self.cctx, source, tag)
        self.cwait(request)
        return request.wait()

    def csend_buf(self, view: memoryview, dest: int, tag: int = 0) -> TcpRequest:
        request = TcpRequest(self.engine)
        self._send(BUFFER, self.cctx, view, dest, tag, request)
        return request

    def crecv_buf(self, view: memoryview, source: int, tag: int = 0) -> TcpRequest:
        return self._recv_request(BUFFER, self.cctx, source, tag, view)

    def cwait(self, *requests: TcpRequest) -> None:
        members = frozenset(self.group)
        self.engine.wait(lambda: all(r.done for r in requests), members)
        if any(r.error is not None for r in requests):
            # Name the member that crashed rather than one that gave up because of it.
            self.engine.progress(0.0)
            self.engine.check_group(members)
        for r in requests:
            r.wait()

    # ------------------------------------------------------------------ objects
    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        self._check_dest(dest, tag)
        request = TcpRequest(self.engine)
        self._send(OBJECT, self.ctx, _dumps(obj), dest, tag, request)
        request.wait()

    def isend(self, obj: Any, dest: int, tag: int = 0) -> Request:
        self._check_dest(dest, tag)
        request = TcpRequest(self.engine)
        self._send(OBJECT, self.ctx, _dumps(obj), dest, tag, request)
        return request

    def recv(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> Any:
        self._check_source(source, tag)
        return self._recv_request(OBJECT, self.ctx, source, tag).wait(status)

    def irecv(self, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request:
        self._check_source(source, tag)
        return self._recv_request(OBJECT, self.ctx, source, tag)

    def sendrecv(
        self,
        sendobj: Any,
        dest: int,
        sendtag: int = 0,
        recvbuf: Any = None,
        source: int = ANY_SOURCE,
        recvtag: int = ANY_TAG,
        status: Status | None = None,
    ) -> Any:
        self._check_dest(dest, sendtag)
        self._check_source(source, recvtag)
        receive = self._recv_request(OBJECT, self.ctx, source, recvtag)
        sending = self.isend(sendobj, dest, sendtag)
        value = receive.wait(status)
        sending.wait()
        return value

    def _find(self, source: int, tag: int, status: Status | None) -> bool:
        world = ANY_SOURCE if source == ANY_SOURCE else self.group[source]
        for message in self.engine.unexpected.get(self.ctx, ()):
            if (world == ANY_SOURCE or message.source == world) and (
                tag == ANY_TAG or message.tag == tag
            ):
                if status is not None:
                    status.source = self.rank_of[message.source]
                    status.tag = message.tag
                    status.count = message.nbytes
                return True
        probe = TcpRequest(self.engine)
        probe.source = world
        probe.rank_of = self.rank_of
        self.engine._check_sources(probe)
        if probe.error is not None:
            raise probe.error
        return False

    def iprobe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        self._check_source(source, tag)
        if self._find(source, tag, status):
            return True
        self.engine.progress(0.0)
        return self._find(source, tag, status)

    def probe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        self._check_source(source, tag)
        self.engine.wait(lambda: self._find(source, tag, status))
        return True

    # ------------------------------------------------------------------ buffers
    def Send(self, buf: Buffer, dest: int, tag: int = 0) -> None:
        self._check_dest(dest, tag)
        request = TcpRequest(self.engine)
        self._send(BUFFER, self.ctx, as_bytes_view(buf), dest, tag, request)
        request.wait()

    def Isend(self, buf: Buffer, dest: int, tag: int = 0) -> Request:
        self._check_dest(dest, tag)
        request = TcpRequest(self.engine)
        self._send(BUFFER, self.ctx, as_bytes_view(buf), dest, tag, request)
        return request

    def Recv(
        self,
        buf: Buffer,
        source: int = ANY_SOURCE,
        tag: int = ANY_TAG,
        status: Status | None = None,
    ) -> None:
        self.Irecv(buf, source, tag).wait(status)

    def Irecv(self, buf: Buffer, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request:
        self._check_source(source, tag)
        view = as_bytes_view(buf)
        if view.readonly:
            raise LocalProtocolError("Recv needs a writable buffer (got a read-only one)")
        return self._recv_request(BUFFER, self.ctx, source, tag, view)

    def Sendrecv(
        self,
        sendbuf: Buffer,
        dest: int,
        sendtag: int = 0,
        recvbuf: Buffer | None = None,
        source: int = ANY_SOURCE,
        recvtag: int = ANY_TAG,
        status: Status | None = None,
    ) -> None:
        if recvbuf is None:
            raise LocalProtocolError("Sendrecv needs a receive buffer (recvbuf)")
        receive = self.Irecv(recvbuf, source, recvtag)
        sending = self.Isend(sendbuf, dest, sendtag)
        receive.wait(status)
        sending.wait()

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        coll.barrier(self)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        check_rank(root, self.size, "root")
        return coll.bcast(self, obj, root)

    def scatter(self, objs: Sequence[Any] | None, root: int = 0) -> Any:
        check_rank(root, self.size, "root")
        return coll.scatter(self, objs, root)

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        check_rank(root, self.size, "root")
        return coll.gather(self, obj, root)

    def allgather(self, obj: Any) -> list[Any]:
        return coll.allgather(self, obj)

    def alltoall(self, objs: Sequence[Any]) -> list[Any]:
        return coll.alltoall(self, objs)

    def reduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM, root: int = 0) -> Any:
        check_rank(root, self.size, "root")
        return coll.reduce(self, obj, as_op(op), root)

    def allreduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any:
        return coll.allreduce(self, obj, as_op(op))

    def scan(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any:
        return coll.scan(self, obj, as_op(op))

    def Bcast(self, buf: Buffer, root: int = 0) -> None:
        check_rank(root, self.size, "root")
        coll.buffer_bcast(self, as_bytes_view(buf), root)

    def Reduce(
        self,
        sendbuf: Buffer,
        recvbuf: Buffer | None,
        op: Op | Callable[[Any, Any], Any] = SUM,
        root: int = 0,
    ) -> None:
        check_rank(root, self.size, "root")
        coll.buffer_reduce(self, sendbuf, recvbuf, as_op(op), root)

    def Allreduce(
        self, sendbuf: Buffer, recvbuf: Buffer, op: Op | Callable[[Any, Any], Any] = SUM
    ) -> None:
        coll.buffer_allreduce(self, sendbuf, recvbuf, as_op(op))

    def Scatter(self, sendbuf: Buffer | None, recvbuf: Buffer, root: int = 0) -> None:
        check_rank(root, self.size, "root")
        coll.buffer_scatter(self, sendbuf, recvbuf, root)

    def Gather(self, sendbuf: Buffer, recvbuf: Buffer | None, root: int = 0) -> None:
        check_rank(root, self.size, "root")
        coll.buffer_gather(self, sendbuf, recvbuf, root)

    def Allgather(self, sendbuf: Buffer, recvbuf: Buffer) -> None:
        coll.buffer_allgather(self, sendbuf, recvbuf)

    def Alltoall(self, sendbuf: Buffer, recvbuf: Buffer) -> None:
        coll.buffer_alltoall(self, sendbuf, recvbuf)

    # ------------------------------------------------------------------ communicators
    def _child_ctx(self, color: int) -> int:
        self._children += 1
        digest = hashlib.blake2b(
            f"{self.ctx}/{self._children}/{color}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "little") & ~1 or 2

    def dup(self) -> Comm:
        ctx = self._child_ctx(0)
        coll.barrier(self)  # collective, as MPI_Comm_dup is
        return TcpComm(self.engine, self.group, ctx)

    def split(self, color: int, key: int = 0) -> Comm | None:
        if not isinstance(color, int) or not isinstance(key, int):
            raise LocalProtocolError(f"split needs int color and key, got {color!r}, {key!r}")
        everyone = coll.allgather(self, (color, key))
        ctx = self._child_ctx(color)
        if color < 0:
            return None
        members = sorted((k, r) for r, (c, k) in enumerate(everyone) if c == color)
        return TcpComm(self.engine, [self.group[r] for _k, r in members], ctx)
