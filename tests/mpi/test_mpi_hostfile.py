"""`tejido mpirun --hostfile`: parsing and placement, the ssh command (no real ssh here),
the remote end (`tejido.mpi.spawn`, run locally), the TCP rendezvous, and a real job whose
host file names only local addresses (started without ssh)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tejido.core.errors import BadInput
from tejido.mpi import MPIError
from tejido.mpi.hostfile import (
    HostEntry,
    is_local,
    parse_hostfile,
    place_ranks,
    read_hostfile,
    spawn_payload,
    ssh_command,
)
from tejido.mpi.rendezvous import RendezvousServer, register

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MPIRUN = [sys.executable, "-m", "tejido.cli.main", "mpirun"]


def test_parse_slots_comments_and_repeats() -> None:
    text = """
    # cluster
    node1 slots=4   # big one
    node2
    node1 slots=2
    10.0.0.7 slots=1
    """
    assert parse_hostfile(text) == [
        HostEntry("node1", 6),
        HostEntry("node2", 1),
        HostEntry("10.0.0.7", 1),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("node1 slots=0", "line 1: slots must be a positive integer, got '0'"),
        ("a\nnode1 slots=x", "line 2: slots must be a positive integer, got 'x'"),
        ("node1 cpus=3", "line 1: unknown option 'cpus=3'"),
        ("# nothing\n\n", "names no hosts"),
    ],
)
def test_parse_errors_name_the_line(text: str, error: str) -> None:
    with pytest.raises(BadInput, match=error):
        parse_hostfile(text)


def test_read_hostfile_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read hostfile"):
        read_hostfile(tmp_path / "missing")


def test_placement_fills_each_host_in_order() -> None:
    hosts = [HostEntry("a", 2), HostEntry("b", 1), HostEntry("c", 3)]
    assert place_ranks(hosts, 5) == ["a", "a", "b", "c", "c"]
    assert place_ranks(hosts, 1) == ["a"]
    with pytest.raises(BadInput, match="-n 7 needs 7 slots but the hostfile has only 6"):
        place_ranks(hosts, 7)


def test_local_names() -> None:
    for name in ("localhost", "127.0.0.1", "127.0.1.1", "::1", socket.gethostname()):
        assert is_local(name), name
    for name in ("node1", "10.0.0.7", "example.org"):
        assert not is_local(name), name


def test_ssh_command_keeps_the_secret_off_the_command_line() -> None:
    cmd = ssh_command("node1", "/opt/py/bin/python")
    assert cmd == [
        "ssh",
        "-T",
        "-o",
        "BatchMode=yes",
        "node1",
        "/opt/py/bin/python",
        "-m",
        "tejido.mpi.spawn",
    ]
    payload = spawn_payload(["python", "x.py"], {"TEJIDO_MPI_SECRET": "ab" * 32}, "/work")
    assert json.loads(payload) == {
        "argv": ["python", "x.py"],
        "env": {"TEJIDO_MPI_SECRET": "ab" * 32},
        "cwd": "/work",
    }
    assert not any("ab" * 32 in part for part in cmd)
    with pytest.raises(BadInput, match="may not start with '-'"):
        ssh_command("-oProxyCommand=evil")


def test_spawn_runs_the_command_with_the_environment_from_stdin(tmp_path: Path) -> None:
    # What ssh would run on the remote host, run here.
    code = "import os; print(os.environ['TEJIDO_MPI_RANK'], os.getcwd())"
    payload = spawn_payload([sys.executable, "-c", code], {"TEJIDO_MPI_RANK": "3"}, str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "tejido.mpi.spawn"],
        input=payload,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.decode().split() == ["3", str(tmp_path)]
    bad = subprocess.run(
        [sys.executable, "-m", "tejido.mpi.spawn"],
        input=b"not json\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert b"bad launch request" in bad.stderr


def test_rendezvous_answers_every_rank_and_refuses_a_wrong_secret() -> None:
    secret = os.urandom(32)
    server = RendezvousServer("job1", secret, 2, "127.0.0.1", "127.0.0.1")

    async def scenario() -> tuple[list[str], list[str]]:
        with pytest.raises(MPIError, match="refused rank 0: wrong job secret"):
            await register(server.address, "job1", os.urandom(32), 0, "evil:1")
        return tuple(  # type: ignore[return-value]
            await asyncio.gather(
                register(server.address, "job1", secret, 1, "h1:11"),
                register(server.address, "job1", secret, 0, "h0:10"),
            )
        )

    try:
        first, second = asyncio.run(scenario())
    finally:
        server.close()
    assert first == second == ["h0:10", "h1:11"]
    assert server.refusals == ["wrong job secret"]


@pytest.mark.integration
def test_a_hostfile_of_local_names_runs_a_real_job(tmp_path: Path) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("localhost slots=2  # started without ssh\n127.0.0.1 slots=2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEJIDO_MPI", "OMPI_"))}
    done = subprocess.run(
        [*MPIRUN, "-n", "3", "--hostfile", str(hostfile), str(HERE / "mpi_checks.py"), "tcp", "3"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "all checks passed" in done.stdout
    too_many = subprocess.run(
        [*MPIRUN, "-n", "5", "--hostfile", str(hostfile), "x.py"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert too_many.returncode == 2
    assert "-n 5 needs 5 slots but the hostfile has only 4" in too_many.stderr
