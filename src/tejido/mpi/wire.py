"""The tcp backend's wire format: message kinds, the frame header, and `Message`.

After a connection is set up and authenticated (see `tejido.mpi.setup`), every message is
one tejido frame (`tejido.net.frames`: a 4-byte big-endian length, then that many bytes)
whose payload starts with a fixed 13-byte header ``kind, context, tag`` followed by the
message bytes: a pickled object (kind OBJECT) or a buffer's raw bytes (kind BUFFER), never
re-encoded. The other kinds are the engine's own: BYE (finalizing; its context field
carries the ranks its sender saw crash), READY (setup), HEARTBEAT, and the same-host
notices (SHM, SHM_CHUNK, SHM_ACK, CMA, CMA_ACK; see `tejido.mpi.samehost`).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from tejido.core.errors import LocalProtocolError

if TYPE_CHECKING:
    from tejido.mpi.requests import TcpRequest

__all__ = [
    "BUFFER",
    "BYE",
    "CMA",
    "CMA_ACK",
    "HEADER_SIZE",
    "HEARTBEAT",
    "LAZY_MIN_BYTES",
    "LAZY_WAIT_S",
    "OBJECT",
    "READY",
    "SHM",
    "SHM_ACK",
    "SHM_CHUNK",
    "SHM_MIN_BYTES",
    "Message",
    "as_bytes_view",
    "encode_header",
]

OBJECT = 1
BUFFER = 2
BYE = 3
READY = 4
HEARTBEAT = 5
#: A buffer whose bytes travel through shared memory (see tejido.mpi.shm); then its chunks.
SHM = 6
SHM_CHUNK = 7
SHM_ACK = 8
#: A buffer the receiver reads straight from the sender's memory (tejido.mpi.cma); its ack.
CMA = 9
CMA_ACK = 10
_CMA_NOTE = struct.Struct("<QQQ")  # sender's pid, buffer address, length
#: Buffers at least this large go through shared memory to a peer on the same host.
SHM_MIN_BYTES = 256 * 1024
_SHM_SIZE = struct.Struct("<Q")

_LEN = struct.Struct(">I")
_META = struct.Struct("<BQi")
#: Frame length prefix plus the message header.
HEADER_SIZE = _LEN.size + _META.size
_RBUF = 256 * 1024
#: A socket-borne buffer message at least this large that arrives before its receive is
#: posted is not read yet (see `tejido.mpi.stream`): its bytes wait in the kernel, and
#: later go straight into the receive buffer instead of a temporary copy.
LAZY_MIN_BYTES = _RBUF
#: ... for at most this long while this rank waits inside MPI calls (then it is read into
#: a temporary buffer, as an unexpected message always was).
LAZY_WAIT_S = 0.05
#: Payloads up to this size are copied behind their header and written in one piece.
_SMALL = 16 * 1024
_MAX_FRAME = 2**32 - 1


def encode_header(kind: int, ctx: int, tag: int, nbytes: int) -> bytes:
    size = _META.size + nbytes
    if size > _MAX_FRAME:
        raise LocalProtocolError(f"a message is at most {_MAX_FRAME - _META.size} bytes")
    return _LEN.pack(size) + _META.pack(kind, ctx, tag)


def as_bytes_view(buf: Any) -> memoryview:
    """A flat, byte-format view of any contiguous buffer (numpy array, bytes, memoryview)."""
    try:
        view = memoryview(buf)
    except TypeError:
        raise LocalProtocolError(
            f"expected a buffer (numpy array, bytes, bytearray, memoryview), "
            f"got {type(buf).__name__}"
        ) from None
    if not view.contiguous:
        raise LocalProtocolError("buffers must be contiguous (use numpy.ascontiguousarray)")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class Message:
    """One incoming message: header known, payload possibly still arriving."""

    __slots__ = ("ctx", "data", "direct", "filled", "kind", "nbytes", "request", "source", "tag")

    def __init__(self, kind: int, ctx: int, tag: int, source: int, nbytes: int) -> None:
        self.kind = kind
        self.ctx = ctx
        self.tag = tag
        self.source = source  # world rank
        self.nbytes = nbytes
        self.filled = 0
        self.data: bytearray | memoryview | None = None
        self.request: TcpRequest | None = None
        #: True when `data` is the matched receive's own buffer.
        self.direct = False

    @property
    def complete(self) -> bool:
        return self.filled == self.nbytes
