"""A distributed matrix-vector product y = A x: each rank owns a block of A's rows,
x is broadcast (buffer Bcast), each rank computes its rows of y, rank 0 gathers them.

A[i, j] = ((i + 2 j) mod 7) - 3 and x[j] = j mod 5, so anyone can check the result.
Run: ``tejido mpirun -n 4 examples/mpi/matvec.py [N]``. Rank 0 prints ``y = [...]``
(for N <= 16) and ``checksum = <sum of y> norm = <|y|>``.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
from __future__ import annotations

import sys

import numpy as np

from tejido import mpi


def matrix_rows(first: int, stop: int, n: int) -> np.ndarray:
    i = np.arange(first, stop, dtype=np.int64)[:, None]
    j = np.arange(n, dtype=np.int64)[None, :]
    return (((i + 2 * j) % 7) - 3).astype(np.float64)


def main() -> None:
    comm = mpi.COMM_WORLD
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    x = np.empty(n, dtype=np.float64)
    if comm.rank == 0:
        x[:] = np.arange(n) % 5
    comm.Bcast(x, root=0)
    first, stop = comm.rank * n // comm.size, (comm.rank + 1) * n // comm.size
    y_local = matrix_rows(first, stop, n) @ x
    blocks = comm.gather(y_local, root=0)
    if comm.rank == 0:
        assert blocks is not None
        y = np.concatenate(blocks)
        if n <= 16:
            print("y =", [int(v) for v in y])
        print(f"checksum = {y.sum():.6f} norm = {np.linalg.norm(y):.6f} (n={n}, ranks={comm.size})")


if __name__ == "__main__":
    main()
