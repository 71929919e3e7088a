"""Heartbeats of the tcp backend (ranks as threads over socket pairs): a silent rank is
declared failed by name within the timeout; a rank busy computing keeps beating and is
not."""

from __future__ import annotations

import socket
import threading

import pytest

from tejido import mpi
from tejido.mpi.comm import TcpComm
from tejido.mpi.engine import Engine

TIMEOUT_S = 1.0  # generous: a busy shared machine must not make a live rank miss it


def _pair(beat0: float | None, beat1: float | None) -> tuple[TcpComm, TcpComm]:
    a, b = socket.socketpair()
    return (
        TcpComm(Engine(0, 2, {1: a}, heartbeat_timeout_s=beat0), [0, 1], 0),
        TcpComm(Engine(1, 2, {0: b}, heartbeat_timeout_s=beat1), [0, 1], 0),
    )


def test_a_silent_rank_fails_a_receive_naming_it() -> None:
    # Rank 1 sends no heartbeats and nothing else: what rank 0 sees of a stopped process.
    comm0, comm1 = _pair(TIMEOUT_S, None)
    try:
        with pytest.raises(mpi.RankFailed, match=r"rank 1 failed: no heartbeat for 1 s") as info:
            comm0.recv(source=1, tag=0)
        assert info.value.rank == 1
        # Later operations that need it fail at once, naming it too.
        with pytest.raises(mpi.RankFailed, match="rank 1 failed"):
            comm0.send("x", dest=1)
        with pytest.raises(mpi.RankFailed, match="rank 1 failed"):
            comm0.barrier()
    finally:
        comm0.engine.finalize(1.0)
        comm1.engine.finalize(0.0)


def test_a_rank_busy_computing_keeps_beating() -> None:
    comm0, comm1 = _pair(TIMEOUT_S, TIMEOUT_S)
    computing = threading.Event()

    def rank1() -> None:
        # Two and a half timeouts' worth of "computation" without any MPI call, then a message.
        computing.wait(2.5 * TIMEOUT_S)
        comm1.send("done computing", dest=0, tag=7)
        comm1.engine.finalize(10.0)

    thread = threading.Thread(target=rank1, daemon=True)
    thread.start()
    try:
        assert comm0.recv(source=1, tag=7) == "done computing"
        assert comm0.engine.failed == {}
    finally:
        comm0.engine.finalize(10.0)
        thread.join(10.0)
    assert not thread.is_alive()


def test_the_heartbeat_timeout_must_be_positive() -> None:
    a, b = socket.socketpair()
    with pytest.raises(Exception, match="heartbeat timeout must be positive"):
        Engine(0, 2, {1: a}, heartbeat_timeout_s=-1.0)
    a.close()
    b.close()
