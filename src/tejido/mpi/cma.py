"""Single-copy buffer transfers between ranks on one Linux host (cross-memory attach).

``process_vm_readv(2)`` copies bytes from another process's memory straight into ours:
one copy, where a socket or a shared-memory slot needs two (in, then out). MPI libraries
use it for large same-host messages (Open MPI's ``smsc/cma`` component, MPICH's "CMA"
LMT). Rules:

- The receiver reads; the sender only announces ``(pid, address, length)`` over the
  pair's socket and keeps its buffer untouched until the receiver acknowledges, which
  is when its send completes (`tejido.mpi.engine`).
- Linux lets a process read another's memory only with ptrace permission: same user and
  no Yama restriction (``/proc/sys/kernel/yama/ptrace_scope`` absent or 0), and no
  seccomp filter blocking the call. `available` checks the sysctl and reads this
  process's own memory once; when either fails, large buffers use shared-memory slots
  (`tejido.mpi.shm`) instead.
- Only writable buffers are announced (their address comes from ctypes' ``from_buffer``,
  which needs a writable buffer); read-only ones (``bytes``) use the slots.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache

__all__ = ["address", "available", "read"]


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


@cache
def _readv() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).process_vm_readv
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_ssize_t
    fn.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(_IoVec),
        ctypes.c_ulong,
        ctypes.POINTER(_IoVec),
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    return fn


@cache
def available() -> bool:
    """Whether this process may read a same-user process's memory (see module doc)."""
    if _readv() is None:
        return False
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            if f.read().strip() != "0":
                return False
    except FileNotFoundError:
        pass  # no Yama: ordinary same-user ptrace rules
    except OSError:
        return False
    probe = bytearray(b"tejido")
    copy = bytearray(len(probe))
    try:
        read(os.getpid(), address(memoryview(probe)) or 0, memoryview(copy))
    except OSError:
        return False
    return copy == probe


def address(view: memoryview) -> int | None:
    """The memory address of a writable, contiguous `view`; None when it is read-only."""
    if view.readonly or not view.nbytes:
        return None
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def read(pid: int, remote: int, into: memoryview) -> None:
    """Copy ``len(into)`` bytes at `remote` in process `pid` into `into` (OSError if not)."""
    fn = _readv()
    if fn is None:
        raise OSError(38, "process_vm_readv is not available")
    base = address(into)
    if base is None:
        raise OSError(22, "the destination buffer is read-only")
    done, total = 0, into.nbytes
    while done < total:  # the kernel may copy less than asked (page boundaries, signals)
        local = _IoVec(base + done, total - done)
        far = _IoVec(remote + done, total - done)
        got = fn(pid, ctypes.byref(local), 1, ctypes.byref(far), 1, 0)
        if got <= 0:
            err = ctypes.get_errno() or 5
            raise OSError(err, f"process_vm_readv from process {pid}: {os.strerror(err)}")
        done += got
