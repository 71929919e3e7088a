"""The backend-independent half of `tejido.mpi`: constants, errors, `Status`, `Op`, and the
abstract `Comm` and `Request` every backend implements.

The API mirrors mpi4py's split (mpi4py docs, "Tutorial"): lowercase methods (`send`,
`recv`, `bcast`, ...) move any picklable Python object and return it; capitalised methods
(`Send`, `Recv`, `Bcast`, `Reduce`, `Allreduce`, `Scatter`, `Gather`, `Allgather`,
`Alltoall`) move buffers (numpy arrays, bytes,
bytearrays, memoryviews) into the caller's buffer without building Python objects.
Signatures are mpi4py's too, statuses included: receives and probes return no status but
fill one the caller passes (``Recv(buf, source, tag, status=None)`` returns None), so the
mpi backend can hand out mpi4py's own bound methods and a call builds nothing it was not
asked for (see `Status`).

Rules every backend keeps:
- Non-overtaking order (MPI 4.0 §3.5, "Semantics of Point-to-Point Communication"): two
  messages from one sender to one receiver on one communicator are matched in the order
  they were sent whenever both match a receive (same tag, or a wildcard).
- `ANY_SOURCE` / `ANY_TAG` receive from any rank / with any tag of that communicator.
- Collectives must be called by every rank of the communicator, in the same order.
- Reductions combine values in rank order (``op(x0, op(x1, ...))``) where the algorithm
  allows; user operations must be associative, and should be commutative (the tcp
  backend's large-buffer ring and MPI implementations may reorder operands).
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import Buffer

from tejido.core.errors import LocalProtocolError, TejidoError

__all__ = [
    "ANY_SOURCE",
    "ANY_TAG",
    "Buffer",
    "Comm",
    "MAX",
    "MIN",
    "MPIError",
    "Op",
    "PROD",
    "RankFailed",
    "Request",
    "SUM",
    "Status",
    "AuthenticationFailed",
    "MessageMismatch",
    "as_op",
]

#: Receive from any rank of the communicator.
ANY_SOURCE = -1
#: Receive a message with any tag.
ANY_TAG = -1
#: Largest tag a program may use (MPI guarantees at least 32767; we allow up to 2**30).
TAG_UB = 2**30


class MPIError(TejidoError):
    """An MPI operation failed; the message says which and why."""


class RankFailed(MPIError):
    """An operation needed a rank that died (or already finalized).

    `rank` is the dead rank's number in COMM_WORLD.
    """

    def __init__(self, rank: int, why: str = "its connection was lost") -> None:
        super().__init__(f"rank {rank} failed: {why}")
        self.rank = rank


class AuthenticationFailed(MPIError):
    """A peer did not prove it knows this job's secret (or we could not prove it to it)."""


class MessageMismatch(MPIError, LocalProtocolError):
    """A receive matched a message it cannot take (object vs buffer, or too large)."""


#: Set by the mpi backend when it starts: `Status()` then creates mpi4py's ``MPI.Status``.
_native_status: Callable[[], Any] | None = None


class Status:
    """What a receive or probe matched: sender's rank (in the communicator), tag, and size.

    As in mpi4py, the caller creates one and passes it as ``status=`` to `Comm.Recv`,
    `recv`, `Sendrecv`, `sendrecv`, `probe`/`Probe`, `iprobe`/`Iprobe` or
    `Request.wait`/`test`, which fill it in; calls without one build none. `count` is the
    payload size in bytes (pickled size for objects). ``Get_source()``, ``Get_tag()`` and
    ``Get_count()`` are mpi4py's spellings of the same three values.

    On the mpi backend, ``Status()`` (without arguments) returns mpi4py's own
    ``MPI.Status``, which has the same attributes and methods: that backend's calls are
    mpi4py's bound methods, which accept nothing else (so `isinstance(s, Status)` is
    false there). A program that creates its statuses with ``mpi.Status()`` runs unchanged
    on both backends.
    """

    __slots__ = ("count", "source", "tag")

    def __new__(cls, source: int = ANY_SOURCE, tag: int = ANY_TAG, count: int = 0) -> Status:
        native = _native_status
        if native is not None and cls is Status and source == ANY_SOURCE and tag == ANY_TAG:
            return native()  # type: ignore[no-any-return]
        return super().__new__(cls)

    def __init__(self, source: int = ANY_SOURCE, tag: int = ANY_TAG, count: int = 0) -> None:
        self.source = source
        self.tag = tag
        self.count = count

    def Get_source(self) -> int:
        return self.source

    def Get_tag(self) -> int:
        return self.tag

    def Get_count(self) -> int:
        return self.count

    def fill(self, source: int, tag: int, count: int) -> None:
        self.source = source
        self.tag = tag
        self.count = count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Status):
            return NotImplemented
        return (self.source, self.tag, self.count) == (other.source, other.tag, other.count)

    def __hash__(self) -> int:
        return hash((self.source, self.tag, self.count))

    def __repr__(self) -> str:
        return f"Status(source={self.source}, tag={self.tag}, count={self.count})"


