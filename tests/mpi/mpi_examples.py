"""Run by test_mpi_launch.py under either launcher: runs every example of examples/mpi,
unmodified (as ``__main__``, with its own arguments), one after the other in this one job,
printing ``== <name>`` before each; a launch costs seconds on a loaded machine, so one
launch per backend and size covers all five."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from tejido import mpi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mpi"
RUNS = [
    ("pi", ["200000"]),
    ("parallel_sum", ["12345"]),
    ("ring", ["4"]),
    ("matvec", ["14"]),
    ("jacobi", ["50", "300"]),
]


def main() -> None:
    comm = mpi.COMM_WORLD
    for name, args in RUNS:
        comm.barrier()
        if comm.rank == 0:
            print(f"== {name}", flush=True)
        path = EXAMPLES / f"{name}.py"
        sys.argv = [str(path), *args]
        runpy.run_path(str(path), run_name="__main__")
        sys.stdout.flush()
    comm.barrier()


if __name__ == "__main__":
    main()
