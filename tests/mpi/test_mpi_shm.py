"""Same-host paths of the tcp backend (ranks as threads), each test run twice: large
buffers through /dev/shm slots (``slots``) and read straight from the sender's memory
(``cma``, process_vm_readv). Both keep every rule of the socket path (order, wildcards,
unexpected messages, truncation errors, collectives, failure)."""

from __future__ import annotations

import glob
from functools import reduce as fold

import numpy as np
import pytest
from mpi_threads import make_comms, run_ranks

from tejido import mpi
from tejido.core.errors import LocalProtocolError
from tejido.mpi import cma, shm
from tejido.mpi.comm import TcpComm

pytestmark = pytest.mark.skipif(not shm.available(), reason="no writable /dev/shm")
MODES = [
    "slots",
    pytest.param("cma", marks=pytest.mark.skipif(not cma.available(), reason="no CMA")),
]

MIN = 64 * 1024
#: More than all slots together, so the sender must wait for the receiver's acks.
BIG = shm.SLOTS * shm.SLOT_BYTES * 2 + 12345


def _segments() -> set[str]:
    return set(glob.glob("/dev/shm/tejido-mpi-*"))


@pytest.mark.parametrize("mode", MODES)
def test_large_buffers_interleaved_with_small_messages_keep_their_order(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real_read = cma.read

    def counting_read(pid: int, remote: int, into: memoryview) -> None:
        reads.append(into.nbytes)
        real_read(pid, remote, into)

    monkeypatch.setattr(cma, "read", counting_read)
    before = _segments()

    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            for i in range(3):
                comm.Send(np.full(BIG, i, dtype=np.uint8), dest=1, tag=5)
                comm.Send(np.full(10, i, dtype=np.uint8), dest=1, tag=5)  # socket path
            return None
        got = []
        for _ in range(6):
            status = mpi.Status()
            comm.probe(source=0, tag=5, status=status)
            buf = np.empty(status.count, dtype=np.uint8)
            comm.Recv(buf, source=0, tag=5)
            got.append((buf.size, int(buf.min()), int(buf.max())))
        # The large ones really came through a segment or the sender's memory.
        assert (comm.engine.peers[0].shm_rx_segment is not None) is (mode == "slots")
        return got

    got = run_ranks(2, body, shm_min_bytes=MIN, cross_memory=mode == "cma")[1]
    assert reads == ([BIG] * 3 if mode == "cma" else [])
    assert got == [item for i in range(3) for item in ((BIG, i, i), (10, i, i))]
    assert _segments() <= before  # every segment was unlinked


@pytest.mark.parametrize("mode", MODES)
def test_both_directions_at_once_and_unexpected_messages(mode: str) -> None:
    def body(comm: TcpComm) -> object:
        other = 1 - comm.rank
        mine = np.arange(BIG // 8, dtype=np.float64) + comm.rank
        theirs = np.empty_like(mine)
        comm.Sendrecv(mine, other, recvbuf=theirs, source=other)  # both send before receiving
        # Sent before the receive is posted: lands in the unexpected queue first.
        if comm.rank == 0:
            comm.Isend(mine * 2, dest=other, tag=9).wait()
        late = np.empty_like(mine)
        if comm.rank == 1:
            comm.barrier()
            comm.Recv(late, source=mpi.ANY_SOURCE, tag=mpi.ANY_TAG)
        else:
            comm.barrier()
        return theirs, late if comm.rank == 1 else None

    results = run_ranks(2, body, shm_min_bytes=MIN, cross_memory=mode == "cma")
    base = np.arange(BIG // 8, dtype=np.float64)
    np.testing.assert_array_equal(results[0][0], base + 1)
    np.testing.assert_array_equal(results[1][0], base)
    np.testing.assert_array_equal(results[1][1], base * 2)


@pytest.mark.parametrize("mode", MODES)
def test_a_too_small_receive_buffer_is_refused_by_name(mode: str) -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            comm.Send(np.zeros(MIN * 2, dtype=np.uint8), dest=1)
            return None
        with pytest.raises(mpi.MessageMismatch, match=r"sent 131072 bytes .* 65536-byte"):
            comm.Recv(np.zeros(MIN, dtype=np.uint8), source=0)
        return True

    assert run_ranks(2, body, shm_min_bytes=MIN, cross_memory=mode == "cma")[1] is True


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [2, 3, 4])
def test_collectives_through_shared_memory(n: int, mode: str) -> None:
    count = 1_000_000

    def local(r: int) -> np.ndarray:
        return np.arange(count, dtype=np.float64) * (r + 1)

    def body(comm: TcpComm) -> object:
        out = np.empty(count)
        comm.Allreduce(local(comm.rank), out, op=mpi.SUM)
        everyone = np.empty(count * n)
        comm.Allgather(local(comm.rank)[: count // 8 * 8], everyone)
        return out, everyone

    results = run_ranks(n, body, shm_min_bytes=MIN, cross_memory=mode == "cma")
    want = fold(np.add, [local(r) for r in range(n)])
    for out, everyone in results:
        np.testing.assert_allclose(out, want)
        np.testing.assert_array_equal(everyone, np.concatenate([local(r) for r in range(n)]))


@pytest.mark.parametrize("mode", MODES)
def test_a_dead_receiver_fails_a_send_waiting_for_slots(mode: str) -> None:
    comm0, comm1 = make_comms(2, shm_min_bytes=MIN, cross_memory=mode == "cma")
    # Rank 1 never receives (all slots stay full), then its process "dies".
    request = comm0.Isend(np.zeros(BIG, dtype=np.uint8), dest=1)
    comm1.engine.peers[0].sock.close()
    with pytest.raises(mpi.RankFailed, match="rank 1 failed"):
        request.wait()
    comm0.engine.finalize(1.0)
    with pytest.raises(LocalProtocolError):
        comm0.Send(np.zeros(3), dest=5)


def test_no_room_in_dev_shm_falls_back_to_the_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shm, "Segment", full)

    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            comm.Send(np.arange(BIG // 8, dtype=np.float64), dest=1)
            return comm.engine.shm_peers
        buf = np.empty(BIG // 8)
        comm.Recv(buf, source=0)
        return buf

    peers0, got = run_ranks(2, body, shm_min_bytes=MIN)
    assert 1 not in peers0
    np.testing.assert_array_equal(got, np.arange(BIG // 8, dtype=np.float64))
