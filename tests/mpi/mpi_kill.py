"""Run by test_mpi_launch.py under `tejido mpirun -n 3`: rank 2 kills itself with SIGKILL
while rank 0 waits for a message from it and rank 1 waits in an allreduce; both must get
`RankFailed(2)` (not hang) and print it."""

from __future__ import annotations

import os
import signal

from tejido import mpi


def main() -> None:
    comm = mpi.COMM_WORLD
    comm.barrier()
    if comm.rank == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        if comm.rank == 0:
            comm.recv(source=2, tag=0)
        else:
            comm.allreduce(1)
    except mpi.RankFailed as exc:
        print(f"rank {comm.rank}: RankFailed {exc.rank}: {exc}", flush=True)
    try:
        comm.send("x", dest=2)
    except mpi.RankFailed as exc:
        print(f"rank {comm.rank}: send RankFailed {exc.rank}", flush=True)


if __name__ == "__main__":
    main()