class Op:
    """A reduction operation: how two values combine.

    `fn(a, b)` combines two Python objects (or two numpy arrays, elementwise); `a` comes
    from the lower rank. Built-in operations also carry a numpy ufunc used in place on
    buffers. Create your own with ``Op(fn)`` or pass any two-argument callable where an
    operation is expected.
    """

    __slots__ = ("fn", "name", "ufunc")

    def __init__(self, fn: Callable[[Any, Any], Any], name: str = "", ufunc: str = "") -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "user op")
        self.ufunc = ufunc

    def __call__(self, a: Any, b: Any) -> Any:
        return self.fn(a, b)

    def __repr__(self) -> str:
        return f"Op({self.name})"


SUM = Op(operator.add, "SUM", "add")
PROD = Op(operator.mul, "PROD", "multiply")
MAX = Op(max, "MAX", "maximum")
MIN = Op(min, "MIN", "minimum")


def as_op(op: Op | Callable[[Any, Any], Any]) -> Op:
    """`op` as an `Op` (plain callables become user operations)."""
    if isinstance(op, Op):
        return op
    if callable(op):
        return Op(op)
    raise LocalProtocolError(f"a reduction operation must be an Op or a callable, got {op!r}")


def check_rank(rank: int, size: int, what: str, *, wildcard: bool = False) -> None:
    """Raise a clear `LocalProtocolError` unless `rank` names a rank of a `size` communicator."""
    if wildcard and rank == ANY_SOURCE:
        return
    if not isinstance(rank, int) or not 0 <= rank < size:
        raise LocalProtocolError(
            f"{what} must be a rank in 0..{size - 1}"
            + (" or ANY_SOURCE" if wildcard else "")
            + f", got {rank!r}"
        )


def check_tag(tag: int, *, wildcard: bool = False) -> None:
    if wildcard and tag == ANY_TAG:
        return
    if not isinstance(tag, int) or not 0 <= tag < TAG_UB:
        raise LocalProtocolError(
            f"tag must be an int in 0..{TAG_UB - 1}"
            + (" or ANY_TAG" if wildcard else "")
            + f", got {tag!r}"
        )


class Request(ABC):
    """A non-blocking operation in flight (from `isend`, `irecv`, `Isend`, `Irecv`).

    Signatures are mpi4py's: `wait`/`test` take an optional `Status` to fill in for a
    receive, `waitall` an optional list of them, `waitany` an optional one.
    """

    @abstractmethod
    def wait(self, status: Status | None = None) -> Any:
        """Block until done; return the received object (irecv) or None."""

    @abstractmethod
    def test(self, status: Status | None = None) -> tuple[bool, Any]:
        """Make progress without blocking; ``(True, value)`` once done, else ``(False, None)``."""

    @classmethod
    def waitall(
        cls, requests: Sequence[Request], statuses: list[Status] | None = None
    ) -> list[Any]:
        """Wait for every request; return their values in order (and fill `statuses`)."""
        if not requests:
            return []
        return type(requests[0])._waitall(requests, statuses)

    @classmethod
    def waitany(cls, requests: Sequence[Request], status: Status | None = None) -> tuple[int, Any]:
        """Wait until one request is done; return its index and value (and fill `status`)."""
        if not requests:
            raise LocalProtocolError("waitany needs at least one request")
        return type(requests[0])._waitany(requests, status)

    @classmethod
    def _waitall(
        cls, requests: Sequence[Request], statuses: list[Status] | None = None
    ) -> list[Any]:
        if statuses is None:
            return [r.wait() for r in requests]
        if len(statuses) < len(requests):
            raise LocalProtocolError(
                f"waitall got {len(statuses)} statuses for {len(requests)} requests"
            )
        return [r.wait(s) for r, s in zip(requests, statuses, strict=False)]

    @classmethod
    @abstractmethod
    def _waitany(
        cls, requests: Sequence[Request], status: Status | None = None
    ) -> tuple[int, Any]: ...


