"""A ring pass: a token goes round the ranks LAPS times; each rank adds its rank to it.
The same is done with a numpy buffer (Send/Recv) to show the buffer path.

Run: ``tejido mpirun -n 4 examples/mpi/ring.py [LAPS]``. Rank 0 prints ``token = <value>``
(LAPS x (0 + 1 + ... + size-1)) and ``buffer token = <value>``.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
from __future__ import annotations

import sys

import numpy as np

from tejido import mpi


def main() -> None:
    comm = mpi.COMM_WORLD
    laps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    right, left = (comm.rank + 1) % comm.size, (comm.rank - 1) % comm.size
    token = 0
    buf = np.zeros(1, dtype=np.int64)
    for _ in range(laps):
        if comm.rank == 0:
            comm.send(token, dest=right, tag=7)
            token = comm.recv(source=left, tag=7)
            comm.Send(buf, dest=right, tag=8)
            comm.Recv(buf, source=left, tag=8)
        else:
            token = comm.recv(source=left, tag=7) + comm.rank
            comm.send(token, dest=right, tag=7)
            comm.Recv(buf, source=left, tag=8)
            buf += comm.rank
            comm.Send(buf, dest=right, tag=8)
    if comm.rank == 0:
        print(f"token = {token} (laps={laps}, ranks={comm.size})")
        print(f"buffer token = {int(buf[0])}")


if __name__ == "__main__":
    main()
