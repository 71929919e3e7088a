"""Large unexpected buffers are read lazily (tejido.mpi.stream): a buffer message of at
least LAZY_MIN_BYTES that arrives before its receive is left on the socket and later read
straight into the receive buffer; the pause ends whenever its bytes (or bytes behind
them) are needed, so no send pattern hangs. Ranks as threads (see mpi_threads)."""

from __future__ import annotations

import contextlib
import socket

import numpy as np
import pytest
from mpi_threads import make_comms, run_ranks

from tejido import mpi
from tejido.mpi.comm import TcpComm
from tejido.mpi.wire import LAZY_MIN_BYTES

BIG = 4 * LAZY_MIN_BYTES  # several times a socket pair's buffers: the sender must wait


def _payload(seed: int) -> np.ndarray:
    return (np.arange(BIG, dtype=np.uint64) * 7 + seed).astype(np.uint8)


def test_a_large_unexpected_buffer_waits_on_the_socket_then_lands_in_the_receive_buffer() -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            request = comm.Isend(_payload(1), dest=1, tag=1)
            request.wait()  # completes only once rank 1 reads, i.e. after its Recv
            comm.send("after", dest=1, tag=2)
            return None
        engine = comm.engine
        status = mpi.Status()
        comm.probe(source=0, tag=1, status=status)  # the header is here, matched by nothing
        message = engine.unexpected[comm.ctx][0]
        paused = (engine.paused_peers == {0}, message.data is None, status.count)
        # Nothing is read from rank 0 on purpose: the heartbeat check must not call that
        # silence a failure.
        engine.heartbeat_timeout_s = 1.0
        engine.peers[0].heard -= 100.0
        engine._check_heartbeats()
        engine.heartbeat_timeout_s = None
        alive = engine.peers[0].alive
        out = np.zeros(BIG, dtype=np.uint8)
        comm.Recv(out, source=0, tag=1)
        return paused, alive, message.direct, bool((out == _payload(1)).all()), comm.recv(0, 2)

    got = run_ranks(2, body)[1]
    assert got == ((True, True, BIG), True, True, True, "after")


@pytest.mark.parametrize("source", [0, mpi.ANY_SOURCE])
def test_the_pause_ends_when_a_message_behind_it_is_wanted(source: int) -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            big = comm.Isend(_payload(2), dest=1, tag=1)
            comm.send("small", dest=1, tag=2)  # behind the big one on the same socket
            big.wait()
            return None
        status = mpi.Status()
        small = comm.recv(source=source, tag=2, status=status)
        out = np.zeros(BIG, dtype=np.uint8)
        comm.Recv(out, source=0, tag=1)
        return small, status.source, bool((out == _payload(2)).all()), comm.engine.paused_peers

    assert run_ranks(2, body)[1] == ("small", 0, True, set())


def test_both_ranks_sending_large_buffers_before_receiving_still_completes() -> None:
    # Unsafe by MPI's rules (both block in Send), but the tcp backend has always completed
    # it; the pause must not change that (it ends after LAZY_WAIT_S of waiting).
    def body(comm: TcpComm) -> object:
        other = 1 - comm.rank
        comm.Send(_payload(comm.rank), dest=other, tag=3)
        out = np.zeros(BIG, dtype=np.uint8)
        comm.Recv(out, source=other, tag=3)
        return bool((out == _payload(other)).all())

    assert run_ranks(2, body) == [True, True]


def test_a_too_small_receive_for_a_paused_message_fails_and_the_stream_goes_on() -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            big = comm.Isend(_payload(3), dest=1, tag=1)
            comm.send("next", dest=1, tag=2)
            big.wait()
            return None
        comm.probe(source=0, tag=1)
        with pytest.raises(mpi.MessageMismatch, match="truncated"):
            comm.Recv(np.zeros(BIG // 2, dtype=np.uint8), source=0, tag=1)
        return comm.recv(source=0, tag=2)

    assert run_ranks(2, body)[1] == "next"


def test_a_sender_dying_while_its_message_is_paused_fails_the_receive() -> None:
    comms = make_comms(2)
    sender, receiver = comms
    try:
        request = sender.Isend(_payload(4), dest=1, tag=1)
        assert not request.test()[0]  # more than the socket buffers: still sending
        receiver.probe(source=0, tag=1)
        assert receiver.engine.paused_peers == {0}
        # Rank 0 "crashes": its socket closes without a BYE.
        sock = sender.engine.peers[1].sock
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        with pytest.raises(mpi.RankFailed) as failed:
            receiver.Recv(np.zeros(BIG, dtype=np.uint8), source=0, tag=1)
        assert failed.value.rank == 0
    finally:
        for comm in comms:
            with contextlib.suppress(Exception):
                comm.engine.finalize(1.0)