class Comm(ABC):
    """A communicator: a group of ranks and a private message space (see module docstring)."""

    backend: str = ""

    @property
    @abstractmethod
    def rank(self) -> int: ...

    @property
    @abstractmethod
    def size(self) -> int: ...

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    # ------------------------------------------------------------------ objects, p2p
    @abstractmethod
    def send(self, obj: Any, dest: int, tag: int = 0) -> None: ...

    @abstractmethod
    def recv(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> Any:
        """Receive an object; fill `status` (who sent it, with which tag) when given."""

    def recv_status(self, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> tuple[Any, Status]:
        """Like `recv`, also returning a new `Status` (a tejido convenience)."""
        status = Status()
        return self.recv(source, tag, status), status

    @abstractmethod
    def isend(self, obj: Any, dest: int, tag: int = 0) -> Request: ...

    @abstractmethod
    def irecv(self, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request: ...

    @abstractmethod
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
        """Send `sendobj` to `dest` and receive an object from `source` (mpi4py's
        signature; `recvbuf` is accepted for it and ignored by the tcp backend)."""

    @abstractmethod
    def probe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        """Block until a matching message is there (without receiving it); fill `status`.

        Returns True, as mpi4py's does."""

    @abstractmethod
    def iprobe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        """Whether a matching message is there now (filling `status` if so)."""

    def Probe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        return self.probe(source, tag, status)

    def Iprobe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: Status | None = None
    ) -> bool:
        return self.iprobe(source, tag, status)

    # ------------------------------------------------------------------ buffers, p2p
    @abstractmethod
    def Send(self, buf: Buffer, dest: int, tag: int = 0) -> None: ...

    @abstractmethod
    def Recv(
        self,
        buf: Buffer,
        source: int = ANY_SOURCE,
        tag: int = ANY_TAG,
        status: Status | None = None,
    ) -> None:
        """Receive into `buf`; fill `status` when given (mpi4py's signature: returns None)."""

    @abstractmethod
    def Isend(self, buf: Buffer, dest: int, tag: int = 0) -> Request: ...

    @abstractmethod
    def Irecv(self, buf: Buffer, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request: ...

    @abstractmethod
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
        """Send `sendbuf` to `dest` and receive into `recvbuf` (mpi4py's signature and
        argument order); fill `status` when given."""

    # ------------------------------------------------------------------ collectives
    @abstractmethod
    def barrier(self) -> None: ...

    @abstractmethod
    def bcast(self, obj: Any, root: int = 0) -> Any: ...

    @abstractmethod
    def scatter(self, objs: Sequence[Any] | None, root: int = 0) -> Any: ...

    @abstractmethod
    def gather(self, obj: Any, root: int = 0) -> list[Any] | None: ...

    @abstractmethod
    def allgather(self, obj: Any) -> list[Any]: ...

    @abstractmethod
    def alltoall(self, objs: Sequence[Any]) -> list[Any]: ...

    @abstractmethod
    def reduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM, root: int = 0) -> Any: ...

    @abstractmethod
    def allreduce(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any: ...

    @abstractmethod
    def scan(self, obj: Any, op: Op | Callable[[Any, Any], Any] = SUM) -> Any: ...

    @abstractmethod
    def Bcast(self, buf: Buffer, root: int = 0) -> None: ...

    @abstractmethod
    def Reduce(
        self,
        sendbuf: Buffer,
        recvbuf: Buffer | None,
        op: Op | Callable[[Any, Any], Any] = SUM,
        root: int = 0,
    ) -> None: ...

    @abstractmethod
    def Allreduce(
        self, sendbuf: Buffer, recvbuf: Buffer, op: Op | Callable[[Any, Any], Any] = SUM
    ) -> None: ...

    @abstractmethod
    def Scatter(self, sendbuf: Buffer | None, recvbuf: Buffer, root: int = 0) -> None:
        """Block r of the root's `sendbuf` (``size`` equal blocks) into rank r's `recvbuf`."""

    @abstractmethod
    def Gather(self, sendbuf: Buffer, recvbuf: Buffer | None, root: int = 0) -> None:
        """Rank r's `sendbuf` into block r of the root's `recvbuf` (``size`` equal blocks)."""

    @abstractmethod
    def Allgather(self, sendbuf: Buffer, recvbuf: Buffer) -> None:
        """Rank r's `sendbuf` into block r of every rank's `recvbuf`."""

    @abstractmethod
    def Alltoall(self, sendbuf: Buffer, recvbuf: Buffer) -> None:
        """Block d of rank s's `sendbuf` into block s of rank d's `recvbuf`."""

    # ------------------------------------------------------------------ communicators
    @abstractmethod
    def split(self, color: int, key: int = 0) -> Comm | None:
        """Ranks with the same `color` form a new communicator, ordered by (key, old rank).

        A negative color (MPI's UNDEFINED) joins none: that rank gets None.
        """

    @abstractmethod
    def dup(self) -> Comm:
        """The same group with a fresh message space (its messages never match ours)."""

    def Barrier(self) -> None:
        self.barrier()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.backend} rank={self.rank}/{self.size}>"
