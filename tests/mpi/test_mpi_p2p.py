"""Point-to-point semantics of the tcp backend (ranks as threads, see mpi_threads)."""

from __future__ import annotations

import numpy as np
import pytest
from mpi_threads import run_ranks

from tejido import mpi
from tejido.core.errors import LocalProtocolError
from tejido.mpi.comm import TcpComm


def test_send_recv_objects_and_status() -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            comm.send({"a": [1, 2, 3]}, dest=1, tag=5)
            return None
        value, status = comm.recv_status(source=0, tag=5)
        return value, status.source, status.tag

    assert run_ranks(2, body)[1] == ({"a": [1, 2, 3]}, 0, 5)


def test_non_overtaking_order_per_source_and_tag() -> None:
    # MPI 4.0 §3.5: messages from one sender match in the order sent.
    count = 500

    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            for i in range(count):
                comm.send(i, dest=1, tag=i % 3)
            return None
        by_tag = {
            t: [comm.recv(source=0, tag=t) for _ in range(count // 3 + (t < count % 3))]
            for t in (2, 0, 1)
        }
        return by_tag

    got = run_ranks(2, body)[1]
    for t in range(3):
        assert got[t] == [i for i in range(count) if i % 3 == t]


def test_any_source_any_tag_receives_everyone_in_per_source_order() -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank != 0:
            for i in range(20):
                comm.send((comm.rank, i), dest=0, tag=comm.rank)
            return None
        seen: dict[int, list[int]] = {1: [], 2: [], 3: []}
        for _ in range(60):
            (sender, i), status = comm.recv_status(mpi.ANY_SOURCE, mpi.ANY_TAG)
            assert status.source == sender
            assert status.tag == sender
            seen[sender].append(i)
        return seen

    seen = run_ranks(4, body)[0]
    assert all(v == list(range(20)) for v in seen.values())


def test_probe_and_iprobe_report_source_tag_and_size() -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank == 1:
            comm.Send(np.arange(10, dtype=np.int32), dest=0, tag=9)
            comm.barrier()
            return None
        status = mpi.Status()
        probed = comm.probe(mpi.ANY_SOURCE, mpi.ANY_TAG, status)
        again = mpi.Status()
        found = comm.Iprobe(1, 9, again)
        none = mpi.Status()
        missing = comm.iprobe(1, 3, none)
        buf = np.empty(status.count // 4, dtype=np.int32)
        received = mpi.Status()
        result = comm.Recv(buf, status.source, status.tag, received)
        comm.barrier()
        return probed, status, found, again, missing, none, result, received, buf.tolist()

    probed, status, found, again, missing, none, result, received, values = run_ranks(2, body)[0]
    assert probed is True
    assert (status.source, status.tag, status.count) == (1, 9, 40)
    assert (status.Get_source(), status.Get_tag(), status.Get_count()) == (1, 9, 40)
    assert found is True
    assert again == status
    assert missing is False
    assert (none.source, none.tag, none.count) == (mpi.ANY_SOURCE, mpi.ANY_TAG, 0)  # untouched
    assert result is None  # mpi4py's signature: the status is the caller's
    assert received == status
    assert values == list(range(10))


def test_status_is_filled_by_sendrecv_wait_test_waitany_and_waitall() -> None:
    def body(comm: TcpComm) -> object:
        peer = 1 - comm.rank
        out = np.zeros(3, dtype=np.int64)
        by_sendrecv = mpi.Status()
        comm.Sendrecv(np.full(3, comm.rank), peer, 4, out, peer, 4, by_sendrecv)
        obj_status = mpi.Status()
        obj = comm.sendrecv(comm.rank, peer, 5, None, mpi.ANY_SOURCE, mpi.ANY_TAG, obj_status)
        recvs = [comm.irecv(source=peer, tag=t) for t in (10, 11, 12)]
        for t in (10, 11, 12):
            comm.isend(t, dest=peer, tag=t).wait()
        by_wait = mpi.Status()
        recvs[0].wait(by_wait)
        by_any = mpi.Status()
        index, value = mpi.Request.waitany(recvs[1:2], by_any)
        by_all = [mpi.Status()]
        rest = mpi.Request.waitall(recvs[2:], by_all)
        by_test = mpi.Status()
        probe_req = comm.irecv(source=peer, tag=13)
        comm.isend("t", dest=peer, tag=13).wait()
        done, got = False, None
        while not done:
            done, got = probe_req.test(by_test)
        return (
            out.tolist(),
            (by_sendrecv.source, by_sendrecv.tag, by_sendrecv.count),
            (obj, obj_status.source, obj_status.tag),
            (by_wait.source, by_wait.tag),
            (index, value, by_any.tag),
            (rest, by_all[0].tag),
            (got, by_test.tag),
        )

    results = run_ranks(2, body)
    for rank, got in enumerate(results):
        peer = 1 - rank
        assert got == (
            [peer] * 3,
            (peer, 4, 24),
            (peer, peer, 5),
            (peer, 10),
            (0, 11, 11),
            ([12], 12),
            ("t", 13),
        )


def test_buffers_land_in_the_receivers_array() -> None:
    size = 3 * 1024 * 1024 + 7  # larger than the socket buffers: arrives in many reads

    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            data = np.arange(size, dtype=np.uint8)
            comm.Send(data, dest=1, tag=1)
            comm.Send(memoryview(b"hello"), dest=1, tag=2)
            comm.Send(b"world", dest=1, tag=3)
            return None
        out = np.zeros(size, dtype=np.uint8)
        request = comm.Irecv(out, source=0, tag=1)  # posted first: read straight into `out`
        request.wait()
        small = bytearray(5)
        comm.Recv(small, 0, 2)
        late = bytearray(5)
        comm.Recv(late, 0, 3)
        return bool((out == np.arange(size, dtype=np.uint8)).all()), bytes(small), bytes(late)

    assert run_ranks(2, body)[1] == (True, b"hello", b"world")


def test_isend_irecv_waitall_waitany_and_test() -> None:
    def body(comm: TcpComm) -> object:
        peer = 1 - comm.rank
        recvs = [comm.irecv(source=peer, tag=t) for t in range(5)]
        sends = [comm.isend(comm.rank * 100 + t, dest=peer, tag=t) for t in range(5)]
        index, first = mpi.Request.waitany(recvs)
        rest = mpi.Request.waitall(recvs)
        mpi.Request.waitall(sends)
        done, value = recvs[0].test()
        return index, first, rest, done, value

    results = run_ranks(2, body)
    for rank, (index, first, rest, done, value) in enumerate(results):
        peer = 1 - rank
        assert rest == [peer * 100 + t for t in range(5)]
        assert first == rest[index]
        assert done is True
        assert value == peer * 100


def test_both_ranks_sending_large_before_receiving_do_not_deadlock() -> None:
    n = 4 * 1024 * 1024

    def body(comm: TcpComm) -> object:
        peer = 1 - comm.rank
        comm.Send(np.full(n, comm.rank, dtype=np.uint8), dest=peer)
        out = np.empty(n, dtype=np.uint8)
        comm.Recv(out, source=peer)
        return int(out[0]), int(out[-1])

    assert run_ranks(2, body) == [(1, 1), (0, 0)]


def test_self_send() -> None:
    def body(comm: TcpComm) -> object:
        comm.send("me", dest=comm.rank, tag=4)
        out = bytearray(3)
        comm.Send(b"abc", dest=comm.rank)
        comm.Recv(out, source=comm.rank, tag=0)
        return comm.recv(source=comm.rank, tag=4), bytes(out)

    assert run_ranks(1, body) == [("me", b"abc")]


def test_bad_arguments_are_named() -> None:
    def body(comm: TcpComm) -> object:
        with pytest.raises(LocalProtocolError, match=r"dest must be a rank in 0\.\.1"):
            comm.send(1, dest=2)
        with pytest.raises(LocalProtocolError, match="tag must be"):
            comm.send(1, dest=0, tag=-5)
        with pytest.raises(LocalProtocolError, match="expected a buffer"):
            comm.Send(object(), dest=0)  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError, match="writable"):
            comm.Recv(b"ro", source=0)
        return True

    assert run_ranks(2, body) == [True, True]


def test_truncation_and_kind_mismatch_are_typed_errors() -> None:
    def body(comm: TcpComm) -> object:
        if comm.rank == 0:
            comm.Send(bytes(10), dest=1, tag=1)
            comm.send("obj", dest=1, tag=2)
            comm.Send(b"x", dest=1, tag=3)
            comm.send("after", dest=1, tag=4)
            return None
        with pytest.raises(mpi.MessageMismatch, match="truncated: rank 0 sent 10 bytes"):
            comm.Recv(bytearray(4), source=0, tag=1)
        with pytest.raises(mpi.MessageMismatch, match="object message"):
            comm.Recv(bytearray(4), source=0, tag=2)
        with pytest.raises(mpi.MessageMismatch, match="buffer message"):
            comm.recv(source=0, tag=3)
        return comm.recv(source=0, tag=4)  # the stream is still in sync

    assert run_ranks(2, body)[1] == "after"
