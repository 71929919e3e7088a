"""A Jacobi solver for the 1-D heat equation with halo exchange.

A rod of N interior points between a hot end (1.0) and a cold end (0.0); each step sets
every point to the mean of its neighbours. Each rank owns a contiguous block plus one
ghost cell on each side, refreshed every step from its neighbours with Sendrecv; the
residual (largest change) is combined with allreduce(MAX).
Run: ``tejido mpirun -n 4 examples/mpi/jacobi.py [N] [STEPS]``. Rank 0 prints
``checksum = <sum of the rod> residual = <last max change>``.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
from __future__ import annotations

import sys

import numpy as np

from tejido import mpi

HOT, COLD = 1.0, 0.0


def main() -> None:
    comm = mpi.COMM_WORLD
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    rank, size = comm.rank, comm.size
    first, stop = rank * n // size, (rank + 1) * n // size
    u = np.zeros(stop - first + 2)  # u[0] and u[-1] are ghost cells
    if rank == 0:
        u[0] = HOT
    if rank == size - 1:
        u[-1] = COLD
    left = rank - 1 if rank > 0 else None
    right = rank + 1 if rank < size - 1 else None
    residual = 0.0
    for _ in range(steps):
        # Halo exchange: even and odd neighbours pair up through Sendrecv.
        if right is not None:
            comm.Sendrecv(u[-2:-1], right, 1, u[-1:], source=right, recvtag=2)
        if left is not None:
            comm.Sendrecv(u[1:2], left, 2, u[0:1], source=left, recvtag=1)
        new = 0.5 * (u[:-2] + u[2:])
        change = float(np.max(np.abs(new - u[1:-1]))) if new.size else 0.0
        u[1:-1] = new
        residual = comm.allreduce(change, op=mpi.MAX)
    total = comm.reduce(float(np.sum(u[1:-1])), op=mpi.SUM, root=0)
    if rank == 0:
        print(f"checksum = {total:.12f} residual = {residual:.12e} (n={n}, steps={steps})")


if __name__ == "__main__":
    main()
