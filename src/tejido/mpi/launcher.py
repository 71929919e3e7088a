"""`tejido mpirun -n N [--hostfile FILE] script.py [args]`: start N ranks of a tcp-backend
job on this host, or on the hosts of a host file (`tejido.mpi.hostfile`).

Rules:
- Each job gets a fresh job id, a 32-byte secret from `secrets`, and a private rendezvous
  directory (mode 0700, removed at the end); they reach the ranks only through the
  environment (see `tejido.mpi.setup`), never the command line (visible in ``ps``).
- Ranks inherit stdout and stderr (as mpirun's default, output is not tagged).
- The job succeeds when every rank exits 0. When a rank fails (non-zero exit or a signal),
  the launcher says which, gives the others ``grace_s`` seconds to notice (their pending
  operations fail with `RankFailed` naming it) and exit, then kills the rest (SIGTERM,
  then SIGKILL a second later), and reports every rank's exit code.
- The launcher's exit code is the first failed rank's (128 + signal number for a signal).
- ``timeout_s`` (``--timeout``) reaches the ranks as ``TEJIDO_MPI_TIMEOUT``: how long a
  rank may stay silent (heartbeats stop when a process is stopped or hung) before the
  others count it as failed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tejido.core.errors import BadInput
from tejido.mpi.hostfile import is_local, place_ranks, read_hostfile, spawn_payload, ssh_command
from tejido.mpi.rendezvous import RendezvousServer

__all__ = ["JobResult", "launch"]


@dataclass
class JobResult:
    """What happened to each rank."""

    codes: list[int | None]
    first_failed: int | None = None
    killed: list[int] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.first_failed is None:
            return 0
        code = self.codes[self.first_failed]
        if code is None:
            return 1
        return 128 - code if code < 0 else code


def describe_code(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def launch(
    n: int,
    command: Sequence[str],
    *,
    grace_s: float = 5.0,
    timeout_s: float | None = None,
    hostfile: str | None = None,
    env: dict[str, str] | None = None,
    report: Callable[[str], None] | None = None,
) -> JobResult:
    """Run `command` as ranks 0..n-1 of one job; return when all have exited.

    With `hostfile`, ranks are placed on its hosts (`tejido.mpi.hostfile`): local names
    start here, others through ssh; addresses are exchanged through a TCP rendezvous the
    launcher serves (`tejido.mpi.rendezvous`) instead of a directory.
    """
    if n < 1:
        raise BadInput(f"-n must be at least 1, got {n}")
    if not command:
        raise BadInput("mpirun needs a script (or a command) to run")
    if timeout_s is not None and not timeout_s >= 0:
        raise BadInput(f"--timeout must be >= 0 seconds (0: never), got {timeout_s}")
    say = report or (lambda text: print(f"tejido mpirun: {text}", file=sys.stderr))  # noqa: T201
    argv = list(command)
    if argv[0].endswith(".py"):
        argv = [sys.executable, *argv]
    placement = place_ranks(read_hostfile(hostfile), n) if hostfile is not None else None
    job, secret = secrets.token_hex(6), secrets.token_hex(32)
    directory = tempfile.mkdtemp(prefix="tejido-mpi-")
    base = dict(os.environ if env is None else env)
    base.pop("TEJIDO_MPI_BACKEND", None)
    base.update(
        TEJIDO_MPI_JOB=job,
        TEJIDO_MPI_SECRET=secret,
        TEJIDO_MPI_SIZE=str(n),
        TEJIDO_MPI_DIR=directory,
        TEJIDO_MPI_BACKEND="tcp",
    )
    if timeout_s is not None:
        base["TEJIDO_MPI_TIMEOUT"] = repr(float(timeout_s))
    rendezvous: RendezvousServer | None = None
    per_rank: list[dict[str, str]] = [{} for _ in range(n)]
    if placement is not None:
        rendezvous, per_rank = _hostfile_env(job, secret, placement, base)
    procs: list[subprocess.Popen[bytes]] = []
    result = JobResult(codes=[None] * n)
    try:
        for rank in range(n):
            rank_env = {**base, **per_rank[rank], "TEJIDO_MPI_RANK": str(rank)}
            host = placement[rank] if placement is not None else "localhost"
            procs.append(_start(host, argv, rank_env))
        _supervise(procs, result, grace_s, say)
    except KeyboardInterrupt:
        _kill(procs, result)
        raise
    finally:
        if rendezvous is not None:
            rendezvous.close()
        shutil.rmtree(directory, ignore_errors=True)
    return result


def _hostfile_env(
    job: str, secret: str, placement: list[str], base: dict[str, str]
) -> tuple[RendezvousServer, list[dict[str, str]]]:
    """The rendezvous a host-file job uses and each rank's own environment entries."""
    everything_local = all(is_local(host) for host in placement)
    here = os.environ.get("TEJIDO_MPI_LAUNCHER_HOST") or socket.gethostname()
    # Ranks on one machine talk over loopback; across machines, everyone listens on all
    # interfaces and is reached by the name the host file gives (this machine's own
    # host name for its local entries).
    names = ["127.0.0.1" if everything_local else (here if is_local(h) else h) for h in placement]
    server = RendezvousServer(
        job,
        bytes.fromhex(secret),
        len(placement),
        "127.0.0.1" if everything_local else "0.0.0.0",  # noqa: S104 (ranks on other hosts)
        "127.0.0.1" if everything_local else here,
    )
    base.pop("TEJIDO_MPI_DIR", None)
    base["TEJIDO_MPI_RENDEZVOUS"] = server.address
    base["TEJIDO_MPI_NODES"] = ",".join(names)
    per_rank = [
        {
            "TEJIDO_MPI_HOST": "127.0.0.1" if everything_local else "0.0.0.0",  # noqa: S104
            "TEJIDO_MPI_ADVERTISE": name,
        }
        for name in names
    ]
    return server, per_rank


