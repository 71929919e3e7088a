"""A program run under both launchers by test_mpi_launch.py: checks every operation on the
real processes of whichever backend started it and prints ``ok <name>`` (rank 0) per check.

Each check compares with a value computed serially here, so a wrong answer raises
(non-zero exit) instead of printing ok.
"""

from __future__ import annotations

import sys

import numpy as np

from tejido import mpi


def check(name: str, got: object, want: object) -> None:
    if isinstance(got, np.ndarray):
        ok = isinstance(want, np.ndarray) and np.allclose(got, want)
    else:
        ok = got == want
    if not ok:
        raise SystemExit(f"rank {mpi.COMM_WORLD.rank}: {name}: got {got!r}, want {want!r}")
    if mpi.COMM_WORLD.rank == 0:
        print(f"ok {name}", flush=True)


def main() -> None:
    comm = mpi.COMM_WORLD
    r, n = comm.rank, comm.size
    want_backend = sys.argv[1]
    check("backend", comm.backend, want_backend)
    check("size", comm.size, int(sys.argv[2]))
    # p2p: order and wildcards
    if r == 1:
        for i in range(50):
            comm.send(i, dest=0, tag=i % 2)
    if r == 0:
        evens = [comm.recv(source=1, tag=0) for _ in range(25)]
        odds = [comm.recv(source=mpi.ANY_SOURCE, tag=1) for _ in range(25)]
        check("order", (evens, odds), (list(range(0, 50, 2)), list(range(1, 50, 2))))
    else:
        check("order", True, True)
    comm.barrier()
    if r != 0:
        comm.Send(np.full(4, r, dtype=np.int64), dest=0, tag=r)
    if r == 0:
        got = set()
        for _ in range(n - 1):
            status = mpi.Status()
            assert comm.probe(mpi.ANY_SOURCE, mpi.ANY_TAG, status) is True
            buf = np.empty(status.count // 8, dtype=np.int64)
            try:
                received = mpi.Status()
                assert comm.Recv(buf, status.source, status.tag, received) is None
            except Exception as exc:
                raise SystemExit(f"Recv after probe {status}: {exc}") from None
            same = (received.source, received.tag, received.Get_count()) == (
                status.Get_source(),
                status.Get_tag(),
                status.count,
            )
            got.add((status.source, status.tag, buf.tolist() == [status.source] * 4, same))
        check("probe+Recv", got, {(i, i, True, True) for i in range(1, n)})
    else:
        check("probe+Recv", True, True)
    comm.barrier()  # nothing below may be sent before rank 0 has probed everything
    peer = (r + 1) % n
    left = (r - 1) % n
    req = comm.irecv(source=left, tag=3)
    comm.isend(r, dest=peer, tag=3).wait()
    check("isend/irecv", req.wait(), left)
    big = np.full(2_000_000, float(r))
    out = np.empty_like(big)
    status = mpi.Status()
    comm.Sendrecv(big, peer, 4, out, left, 4, status)
    check("Sendrecv 16MB", out, np.full(2_000_000, float(left)))
    check("Sendrecv status", (status.source, status.tag, status.count), (left, 4, 16_000_000))
    status = mpi.Status()
    got_obj = comm.sendrecv(("hi", r), peer, 6, None, left, 6, status)
    check("sendrecv", (got_obj, status.source, status.tag), (("hi", left), left, 6))
    status = mpi.Status()
    req = comm.irecv(source=left, tag=7)
    comm.isend(r, dest=peer, tag=7).wait()
    check("irecv wait(status)", (req.wait(status), status.source, status.tag), (left, left, 7))
    # collectives
    check("bcast", comm.bcast("x" if r == 0 else None), "x")
    check("scatter", comm.scatter(list(range(n)) if r == 0 else None), r)
    check("gather", comm.gather(r), list(range(n)) if r == 0 else None)
    check("allgather", comm.allgather(r), list(range(n)))
    check("alltoall", comm.alltoall([r * 10 + d for d in range(n)]), [s * 10 + r for s in range(n)])
    check("reduce", comm.reduce(r, op=mpi.SUM), sum(range(n)) if r == 0 else None)
    check("allreduce MAX", comm.allreduce(r, op=mpi.MAX), n - 1)
    check("allreduce user", comm.allreduce({r}, op=lambda a, b: a | b), set(range(n)))
    check("scan", comm.scan(r), sum(range(r + 1)))
    for count in (1, 1_000_000):
        a = np.arange(count, dtype=np.float64) + r
        total = np.empty(count)
        comm.Allreduce(a, total, op=mpi.SUM)
        check(f"Allreduce {count}", total, np.arange(count) * n + sum(range(n)))
    buf = np.arange(10.0) if r == 0 else np.zeros(10)
    comm.Bcast(buf, root=0)
    check("Bcast", buf, np.arange(10.0))
    res = np.zeros(3) if r == 0 else None
    comm.Reduce(np.full(3, r + 1.0), res, op=mpi.PROD, root=0)
    check(
        "Reduce PROD",
        res if r == 0 else True,
        np.full(3, float(np.prod(np.arange(1, n + 1)))) if r == 0 else True,
    )
    # buffer data movement (no pickling): blocks of 3 float64 per rank
    whole = np.arange(3.0 * n) if r == 0 else None
    part = np.empty(3)
    comm.Scatter(whole, part, root=0)
    check("Scatter", part, np.arange(3.0 * r, 3.0 * r + 3))
    gathered = np.empty(3 * n) if r == n - 1 else None
    comm.Gather(part * 2, gathered, root=n - 1)
    check(
        "Gather", gathered if r == n - 1 else True, np.arange(3.0 * n) * 2 if r == n - 1 else True
    )
    everyone = np.empty(3 * n)
    comm.Allgather(part + 1, everyone)
    check("Allgather", everyone, np.arange(3.0 * n) + 1)
    into = np.empty(n, dtype=np.int64)
    comm.Alltoall(np.arange(n, dtype=np.int64) + 100 * r, into)
    check("Alltoall", into, np.arange(n, dtype=np.int64) * 100 + r)
    sub = comm.split(r % 2, r)
    assert sub is not None
    check("split", sub.allgather(r), [i for i in range(n) if i % 2 == r % 2])
    twin = comm.dup()
    check("dup", twin.allreduce(1), n)
    comm.barrier()
    if r == 0:
        print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
