"""Collective algorithms of the tcp backend, built on the communicator's collective context.

Algorithms (Thakur, Rabenseifner and Gropp, "Optimization of Collective Communication
Operations in MPICH", IJHPCA 2005, describe each):
- barrier: dissemination (ceil(log2 p) rounds; any p).
- bcast / Bcast: binomial tree from the root (log2 p steps, latency-optimal).
- reduce / Reduce: binomial tree rooted at rank 0 that combines in rank order (so
  non-commutative object operations see ``x0 op x1 op ...``), then one hop to the root.
- allreduce: objects and small buffers (< `RING_MIN_BYTES`): reduce + bcast (2 log2 p
  steps). Large buffers: ring reduce-scatter then ring allgather, 2(p-1) steps each moving
  n/p elements, which is bandwidth-optimal (every rank sends and receives about 2n
  elements whatever p is). The ring changes the order operands meet, so user operations
  on large buffers must be commutative.
- gather / scatter / alltoall: direct (the root, or everyone, talks to every rank).
- allgather: gather to 0 + bcast. scan: a chain 0 -> 1 -> ... (inclusive prefix).
- Buffers (mpi4py's capitalised names, no pickling, blocks of equal size in rank order):
  Scatter / Gather / Alltoall direct; Allgather by a ring (p - 1 steps, each rank passes
  on the block it received last).

Every step waits with the communicator's group, so a dead member fails the collective
with `RankFailed` naming it instead of hanging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tejido.core.errors import LocalProtocolError
from tejido.mpi.api import Op
from tejido.mpi.engine import as_bytes_view

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tejido.mpi.comm import TcpComm

__all__ = [
    "RING_MIN_BYTES",
    "allgather",
    "allreduce",
    "alltoall",
    "barrier",
    "bcast",
    "buffer_allgather",
    "buffer_allreduce",
    "buffer_alltoall",
    "buffer_bcast",
    "buffer_gather",
    "buffer_reduce",
    "buffer_scatter",
    "gather",
    "reduce",
    "scan",
    "scatter",
]

#: Buffers at least this large (and with at least one element per rank) use the ring.
RING_MIN_BYTES = 64 * 1024

# One tag per collective kind (messages of one kind between two ranks stay in order).
_BARRIER, _BCAST, _REDUCE, _GATHER, _SCATTER, _ALLTOALL, _SCAN, _RING = range(1, 9)


def barrier(comm: TcpComm) -> None:
    p, r = comm.size, comm.rank
    k = 1
    while k < p:
        receive = comm.crecv_buf(memoryview(bytearray(0)), (r - k) % p, _BARRIER)
        sending = comm.csend_buf(memoryview(b""), (r + k) % p, _BARRIER)
        comm.cwait(receive, sending)
        k <<= 1


def _tree_bcast(comm: TcpComm, root: int, receive: Any, forward: Any) -> None:
    """Binomial tree: `receive(parent)` once (non-roots), then `forward(child)` per child."""
    p = comm.size
    v = (comm.rank - root) % p
    mask = 1
    while mask < p:
        if v & mask:
            receive((v - mask + root) % p)
            break
        mask <<= 1
    mask >>= 1
    sends = []
    while mask > 0:
        if v + mask < p:
            sends.append(forward((v + mask + root) % p))
        mask >>= 1
    if sends:
        comm.cwait(*sends)


def bcast(comm: TcpComm, obj: Any, root: int) -> Any:
    box = [obj]

    def receive(parent: int) -> None:
        box[0] = comm.crecv_obj(parent, _BCAST)

    _tree_bcast(comm, root, receive, lambda child: comm.csend_obj(box[0], child, _BCAST))
    return box[0]


def buffer_bcast(comm: TcpComm, view: memoryview, root: int) -> None:
    def receive(parent: int) -> None:
        comm.cwait(comm.crecv_buf(view, parent, _BCAST))

    _tree_bcast(comm, root, receive, lambda child: comm.csend_buf(view, child, _BCAST))


def _tree_reduce(comm: TcpComm, value: Any, combine: Any, recv_child: Any, send_up: Any) -> Any:
    """Binomial reduction to rank 0 in rank order; returns the total at rank 0."""
    p, r = comm.size, comm.rank
    mask = 1
    while mask < p:
        if r & mask:
            send_up(value, r - mask)
            return None
        if r + mask < p:
            value = combine(value, recv_child(r + mask))
        mask <<= 1
    return value


def reduce(comm: TcpComm, obj: Any, op: Op, root: int) -> Any:
    def send_up(value: Any, parent: int) -> None:
        comm.cwait(comm.csend_obj(value, parent, _REDUCE))

    total = _tree_reduce(comm, obj, op.fn, lambda c: comm.crecv_obj(c, _REDUCE), send_up)
    if root == 0:
        return total if comm.rank == 0 else None
    if comm.rank == 0:
        comm.cwait(comm.csend_obj(total, root, _REDUCE))
        return None
    if comm.rank == root:
        return comm.crecv_obj(0, _REDUCE)
    return None


def allreduce(comm: TcpComm, obj: Any, op: Op) -> Any:
    return bcast(comm, reduce(comm, obj, op, 0), 0)


def gather(comm: TcpComm, obj: Any, root: int) -> list[Any] | None:
    if comm.rank != root:
        comm.cwait(comm.csend_obj(obj, root, _GATHER))
        return None
    return [obj if r == root else comm.crecv_obj(r, _GATHER) for r in range(comm.size)]


def allgather(comm: TcpComm, obj: Any) -> list[Any]:
    result: list[Any] = bcast(comm, gather(comm, obj, 0), 0)
    return result


def scatter(comm: TcpComm, objs: Sequence[Any] | None, root: int) -> Any:
    if comm.rank != root:
        return comm.crecv_obj(root, _SCATTER)
    if objs is None or len(objs) != comm.size:
        got = "None" if objs is None else f"{len(objs)} items"
        raise LocalProtocolError(f"scatter at the root needs {comm.size} items, got {got}")
    sends = [comm.csend_obj(objs[r], r, _SCATTER) for r in range(comm.size) if r != root]
    comm.cwait(*sends)
    return objs[root]


def alltoall(comm: TcpComm, objs: Sequence[Any]) -> list[Any]:
    if len(objs) != comm.size:
        raise LocalProtocolError(f"alltoall needs {comm.size} items, got {len(objs)}")
    sends = [comm.csend_obj(objs[r], r, _ALLTOALL) for r in range(comm.size) if r != comm.rank]
    result = [objs[r] if r == comm.rank else comm.crecv_obj(r, _ALLTOALL) for r in range(comm.size)]
    comm.cwait(*sends)
    return result


def scan(comm: TcpComm, obj: Any, op: Op) -> Any:
    value = obj
    if comm.rank > 0:
        value = op.fn(comm.crecv_obj(comm.rank - 1, _SCAN), obj)
    if comm.rank + 1 < comm.size:
        comm.cwait(comm.csend_obj(value, comm.rank + 1, _SCAN))
    return value


# ---------------------------------------------------------------------- buffer reductions
def _array(buf: Any) -> npt.NDArray[Any]:
    import numpy as np

    if isinstance(buf, np.ndarray):
        if not buf.flags.c_contiguous:
            raise LocalProtocolError("buffers must be C-contiguous (numpy.ascontiguousarray)")
        return buf.reshape(-1)
    try:
        return np.asarray(memoryview(buf)).reshape(-1)
    except TypeError:
        raise LocalProtocolError(
            f"expected a buffer (numpy array, bytes, memoryview), got {type(buf).__name__}"
        ) from None


def _combine_into(op: Op, acc: npt.NDArray[Any], other: npt.NDArray[Any]) -> None:
    """``acc = acc op other`` in place (`acc` holds the lower ranks' values)."""
    import numpy as np

    if op.ufunc:
        getattr(np, op.ufunc)(acc, other, out=acc)
    else:
        acc[...] = op.fn(acc, other)


def _check_same(send: np.ndarray[Any, Any], recv: np.ndarray[Any, Any]) -> None:
    if send.dtype != recv.dtype or send.size != recv.size:
        raise LocalProtocolError(
            f"send and receive buffers differ: {send.size} x {send.dtype} vs "
            f"{recv.size} x {recv.dtype}"
        )


def _reduce_to_zero(comm: TcpComm, send: npt.NDArray[Any], op: Op) -> npt.NDArray[Any] | None:
    acc = send.copy()
    tmp = acc.copy() if comm.size > 1 else acc

    def recv_child(child: int) -> npt.NDArray[Any]:
        comm.cwait(comm.crecv_buf(as_bytes_view(tmp), child, _REDUCE))
        return tmp

    def combine(value: npt.NDArray[Any], other: npt.NDArray[Any]) -> npt.NDArray[Any]:
        _combine_into(op, value, other)
        return value

    def send_up(value: npt.NDArray[Any], parent: int) -> None:
        comm.cwait(comm.csend_buf(as_bytes_view(value), parent, _REDUCE))

    total: npt.NDArray[Any] | None = _tree_reduce(comm, acc, combine, recv_child, send_up)
    return total


def buffer_reduce(comm: TcpComm, sendbuf: Any, recvbuf: Any, op: Op, root: int) -> None:
    send = _array(sendbuf)
    recv = None
    if comm.rank == root:
        if recvbuf is None:
            raise LocalProtocolError("Reduce needs a receive buffer at the root")
        recv = _array(recvbuf)
        _check_same(send, recv)
    total = _reduce_to_zero(comm, send, op)
    if root == 0:
        if recv is not None and total is not None:
            recv[...] = total
        return
    if comm.rank == 0 and total is not None:
        comm.cwait(comm.csend_buf(as_bytes_view(total), root, _REDUCE))
    elif recv is not None:
        comm.cwait(comm.crecv_buf(as_bytes_view(recv), 0, _REDUCE))


def buffer_allreduce(comm: TcpComm, sendbuf: Any, recvbuf: Any, op: Op) -> None:
    send = _array(sendbuf)
    recv = _array(recvbuf)
    _check_same(send, recv)
    if comm.size == 1:
        recv[...] = send
        return
    if send.nbytes < RING_MIN_BYTES or send.size < comm.size:
        total = _reduce_to_zero(comm, send, op)
        if total is not None:
            recv[...] = total
        buffer_bcast(comm, as_bytes_view(recv), 0)
        return
    _ring_allreduce(comm, send, recv, op)


def _ring_allreduce(comm: TcpComm, send: npt.NDArray[Any], a: npt.NDArray[Any], op: Op) -> None:
    """Ring reduce-scatter then ring allgather over `a` (a copy of `send`), in place.

    Every receive of both phases is posted before the first send, in the order the left
    neighbour sends, so each message lands straight in its final place (a scratch block
    for reduce-scatter, its segment of `a` for allgather) instead of the unexpected queue
    (which would cost an allocation and a second copy). This is safe: a segment's
    allgather message can only leave the left neighbour after this rank's own
    reduce-scatter send of that segment reached the ring, so it never overwrites data
    still to be sent or combined.
    """
    import numpy as np

    p, r = comm.size, comm.rank
    n = send.size
    bounds = [i * n // p for i in range(p + 1)]
    a[...] = send
    right, left = (r + 1) % p, (r - 1) % p
    width = max(bounds[i + 1] - bounds[i] for i in range(p))
    scratch = np.empty((p - 1, width), dtype=a.dtype)

    def seg(i: int) -> npt.NDArray[Any]:
        return a[bounds[i] : bounds[i + 1]]

    incoming = [scratch[step, : seg((r - step - 1) % p).size] for step in range(p - 1)]
    scatter_in = [comm.crecv_buf(as_bytes_view(block), left, _RING) for block in incoming]
    gather_in = [
        comm.crecv_buf(as_bytes_view(seg((r - step) % p)), left, _RING) for step in range(p - 1)
    ]
    sends = []
    for step in range(p - 1):
        sends.append(comm.csend_buf(as_bytes_view(seg((r - step) % p)), right, _RING))
        comm.cwait(scatter_in[step])
        # The segment holds this rank's partial result, `incoming` the left neighbours';
        # both orders are fine for the commutative operations the ring needs.
        _combine_into(op, seg((r - step - 1) % p), incoming[step])
    for step in range(p - 1):
        sends.append(comm.csend_buf(as_bytes_view(seg((r + 1 - step) % p)), right, _RING))
        comm.cwait(gather_in[step])
    comm.cwait(*sends)


# ---------------------------------------------------------------------- buffer data movement
def _recv_view(buf: Any, what: str) -> memoryview:
    view = as_bytes_view(buf)
    if view.readonly:
        raise LocalProtocolError(f"{what} needs a writable receive buffer (got a read-only one)")
    return view


def _blocks(comm: TcpComm, whole: memoryview, part: int, what: str) -> list[memoryview]:
    """`whole` cut into `comm.size` blocks of `part` bytes (rank order), or a clear error."""
    if len(whole) != part * comm.size:
        raise LocalProtocolError(
            f"{what}: the {comm.size}-rank buffer must hold {comm.size} x {part} bytes "
            f"(one block per rank, as large as the other buffer), got {len(whole)} bytes"
        )
    return [whole[r * part : (r + 1) * part] for r in range(comm.size)]


def buffer_scatter(comm: TcpComm, sendbuf: Any, recvbuf: Any, root: int) -> None:
    """Block r of the root's `sendbuf` lands in rank r's `recvbuf` (direct sends)."""
    mine = _recv_view(recvbuf, "Scatter")
    if comm.rank != root:
        comm.cwait(comm.crecv_buf(mine, root, _SCATTER))
        return
    if sendbuf is None:
        raise LocalProtocolError("Scatter needs a send buffer at the root")
    blocks = _blocks(comm, as_bytes_view(sendbuf), len(mine), "Scatter")
    sends = [comm.csend_buf(blocks[r], r, _SCATTER) for r in range(comm.size) if r != root]
    mine[:] = blocks[root]
    comm.cwait(*sends)


def buffer_gather(comm: TcpComm, sendbuf: Any, recvbuf: Any, root: int) -> None:
    """Rank r's `sendbuf` lands in block r of the root's `recvbuf` (direct receives)."""
    mine = as_bytes_view(sendbuf)
    if comm.rank != root:
        comm.cwait(comm.csend_buf(mine, root, _GATHER))
        return
    if recvbuf is None:
        raise LocalProtocolError("Gather needs a receive buffer at the root")
    blocks = _blocks(comm, _recv_view(recvbuf, "Gather"), len(mine), "Gather")
    receives = [comm.crecv_buf(blocks[r], r, _GATHER) for r in range(comm.size) if r != root]
    blocks[root][:] = mine
    comm.cwait(*receives)


def buffer_allgather(comm: TcpComm, sendbuf: Any, recvbuf: Any) -> None:
    """Every rank's `sendbuf` lands in block r of every `recvbuf`: a ring of p - 1 steps,
    each passing the block received last step to the right (bandwidth-optimal, Thakur et
    al. 2005 §4)."""
    mine = as_bytes_view(sendbuf)
    blocks = _blocks(comm, _recv_view(recvbuf, "Allgather"), len(mine), "Allgather")
    p, r = comm.size, comm.rank
    blocks[r][:] = mine
    right, left = (r + 1) % p, (r - 1) % p
    for step in range(p - 1):
        receive = comm.crecv_buf(blocks[(r - step - 1) % p], left, _RING)
        sending = comm.csend_buf(blocks[(r - step) % p], right, _RING)
        comm.cwait(receive, sending)


def buffer_alltoall(comm: TcpComm, sendbuf: Any, recvbuf: Any) -> None:
    """Block d of rank s's `sendbuf` lands in block s of rank d's `recvbuf` (direct)."""
    send = as_bytes_view(sendbuf)
    recv = _recv_view(recvbuf, "Alltoall")
    if len(send) != len(recv) or len(send) % comm.size:
        raise LocalProtocolError(
            f"Alltoall: send and receive buffers must be the same size, a multiple of "
            f"{comm.size} bytes; got {len(send)} and {len(recv)}"
        )
    part = len(send) // comm.size
    out, into = _blocks(comm, send, part, "Alltoall"), _blocks(comm, recv, part, "Alltoall")
    r = comm.rank
    receives = [comm.crecv_buf(into[s], s, _ALLTOALL) for s in range(comm.size) if s != r]
    sends = [comm.csend_buf(out[d], d, _ALLTOALL) for d in range(comm.size) if d != r]
    into[r][:] = out[r]
    comm.cwait(*receives, *sends)
