"""The mpi backend's hot calls are mpi4py's own (inherited: no tejido frame in between),
checked in a singleton MPI process (a subprocess: MPI initialises once per process)."""

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
pairs += [("Scatter", "Scatter"), ("Allgather", "Allgather"), ("barrier", "barrier")]
pairs += [("Barrier", "Barrier"), ("Gather", "Gather"), ("Alltoall", "Alltoall")]
pairs += [("Recv", "Recv"), ("Sendrecv", "Sendrecv"), ("sendrecv", "sendrecv")]
pairs += [("probe", "probe"), ("iprobe", "iprobe"), ("Probe", "Probe"), ("Iprobe", "Iprobe")]
assert isinstance(comm, MPI.Intracomm) and comm == raw
for ours, theirs in pairs:
    # Inherited from mpi4py: the very same method object, no tejido code in between.
    assert getattr(type(comm), ours) is getattr(MPI.Intracomm, theirs), ours
# mpi.Status() is mpi4py's own on this backend, filled in by Recv (which returns None).
status = mpi.Status()
assert type(status) is MPI.Status, type(status)
out = np.zeros(4, dtype=np.int32)
request = comm.Isend(np.arange(4, dtype=np.int32), 0, 7)
assert comm.Iprobe(mpi.ANY_SOURCE, mpi.ANY_TAG, status) is True
assert (status.source, status.tag, status.count) == (0, 7, 16), status
status = mpi.Status()
assert comm.Recv(out, mpi.ANY_SOURCE, mpi.ANY_TAG, status) is None
request.wait()
assert (status.source, status.tag, status.count) == (0, 7, 16), status
assert (status.Get_source(), status.Get_tag(), status.Get_count()) == (0, 7, 16)
assert out.tolist() == [0, 1, 2, 3]
back = np.zeros(2, dtype=np.int64)
status = mpi.Status()
comm.Sendrecv(np.array([5, 6]), 0, 8, back, 0, 8, status)
assert back.tolist() == [5, 6] and (status.tag, status.count) == (8, 16), status
comm.send({"x": 1}, 0, 3)
status = mpi.Status()
assert comm.recv(source=0, tag=3, status=status) == {"x": 1}
assert (status.source, status.tag) == (0, 3)
request = comm.irecv(source=0, tag=9)
comm.send("y", 0, 9)
status = mpi.Status()
assert request.wait(status) == "y" and status.tag == 9
comm.isend(1, 0, 4).wait()
value, status = comm.recv_status(0, 4)
assert value == 1 and (status.source, status.tag) == (0, 4), status
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
