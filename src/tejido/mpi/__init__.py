"""Message passing with the MPI model over tejido's transport or a real MPI (docs/mpi.md).

``from tejido import mpi; comm = mpi.COMM_WORLD`` gives this process's world communicator
(created on first use, or by `init`). The backend is chosen once per process:
1. ``TEJIDO_MPI_BACKEND`` = ``tcp`` or ``mpi`` when set;
2. else ``mpi`` when an MPI launcher started us (``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``,
   ``PMIX_RANK`` or ``MPI_LOCALNRANKS`` in the environment);
3. else ``tcp``: the ranks `tejido mpirun` started, or a single rank (size 1) when the
   script runs on its own, as MPI's singleton init does.

A tcp-backend rank that stays silent (no data, no heartbeat) for ``TEJIDO_MPI_TIMEOUT``
seconds (default 60; `tejido mpirun --timeout`) counts as failed: operations needing it
raise `RankFailed` naming it.

Ranks on one host pass buffers of at least ``TEJIDO_MPI_SHM_MIN`` bytes (default 256 KiB;
0 turns it off) without the socket: read straight from the sender's memory where Linux
allows it (`tejido.mpi.cma`; ``TEJIDO_MPI_CMA=0`` turns that off), else through
shared-memory slots (`tejido.mpi.shm`).

The tcp backend finalizes at exit (`finalize`): it says BYE to every rank and waits, up to
``TEJIDO_MPI_FINALIZE_TIMEOUT`` seconds (default 30), until each has said BYE too or gone.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from tejido.core.errors import BadInput
from tejido.mpi.api import (
    ANY_SOURCE,
    ANY_TAG,
    MAX,
    MIN,
    PROD,
    SUM,
    AuthenticationFailed,
    Comm,
    MessageMismatch,
    MPIError,
    Op,
    RankFailed,
    Request,
    Status,
)

__all__ = [
    "ANY_SOURCE",
    "ANY_TAG",
    "COMM_WORLD",
    "MAX",
    "MIN",
    "PROD",
    "SUM",
    "AuthenticationFailed",
    "Comm",
    "MPIError",
    "MessageMismatch",
    "Op",
    "RankFailed",
    "Request",
    "Status",
    "backend_name",
    "finalize",
    "init",
]

_MPI_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
_world: Comm | None = None
_finalizers: list[Any] = []


def backend_name(env: dict[str, str] | None = None) -> str:
    """Which backend `init` picks in this environment (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    chosen = env.get("TEJIDO_MPI_BACKEND", "").strip().lower()
    if chosen:
        if chosen not in ("tcp", "mpi"):
            raise BadInput(f"TEJIDO_MPI_BACKEND must be 'tcp' or 'mpi', got {chosen!r}")
        return chosen
    if any(name in env for name in _MPI_LAUNCHER_VARS):
        return "mpi"
    return "tcp"


def init() -> Comm:
    """Start this process's backend (once) and return COMM_WORLD."""
    global _world
    if _world is not None:
        return _world
    if backend_name() == "mpi":
        from tejido.mpi.mpi4py_backend import world

        _world = world()
    else:
        _world = _tcp_world()
    return _world


def _tcp_world() -> Comm:
    from tejido.mpi.comm import TcpComm
    from tejido.mpi.engine import SHM_MIN_BYTES, Engine
    from tejido.mpi.setup import connect_job, job_from_env

    job = job_from_env()
    if job is None:
        engine = Engine(0, 1, {})
        return TcpComm(engine, [0], 0)
    nodes = job.nodes or ("",) * job.size
    same_host = [r for r in range(job.size) if r != job.rank and nodes[r] == nodes[job.rank]]
    shm_min = int(os.environ.get("TEJIDO_MPI_SHM_MIN", str(SHM_MIN_BYTES)))
    engine = Engine(
        job.rank,
        job.size,
        connect_job(job),
        heartbeat_timeout_s=job.heartbeat_timeout_s,
        shm_job=job.job if shm_min > 0 else None,
        shm_peers=same_host,
        shm_min_bytes=shm_min,
        cross_memory=os.environ.get("TEJIDO_MPI_CMA", "1") != "0",
    )
    timeout = float(os.environ.get("TEJIDO_MPI_FINALIZE_TIMEOUT", "30"))
    _finalizers.append(lambda: engine.finalize(timeout))
    atexit.register(finalize)
    return TcpComm(engine, range(job.size), 0)


def finalize() -> None:
    """Shut the backend down (runs at exit by itself; calling it twice is harmless)."""
    while _finalizers:
        _finalizers.pop()()


def __getattr__(name: str) -> Any:
    if name == "COMM_WORLD":
        return init()
    raise AttributeError(f"module 'tejido.mpi' has no attribute {name!r}")
