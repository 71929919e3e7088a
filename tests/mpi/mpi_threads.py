"""Run n tcp-backend ranks as threads of the test process, connected by socket pairs.

The engine keeps no global state, so n `Engine`s in n threads behave like n processes
(minus the launcher and the TCP setup, which the integration tests cover): a fast way to
check every operation on n = 1..4.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

from tejido.mpi.comm import TcpComm
from tejido.mpi.engine import Engine

#: Seconds a whole threaded job may take before the test fails (not a performance bound).
JOB_TIMEOUT_S = 60.0


def make_comms(
    n: int, shm_min_bytes: int | None = None, *, cross_memory: bool = False
) -> list[TcpComm]:
    """n connected communicators; with `shm_min_bytes`, buffers at least that large go
    through shared-memory slots, or with `cross_memory` are read from the sender's
    memory (all ranks count as one host)."""
    socks: list[dict[int, socket.socket]] = [{} for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = socket.socketpair()
            socks[i][j] = a
            socks[j][i] = b
    job = secrets.token_hex(6) if shm_min_bytes is not None else None
    return [
        TcpComm(
            Engine(
                r,
                n,
                socks[r],
                shm_job=job,
                shm_peers=range(n),
                shm_min_bytes=shm_min_bytes or 0,
                cross_memory=cross_memory,
            ),
            list(range(n)),
            0,
        )
        for r in range(n)
    ]


def run_ranks(
    n: int,
    fn: Callable[[TcpComm], Any],
    *,
    finalize: bool = True,
    shm_min_bytes: int | None = None,
    cross_memory: bool = False,
) -> list[Any]:
    """Run ``fn(comm)`` on every rank; return the results in rank order, or raise the first
    rank's exception (by rank)."""
    comms = make_comms(n, shm_min_bytes, cross_memory=cross_memory)
    results: list[Any] = [None] * n
    errors: list[BaseException | None] = [None] * n

    def body(rank: int) -> None:
        try:
            results[rank] = fn(comms[rank])
        except BaseException as exc:  # reported to the test below
            errors[rank] = exc
        finally:
            if finalize:
                comms[rank].engine.finalize(10.0)

    threads = [threading.Thread(target=body, args=(r,), daemon=True) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOB_TIMEOUT_S)
        if t.is_alive():
            raise TimeoutError(f"a rank did not finish within {JOB_TIMEOUT_S} s")
    for error in errors:
        if error is not None:
            raise error
    return results
