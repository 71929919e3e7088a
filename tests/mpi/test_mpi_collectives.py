"""Every collective of the tcp backend on n = 1, 2, 3, 4 ranks (threads), against a serial
oracle computed in the test."""

from __future__ import annotations

import operator
from functools import reduce as fold

import numpy as np
import pytest
from mpi_threads import run_ranks

from tejido import mpi
from tejido.core.errors import LocalProtocolError
from tejido.mpi.collectives import RING_MIN_BYTES
from tejido.mpi.comm import TcpComm

SIZES = [1, 2, 3, 4]


@pytest.mark.parametrize("n", SIZES)
def test_object_collectives(n: int) -> None:
    def body(comm: TcpComm) -> object:
        r = comm.rank
        comm.barrier()
        root = comm.size - 1
        return {
            "bcast": comm.bcast({"from": r} if r == root else None, root=root),
            "scatter": comm.scatter([f"item{i}" for i in range(n)] if r == 0 else None),
            "gather": comm.gather(r * r, root=root),
            "allgather": comm.allgather(str(r)),
            "alltoall": comm.alltoall([(r, d) for d in range(n)]),
            "reduce": comm.reduce(r + 1, op=mpi.PROD, root=0),
            "reduce_str": comm.reduce(str(r), op=lambda a, b: a + b, root=root),
            "allreduce_max": comm.allreduce(-abs(r - 1), op=mpi.MAX),
            "allreduce_min": comm.allreduce(r + 10, op=mpi.MIN),
            "allreduce_sum": comm.allreduce(r),
            "scan": comm.scan(r + 1),
            "scan_str": comm.scan(str(r), op=mpi.Op(lambda a, b: a + b, "concat")),
        }

    results = run_ranks(n, body)
    ranks = range(n)
    for r, got in enumerate(results):
        assert got["bcast"] == {"from": n - 1}
        assert got["scatter"] == f"item{r}"
        assert got["gather"] == ([i * i for i in ranks] if r == n - 1 else None)
        assert got["allgather"] == [str(i) for i in ranks]
        assert got["alltoall"] == [(i, r) for i in ranks]
        assert got["reduce"] == (fold(operator.mul, [i + 1 for i in ranks]) if r == 0 else None)
        # Non-commutative: combined in rank order.
        assert got["reduce_str"] == ("".join(str(i) for i in ranks) if r == n - 1 else None)
        assert got["allreduce_max"] == max(-abs(i - 1) for i in ranks)
        assert got["allreduce_min"] == 10
        assert got["allreduce_sum"] == sum(ranks)
        assert got["scan"] == sum(i + 1 for i in range(r + 1))
        assert got["scan_str"] == "".join(str(i) for i in range(r + 1))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("count", [1, 5, RING_MIN_BYTES // 8 + 3, 300_001])
def test_buffer_reductions_small_tree_and_large_ring(n: int, count: int) -> None:
    def local(r: int) -> np.ndarray:
        return (np.arange(count, dtype=np.float64) % 97) * (r + 1) - r

    def body(comm: TcpComm) -> object:
        out = np.empty(count)
        comm.Allreduce(local(comm.rank), out, op=mpi.SUM)
        top = np.empty(count)
        comm.Allreduce(local(comm.rank), top, op=mpi.MAX)
        rooted = np.zeros(count) if comm.rank == n - 1 else None
        comm.Reduce(local(comm.rank), rooted, op=mpi.MIN, root=n - 1)
        user = np.empty(count)
        comm.Allreduce(local(comm.rank), user, op=lambda a, b: a + 2 * b - b)  # a user op
        return out, top, rooted, user

    results = run_ranks(n, body)
    parts = [local(r) for r in range(n)]
    want_sum = fold(np.add, parts)
    want_max = fold(np.maximum, parts)
    want_min = fold(np.minimum, parts)
    for r, (out, top, rooted, user) in enumerate(results):
        np.testing.assert_allclose(out, want_sum)
        np.testing.assert_array_equal(top, want_max)
        np.testing.assert_allclose(user, want_sum)
        if r == n - 1:
            np.testing.assert_array_equal(rooted, want_min)
        else:
            assert rooted is None


@pytest.mark.parametrize("n", SIZES)
def test_buffer_bcast_from_every_root(n: int) -> None:
    def body(comm: TcpComm) -> object:
        got = []
        for root in range(n):
            buf = (
                np.arange(1000, dtype=np.int64) * (root + 1)
                if comm.rank == root
                else np.zeros(1000, dtype=np.int64)
            )
            comm.Bcast(buf, root=root)
            got.append(int(buf.sum()))
        return got

    expected = [int(np.arange(1000).sum()) * (root + 1) for root in range(n)]
    assert run_ranks(n, body) == [expected] * n


@pytest.mark.parametrize("n", [3, 4])
def test_split_and_dup(n: int) -> None:
    def body(comm: TcpComm) -> object:
        half = comm.split(color=comm.rank % 2, key=-comm.rank)  # reversed order inside
        assert half is not None
        none = comm.split(color=-1 if comm.rank == 0 else 0)
        twin = comm.dup()
        # A message on the twin never matches a receive on the original (own context).
        if comm.rank == 0:
            twin.send("twin", dest=1, tag=0)
            comm.send("world", dest=1, tag=0)
        got = None
        if comm.rank == 1:
            got = (comm.recv(source=0, tag=0), twin.recv(source=0, tag=0))
        return (
            half.rank,
            half.size,
            half.allgather(comm.rank),
            none is None,
            twin.rank,
            twin.size,
            got,
        )

    results = run_ranks(n, body)
    for r, (hrank, hsize, members, none, trank, tsize, got) in enumerate(results):
        mates = sorted((i for i in range(n) if i % 2 == r % 2), reverse=True)
        assert members == mates
        assert (hrank, hsize) == (mates.index(r), len(mates))
        assert none is (r == 0)
        assert (trank, tsize) == (r, n)
        assert got == (("world", "twin") if r == 1 else None)


def test_collective_argument_errors() -> None:
    def body(comm: TcpComm) -> object:
        with pytest.raises(LocalProtocolError, match="root must be a rank"):
            comm.bcast(1, root=5)
        with pytest.raises(LocalProtocolError, match="alltoall needs 2 items"):
            comm.alltoall([1])
        with pytest.raises(LocalProtocolError, match="buffers differ"):
            comm.Allreduce(np.zeros(3), np.zeros(4))
        return True

    assert run_ranks(2, body) == [True, True]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("count", [1, 3, 50_000])
def test_buffer_scatter_gather_allgather_alltoall(n: int, count: int) -> None:
    def block(r: int, d: int = 0) -> np.ndarray:
        return np.arange(count, dtype=np.float64) * (r + 1) + 1000 * d + r

    root = n - 1

    def body(comm: TcpComm) -> object:
        r = comm.rank
        whole = np.concatenate([block(i) for i in range(n)]) if r == root else None
        part = np.empty(count)
        comm.Scatter(whole, part, root=root)
        gathered = np.full(n * count, -1.0) if r == 0 else None
        comm.Gather(block(r), gathered, root=0)
        everyone = np.full(n * count, -1.0)
        comm.Allgather(block(r), everyone)
        out = np.concatenate([block(r, d) for d in range(n)])
        into = np.full(n * count, -1.0)
        comm.Alltoall(out, into)
        # memoryviews and bytearrays work too, without numpy
        raw = bytearray(n)
        comm.Allgather(memoryview(bytes([r])), raw)
        return part, gathered, everyone, into, bytes(raw)

    results = run_ranks(n, body)
    everyone_want = np.concatenate([block(i) for i in range(n)])
    for r, (part, gathered, everyone, into, raw) in enumerate(results):
        np.testing.assert_array_equal(part, block(r))
        if r == 0:
            np.testing.assert_array_equal(gathered, everyone_want)
        else:
            assert gathered is None
        np.testing.assert_array_equal(everyone, everyone_want)
        np.testing.assert_array_equal(into, np.concatenate([block(s, r) for s in range(n)]))
        assert raw == bytes(range(n))


def test_buffer_collective_size_errors() -> None:
    def body(comm: TcpComm) -> object:
        with pytest.raises(LocalProtocolError, match=r"must hold 2 x 8 bytes .* got 24 bytes"):
            comm.Allgather(np.zeros(1), np.zeros(3))
        with pytest.raises(LocalProtocolError, match="read-only"):
            comm.Allgather(np.zeros(1), bytes(16))
        with pytest.raises(LocalProtocolError, match="same size"):
            comm.Alltoall(np.zeros(2), np.zeros(4))
        if comm.rank == 0:
            with pytest.raises(LocalProtocolError, match="Scatter needs a send buffer"):
                comm.Scatter(None, np.zeros(1), root=0)
            with pytest.raises(LocalProtocolError, match="Gather needs a receive buffer"):
                comm.Gather(np.zeros(1), None, root=0)
        return True

    assert run_ranks(2, body) == [True, True]
