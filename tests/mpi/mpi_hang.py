"""Run by test_mpi_launch.py under `tejido mpirun -n 3 --timeout T`: rank 2 stops itself
with SIGSTOP (alive, connections open, silent) while rank 0 waits for a message from it
and rank 1 waits in an allreduce; both must get `RankFailed(2)` from the missing
heartbeats (not hang), print it, and exit with code 3 so that mpirun ends the job."""

from __future__ import annotations

import os
import signal

from tejido import mpi


def main() -> None:
    comm = mpi.COMM_WORLD
    comm.barrier()
    if comm.rank == 2:
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    try:
        if comm.rank == 0:
            comm.recv(source=2, tag=0)
        else:
            comm.allreduce(1)
    except mpi.RankFailed as exc:
        print(f"rank {comm.rank}: RankFailed {exc.rank}: {exc}", flush=True)
        raise SystemExit(3) from None


if __name__ == "__main__":
    main()
