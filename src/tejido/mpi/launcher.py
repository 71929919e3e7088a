"""`tejido mpirun -n N script.py [args]`: start N ranks of a tcp-backend job on this host.

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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tejido.core.errors import BadInput

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
    env: dict[str, str] | None = None,
    report: Callable[[str], None] | None = None,
) -> JobResult:
    """Run `command` as ranks 0..n-1 of one job; return when all have exited."""
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
    directory = tempfile.mkdtemp(prefix="tejido-mpi-")
    base = dict(os.environ if env is None else env)
    base.pop("TEJIDO_MPI_BACKEND", None)
    base.update(
        TEJIDO_MPI_JOB=secrets.token_hex(6),
        TEJIDO_MPI_SECRET=secrets.token_hex(32),
        TEJIDO_MPI_SIZE=str(n),
        TEJIDO_MPI_DIR=directory,
        TEJIDO_MPI_BACKEND="tcp",
    )
    if timeout_s is not None:
        base["TEJIDO_MPI_TIMEOUT"] = repr(float(timeout_s))
    procs: list[subprocess.Popen[bytes]] = []
    result = JobResult(codes=[None] * n)
    try:
        for rank in range(n):
            procs.append(subprocess.Popen(argv, env={**base, "TEJIDO_MPI_RANK": str(rank)}))
        _supervise(procs, result, grace_s, say)
    except KeyboardInterrupt:
        _kill(procs, result)
        raise
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return result


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
