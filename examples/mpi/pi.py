"""Pi by numerical integration: each rank integrates 4 / (1 + x^2) over its share of [0, 1].

Run: ``tejido mpirun -n 4 examples/mpi/pi.py [INTERVALS]`` or, on a real MPI,
``mpirun -n 4 python examples/mpi/pi.py``. Rank 0 prints ``pi = <value>``.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
from __future__ import annotations

import sys

import numpy as np

from tejido import mpi


def main() -> None:
    comm = mpi.COMM_WORLD
    intervals = comm.bcast(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, root=0)
    h = 1.0 / intervals
    # Midpoint rule; rank r takes intervals r, r + size, r + 2 size, ...
    x = h * (np.arange(comm.rank, intervals, comm.size, dtype=np.float64) + 0.5)
    local = np.array([np.sum(4.0 / (1.0 + x * x)) * h])
    total = np.zeros(1)
    comm.Reduce(local, total, op=mpi.SUM, root=0)
    if comm.rank == 0:
        print(f"pi = {total[0]:.15f} (intervals={intervals}, ranks={comm.size})")


if __name__ == "__main__":
    main()
