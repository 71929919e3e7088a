"""The ``mpi`` backend: tejido's MPI API as a thin layer over mpi4py and a real MPI.

tejido's point-to-point signatures are mpi4py's (``Recv(buf, source, tag, status=None)``
returns None and fills a caller-made status, likewise `Sendrecv`, `probe`/`Probe`,
`iprobe`/`Iprobe`, `sendrecv`), so most calls are mpi4py's own bound methods, put on each
communicator instance (`MpiComm._bind_direct`): they cost what raw mpi4py costs, with no
tejido frame in between. Only `recv` is a one-line closure (tejido's has no leading
`buf`). A status passed to them must be mpi4py's ``MPI.Status``; once this backend runs,
`tejido.mpi.Status()` creates exactly that (see `tejido.mpi.api.Status`), so portable
programs work unchanged. What this layer adds: tejido's `Request` and `Op` types,
`RankFailed`-free errors (MPI's default error handler aborts the job when a rank dies,
which is the real MPI's failure semantics), and user reduction functions turned into
``MPI.Op`` objects (cached, created commutative, as the tcp backend's ring requires too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mpi4py import MPI

from tejido.mpi import api
from tejido.mpi.api import (
    ANY_SOURCE,
    ANY_TAG,
    MAX,
    MIN,
    PROD,
    SUM,
    Buffer,
    Comm,
    Op,
    Request,
    Status,
    as_op,
)

__all__ = ["MpiComm", "MpiRequest", "world"]

_BUILTIN = {SUM.name: MPI.SUM, PROD.name: MPI.PROD, MAX.name: MPI.MAX, MIN.name: MPI.MIN}
_FAST = {id(SUM): MPI.SUM, id(PROD): MPI.PROD, id(MAX): MPI.MAX, id(MIN): MPI.MIN}
_user_ops: dict[int, MPI.Op] = {}


# tejido's wildcards are MPI's own values in the MPI libraries mpi4py supports (OpenMPI,
# MPICH: -1 and -1), so they pass through untranslated; checked once here.
_WILDCARDS_NATIVE = MPI.ANY_SOURCE == ANY_SOURCE and MPI.ANY_TAG == ANY_TAG


def _source(source: int) -> int:
    return MPI.ANY_SOURCE if source == ANY_SOURCE else source


def _tag(tag: int) -> int:
    return MPI.ANY_TAG if tag == ANY_TAG else tag


def _mpi_op(op: Op | Callable[[Any, Any], Any], *, buffers: bool) -> Any:
    """The MPI.Op for `op`: built-ins map to MPI's; user functions are wrapped once."""
    fast = _FAST.get(id(op))
    if fast is not None:
        return fast
    op = as_op(op)
    builtin = _BUILTIN.get(op.name) if op.ufunc else None
    if builtin is not None:
        return builtin
    if not buffers:
        return op.fn  # mpi4py's object collectives call op(a, b) on Python objects
    key = id(op)
    cached = _user_ops.get(key)
    if cached is None:
        import numpy as np
        from mpi4py.util.dtlib import to_numpy_dtype

        fn = op.fn

        def apply(inbuf: Any, inoutbuf: Any, datatype: MPI.Datatype) -> None:
            dtype = to_numpy_dtype(datatype)
            a = np.frombuffer(inbuf, dtype=dtype)
            b = np.frombuffer(inoutbuf, dtype=dtype)
            b[...] = fn(a, b)

        cached = MPI.Op.Create(apply, commute=True)
        _user_ops[key] = cached
    return cached


