"""The mpi backend's hot calls are mpi4py's own (no tejido frame in between), checked in
a singleton MPI process (a subprocess: MPI initialises once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import numpy as np
from mpi4py import MPI
from tejido import mpi
comm = mpi.COMM_WORLD
raw = MPI.COMM_WORLD
assert comm.backend == "mpi", comm.backend
pairs = [("Send", "Send"), ("send", "send"), ("bcast", "bcast"), ("Bcast", "Bcast")]
pairs += [("Scatter", "Scatter"), ("Allgather", "Allgather"), ("barrier", "Barrier")]
for ours, theirs in pairs:
    assert getattr(comm, ours) == getattr(raw, theirs), ours
# Recv still returns a status with source, tag and count (bytes).
out = np.zeros(4, dtype=np.int32)
request = comm.Isend(np.arange(4, dtype=np.int32), 0, 7)
status = comm.Recv(out, mpi.ANY_SOURCE, mpi.ANY_TAG)
request.wait()
assert (status.source, status.tag, status.count) == (0, 7, 16), status
assert out.tolist() == [0, 1, 2, 3]
comm.send({"x": 1}, 0, 3)
assert comm.recv(source=0, tag=3) == {"x": 1}
total = np.zeros(2)
comm.Allreduce(np.ones(2), total, op=mpi.SUM)
assert total.tolist() == [1.0, 1.0]
print("direct ok")
"""


def test_mpi_backend_binds_mpi4py_methods_directly() -> None:
    pytest.importorskip("mpi4py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEJIDO_MPI", "OMPI_"))}
    env.update(TEJIDO_MPI_BACKEND="mpi", OMPI_ALLOW_RUN_AS_ROOT="1")
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "direct ok" in done.stdout
