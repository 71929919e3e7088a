"""Shared-memory segments for large buffers between ranks on one host (tcp backend).

One segment per direction of a pair of ranks, created by the sender on its first large
message to that peer: a file ``/dev/shm/tejido-mpi-<job>-<src>-to-<dst>`` created
exclusively with mode 0600 (only this user's processes can open it), `SLOTS` slots of
`SLOT_BYTES` each, mapped with `mmap`. The receiver opens it when the first such message
arrives and unlinks it at once, so nothing is left in /dev/shm once both have it mapped;
the sender unlinks it too when it closes (the receiver may never have come).

The protocol over the pair's TCP connection (see `tejido.mpi.engine`) carries only
notifications: a SHM header (kind, context, tag, total size) matched like any message,
then one SHM_CHUNK frame per slot filled (slot, length), each answered by a SHM_ACK
(slot) once the receiver has copied it out. Payload bytes never cross the socket, and the
sender fills the next free slot while the receiver empties the previous one.
"""

from __future__ import annotations

import contextlib
import mmap
import os

__all__ = ["SLOTS", "SLOT_BYTES", "Segment", "available", "segment_path"]

#: Slots per segment and bytes per slot (the segment is SLOTS * SLOT_BYTES).
SLOTS = 4
SLOT_BYTES = 1 << 20
_DIR = "/dev/shm"  # noqa: S108 (files created O_EXCL, mode 0600, under a random job id)


def available() -> bool:
    """Whether this host has a writable /dev/shm."""
    return os.path.isdir(_DIR) and os.access(_DIR, os.W_OK)


def segment_path(job: str, source: int, dest: int) -> str:
    return f"{_DIR}/tejido-mpi-{job}-{source}-to-{dest}"


class Segment:
    """A mapped /dev/shm file: created (sender) or opened and unlinked (receiver)."""

    __slots__ = ("_map", "path", "view")

    def __init__(self, path: str, *, create: bool) -> None:
        self.path = path
        size = SLOTS * SLOT_BYTES
        if create:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                # Reserve the pages now: a full /dev/shm fails here (ENOSPC, and the
                # engine falls back to the socket) instead of killing the process with
                # SIGBUS at the first copy.
                os.posix_fallocate(fd, 0, size)
            except OSError:
                os.close(fd)
                os.unlink(path)
                raise
        else:
            fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        if not create:
            self.unlink()
        self.view = memoryview(self._map)

    def slot(self, index: int, nbytes: int) -> memoryview:
        start = index * SLOT_BYTES
        return self.view[start : start + nbytes]

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        self.unlink()
        with contextlib.suppress(BufferError):
            self.view.release()
            self._map.close()