class MpiRequest(Request):
    """A wrapped ``MPI.Request`` (from isend/irecv/Isend/Irecv); statuses are passed
    through to mpi4py (so they must be ``MPI.Status`` objects, as `Status()` makes here)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: MPI.Request) -> None:
        self._raw = raw

    def wait(self, status: Status | None = None) -> Any:
        return self._raw.wait(status)  # type: ignore[arg-type]

    def test(self, status: Status | None = None) -> tuple[bool, Any]:
        return self._raw.test(status)  # type: ignore[arg-type]

    @classmethod
    def _waitall(
        cls, requests: Sequence[Request], statuses: list[Status] | None = None
    ) -> list[Any]:
        raws = [r._raw for r in requests if isinstance(r, MpiRequest)]
        return list(MPI.Request.waitall(raws, statuses))  # type: ignore[arg-type]

    @classmethod
    def _waitany(cls, requests: Sequence[Request], status: Status | None = None) -> tuple[int, Any]:
        raws = [r._raw for r in requests if isinstance(r, MpiRequest)]
        index, value = MPI.Request.waitany(raws, status)  # type: ignore[arg-type]
        return index, value


class MpiComm(Comm):
    """A communicator of the mpi backend, wrapping an ``MPI.Comm``."""

    backend = "mpi"

    def __init__(self, comm: MPI.Intracomm) -> None:
        self.comm = comm
        self._rank = comm.Get_rank()
        self._size = comm.Get_size()
        # From now on `tejido.mpi.Status()` creates mpi4py's own MPI.Status, the only
        # status mpi4py's methods (bound directly below) accept.
        api._native_status = MPI.Status
        if _WILDCARDS_NATIVE:
            self._bind_direct(comm)

    def _bind_direct(self, comm: MPI.Intracomm) -> None:
        """Put mpi4py's own bound methods on this instance where the signatures agree, so
        a call costs what mpi4py's does: no tejido frame between the user and mpi4py (the
        class's methods below are the same calls, one frame deeper). Only `recv` is a
        closure: tejido's has no `buf` argument in front."""
        raw_obj_recv = comm.recv

        def recv(source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Any = None) -> Any:
            return raw_obj_recv(None, source, tag, status)

        self.__dict__.update(
            Send=comm.Send,
            Recv=comm.Recv,
            Sendrecv=comm.Sendrecv,
            Probe=comm.Probe,
            Iprobe=comm.Iprobe,
            send=comm.send,
            recv=recv,
            sendrecv=comm.sendrecv,
            probe=comm.probe,
            iprobe=comm.iprobe,
            barrier=comm.Barrier,
            Barrier=comm.Barrier,
            bcast=comm.bcast,
            scatter=comm.scatter,
            gather=comm.gather,
            allgather=comm.allgather,
            alltoall=comm.alltoall,
            Bcast=comm.Bcast,
            Scatter=comm.Scatter,
            Gather=comm.Gather,
            Allgather=comm.Allgather,
            Alltoall=comm.Alltoall,
        )

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def size(self) -> int:
        return self._size

    # objects
    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        self.comm.send(obj, dest, tag)

    def recv(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> Any:
        return self.comm.recv(None, _source(source), _tag(tag), status)  # type: ignore[arg-type]

    def isend(self, obj: Any, dest: int, tag: int = 0) -> Request:
        return MpiRequest(self.comm.isend(obj, dest, tag))

    def irecv(self, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request:
        return MpiRequest(self.comm.irecv(None, _source(source), _tag(tag)))

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
        return self.comm.sendrecv(
            sendobj,
            dest,
            sendtag,
            recvbuf,
            _source(source),
            _tag(recvtag),
            status,  # type: ignore[arg-type]
        )

    def probe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        return self.comm.probe(_source(source), _tag(tag), status)  # type: ignore[arg-type]

    def iprobe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        return self.comm.iprobe(_source(source), _tag(tag), status)  # type: ignore[arg-type]

    # buffers: straight through
    def Send(self, buf: Buffer, dest: int, tag: int = 0) -> None:
        self.comm.Send(buf, dest, tag)

    def Recv(
        self,
        buf: Buffer,
        source: int = ANY_SOURCE,
        tag: int = ANY_TAG,
        status: Status | None = None,
    ) -> None:
        self.comm.Recv(buf, _source(source), _tag(tag), status)  # type: ignore[arg-type]

    def Isend(self, buf: Buffer, dest: int, tag: int = 0) -> Request:
        return MpiRequest(self.comm.Isend(buf, dest, tag))

    def Irecv(self, buf: Buffer, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request:
        return MpiRequest(self.comm.Irecv(buf, _source(source), _tag(tag)))

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
        self.comm.Sendrecv(
            sendbuf,
            dest,
            sendtag,
            recvbuf,
            _source(source),
            _tag(recvtag),
            status,  # type: ignore[arg-type]
        )

    # collectives
    def barrier(self) -> None:
        self.comm.Barrier()

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root)

    def scatter(self, objs: Sequence[Any] | None, root: int = 0) -> Any:
        return self.comm.scatter(objs, root)

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        return self.comm.gather(obj, root)

    def allgather(self, obj: Any) -> list[Any]:
        return self.comm.allgather(obj)

    def alltoall(self, objs: Sequence[Any]) -> list[Any]:
        return self.comm.alltoall(objs)

    def reduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM, root: int = 0) -> Any:
        return self.comm.reduce(obj, _mpi_op(op, buffers=False), root)

    def allreduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any:
        return self.comm.allreduce(obj, _mpi_op(op, buffers=False))

    def scan(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any:
        return self.comm.scan(obj, _mpi_op(op, buffers=False))

    def Bcast(self, buf: Buffer, root: int = 0) -> None:
        self.comm.Bcast(buf, root)

    def Reduce(
        self,
        sendbuf: Buffer,
        recvbuf: Buffer | None,
        op: Op | Callable[[Any, Any], Any] = SUM,
        root: int = 0,
    ) -> None:
        self.comm.Reduce(sendbuf, recvbuf, _mpi_op(op, buffers=True), root)

    def Allreduce(
        self, sendbuf: Buffer, recvbuf: Buffer, op: Op | Callable[[Any, Any], Any] = SUM
    ) -> None:
        fast = _FAST.get(id(op))  # the built-in operations, without a call to _mpi_op
        self.comm.Allreduce(sendbuf, recvbuf, fast or _mpi_op(op, buffers=True))

    def Scatter(self, sendbuf: Buffer | None, recvbuf: Buffer, root: int = 0) -> None:
        self.comm.Scatter(sendbuf, recvbuf, root)

    def Gather(self, sendbuf: Buffer, recvbuf: Buffer | None, root: int = 0) -> None:
        self.comm.Gather(sendbuf, recvbuf, root)

    def Allgather(self, sendbuf: Buffer, recvbuf: Buffer) -> None:
        self.comm.Allgather(sendbuf, recvbuf)

    def Alltoall(self, sendbuf: Buffer, recvbuf: Buffer) -> None:
        self.comm.Alltoall(sendbuf, recvbuf)

    # communicators
    def split(self, color: int, key: int = 0) -> Comm | None:
        sub = self.comm.Split(MPI.UNDEFINED if color < 0 else color, key)
        if sub == MPI.COMM_NULL or not isinstance(sub, MPI.Intracomm):
            return None
        return MpiComm(sub)

    def dup(self) -> Comm:
        return MpiComm(self.comm.Dup())


def world() -> Comm:
    """COMM_WORLD of the running MPI job (mpi4py initialises MPI on import)."""
    return MpiComm(MPI.COMM_WORLD)