def _start(host: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start one rank: here when `host` is local, else through ssh (`ssh_command`)."""
    if is_local(host):
        return subprocess.Popen(argv, env=env)
    # Only the job's own variables travel; the remote login provides the rest.
    job_env = {k: v for k, v in env.items() if k.startswith("TEJIDO_MPI_")}
    proc = subprocess.Popen(ssh_command(host), stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(spawn_payload(argv, job_env, os.getcwd()))
    proc.stdin.close()
    return proc


def _supervise(
    procs: list[subprocess.Popen[bytes]],
    result: JobResult,
    grace_s: float,
    say: Callable[[str], None],
) -> None:
    running = set(range(len(procs)))
    by_pid = {proc.pid: proc for proc in procs}
    deadline: float | None = None
    while running:
        # os.wait blocks until some child exits; after a failure, poll until the deadline.
        if deadline is None:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                pid, status = -1, 0
            if pid in by_pid:  # reaped here, so Popen cannot: record its code
                by_pid[pid].returncode = os.waitstatus_to_exitcode(status)
        else:
            time.sleep(0.02)
        for rank in sorted(running):
            code = procs[rank].poll()
            if code is None:
                continue
            running.discard(rank)
            result.codes[rank] = code
            if code != 0 and result.first_failed is None:
                result.first_failed = rank
                say(
                    f"rank {rank} {describe_code(code)}; "
                    f"stopping the job ({len(running)} ranks still running)"
                )
                deadline = time.monotonic() + grace_s
        if deadline is not None and running and time.monotonic() >= deadline:
            _kill([procs[r] for r in sorted(running)], result, ranks=sorted(running))
            for rank in sorted(running):
                result.codes[rank] = procs[rank].returncode
            running.clear()
    for rank, code in enumerate(result.codes):
        if code != 0 or result.first_failed is not None:
            note = " (killed by mpirun)" if rank in result.killed else ""
            if code != 0 or note:
                say(f"rank {rank} {describe_code(code)}{note}")


def _kill(
    procs: list[subprocess.Popen[bytes]], result: JobResult, ranks: list[int] | None = None
) -> None:
    ranks = ranks if ranks is not None else list(range(len(procs)))
    for rank, proc in zip(ranks, procs, strict=True):
        if proc.poll() is None:
            result.killed.append(rank)
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
