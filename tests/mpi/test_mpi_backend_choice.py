"""How tejido.mpi picks its backend, the singleton world, and the launcher's exit codes."""

from __future__ import annotations

import pytest

from tejido import mpi
from tejido.core.errors import BadInput
from tejido.mpi.launcher import JobResult, describe_code


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, "tcp"),
        ({"OMPI_COMM_WORLD_SIZE": "4"}, "mpi"),
        ({"PMI_SIZE": "2"}, "mpi"),
        ({"PMIX_RANK": "0"}, "mpi"),
        ({"TEJIDO_MPI_BACKEND": "tcp", "OMPI_COMM_WORLD_SIZE": "4"}, "tcp"),
        ({"TEJIDO_MPI_BACKEND": "MPI"}, "mpi"),
    ],
)
def test_backend_choice(env: dict[str, str], want: str) -> None:
    assert mpi.backend_name(env) == want


def test_unknown_backend_is_bad_input() -> None:
    with pytest.raises(BadInput, match="TEJIDO_MPI_BACKEND must be 'tcp' or 'mpi', got 'udp'"):
        mpi.backend_name({"TEJIDO_MPI_BACKEND": "udp"})


def test_a_script_run_alone_is_a_world_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TEJIDO_MPI_BACKEND",
        "TEJIDO_MPI_SIZE",
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(mpi, "_world", None)
    comm = mpi.COMM_WORLD
    assert (comm.backend, comm.rank, comm.size) == ("tcp", 0, 1)
    assert comm.allreduce(5) == 5
    assert comm.gather("x") == ["x"]
    assert mpi.init() is comm


def test_launcher_exit_codes() -> None:
    assert JobResult(codes=[0, 0]).exit_code == 0
    assert JobResult(codes=[0, 3, -15], first_failed=1).exit_code == 3
    assert JobResult(codes=[-9, 0], first_failed=0).exit_code == 137
    assert describe_code(-9) == "was killed by SIGKILL"
    assert describe_code(2) == "exited with code 2"
