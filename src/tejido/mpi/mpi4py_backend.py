"""The ``mpi`` backend: tejido's MPI API as a thin layer over mpi4py and a real MPI.

tejido's point-to-point signatures are mpi4py's (``Recv(buf, source, tag, status=None)``
returns None and fills a caller-made status, likewise `Sendrecv`, `probe`/`Probe`,
`iprobe`/`Iprobe`, `sendrecv`), so `MpiComm` is a subclass of mpi4py's ``MPI.Intracomm``
that inherits every call whose signature agrees: those cost exactly what raw mpi4py's
cost, attribute lookup included. It defines only what differs (`recv` without a leading
`buf`, tejido's `Request` and `Op` types, `split`/`dup`). A status passed to the calls
must be mpi4py's ``MPI.Status``; once this backend runs, `tejido.mpi.Status()` creates
exactly that (see `tejido.mpi.api.Status`), so portable programs work unchanged. Errors:
MPI's default error handler aborts the job when a rank dies, which is the real MPI's
failure semantics (no `RankFailed`). User reduction functions become ``MPI.Op`` objects
(cached, created commutative, as the tcp backend's ring requires too).
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
    MPIError,
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


#: mpi4py's intracommunicator class, typed as Any: `MpiComm` inherits its methods, whose
#: stubs name mpi4py's own types (``MPI.Status``, ``BufSpec``) where tejido's name its own.
_Intracomm: Any = MPI.Intracomm


class MpiComm(_Intracomm, Comm):  # type: ignore[misc]
    """A communicator of the mpi backend: an ``MPI.Intracomm`` (sharing the handle of the one
    it is made from) that is also a tejido `Comm`.

    Every call whose signature tejido shares with mpi4py (`Send`, `Recv`, `Sendrecv`,
    `Probe`, `Iprobe`, `send`, `sendrecv`, `probe`, `iprobe`, `barrier`, `bcast`, `scatter`,
    `gather`, `allgather`, `alltoall`, `Bcast`, `Scatter`, `Gather`, `Allgather`,
    `Alltoall`, `rank`, `size`, ...) is mpi4py's own method, inherited: no tejido code runs,
    and even the attribute lookup is the one Python specialises for mpi4py's methods. Only
    the calls that differ are defined here: `recv` (no leading `buf`), the requests
    (tejido's `Request`), reductions (tejido's `Op`), `split`/`dup` (tejido's names).
    """

    backend = "mpi"

    def __init__(self, comm: MPI.Intracomm) -> None:
        # (mpi4py's __new__ already copied `comm`'s handle.) From now on
        # `tejido.mpi.Status()` creates mpi4py's own MPI.Status, the only status mpi4py's
        # methods accept.
        api._native_status = MPI.Status

    # objects
    def recv(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> Any:
        return _Intracomm.recv(self, None, source, tag, status)

    def isend(self, obj: Any, dest: int, tag: int = 0) -> Request:
        return MpiRequest(_Intracomm.isend(self, obj, dest, tag))

    def irecv(self, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request:
        return MpiRequest(_Intracomm.irecv(self, None, source, tag))

    def Isend(self, buf: Buffer, dest: int, tag: int = 0) -> Request:
        return MpiRequest(_Intracomm.Isend(self, buf, dest, tag))

    def Irecv(self, buf: Buffer, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request:
        return MpiRequest(_Intracomm.Irecv(self, buf, source, tag))

    # reductions
    def reduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM, root: int = 0) -> Any:
        return _Intracomm.reduce(self, obj, _mpi_op(op, buffers=False), root)

    def allreduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any:
        return _Intracomm.allreduce(self, obj, _mpi_op(op, buffers=False))

    def scan(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any:
        return _Intracomm.scan(self, obj, _mpi_op(op, buffers=False))

    def Reduce(
        self,
        sendbuf: Buffer,
        recvbuf: Buffer | None,
        op: Op | Callable[[Any, Any], Any] = SUM,
        root: int = 0,
    ) -> None:
        _Intracomm.Reduce(self, sendbuf, recvbuf, _mpi_op(op, buffers=True), root)

    def Allreduce(
        self, sendbuf: Buffer, recvbuf: Buffer, op: Op | Callable[[Any, Any], Any] = SUM
    ) -> None:
        fast = _FAST.get(id(op))  # the built-in operations, without a call to _mpi_op
        _Intracomm.Allreduce(self, sendbuf, recvbuf, fast or _mpi_op(op, buffers=True))

    # communicators
    def split(self, color: int, key: int = 0) -> Comm | None:
        sub = _Intracomm.Split(self, MPI.UNDEFINED if color < 0 else color, key)
        if sub == MPI.COMM_NULL or not isinstance(sub, MPI.Intracomm):
            return None
        return MpiComm(sub)

    def dup(self) -> Comm:
        return MpiComm(_Intracomm.Dup(self))

    def __repr__(self) -> str:
        return f"<MpiComm backend=mpi rank={self.rank}/{self.size}>"


def world() -> Comm:
    """COMM_WORLD of the running MPI job (mpi4py initialises MPI on import)."""
    if not _WILDCARDS_NATIVE:
        raise MPIError(
            "this MPI library's ANY_SOURCE/ANY_TAG are not -1 (as in OpenMPI and MPICH); "
            "the mpi backend passes tejido's wildcards through unchanged"
        )
    return MpiComm(MPI.COMM_WORLD)
