"""A parallel sum: rank 0 scatters chunks of 0..N-1, every rank sums its chunk's squares,
and an allreduce adds the partial sums (every rank gets the total).

Run: ``tejido mpirun -n 4 examples/mpi/parallel_sum.py [N]``. Rank 0 prints ``sum = <value>``.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
from __future__ import annotations

import sys

import numpy as np

from tejido import mpi


def main() -> None:
    comm = mpi.COMM_WORLD
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    chunks = None
    if comm.rank == 0:
        chunks = np.array_split(np.arange(n, dtype=np.int64), comm.size)
    mine = comm.scatter(chunks, root=0)
    partial = int(np.sum(mine * mine))
    total = comm.allreduce(partial, op=mpi.SUM)
    if comm.rank == 0:
        print(f"sum = {total} (sum of i*i for i < {n}, ranks={comm.size})")


if __name__ == "__main__":
    main()
