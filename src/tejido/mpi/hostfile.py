"""Host files for `tejido mpirun --hostfile FILE`: parsing, rank placement, remote launch.

Format (as OpenMPI's, see its mpirun(1) page, "Specifying Host Nodes"): one host per line,
``host [slots=N]``; ``#`` starts a comment; blank lines are ignored. A host without
``slots`` has one slot; a host named twice has the sum of its slots.

Rules:
- Placement is by slot, as OpenMPI's default: ranks 0..slots-1 go to the first host, the
  next ones to the second, and so on. More ranks than slots is an error naming both
  numbers (nothing is oversubscribed silently).
- A host is local when its name is ``localhost``, an address in 127.0.0.0/8, ``::1``, or
  this machine's host name: its ranks are started directly, as without a host file.
- Other hosts are reached with ``ssh -T -o BatchMode=yes HOST PYTHON -m tejido.mpi.spawn``,
  PYTHON being this launcher's own interpreter path (the same install on every host, as
  MPI launchers assume). The job's environment (secret included) is written to ssh's
  standard input, never put on a command line (visible in ``ps`` on both hosts);
  `tejido.mpi.spawn` reads it and executes the rank's command.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tejido.core.errors import BadInput

__all__ = [
    "HostEntry",
    "is_local",
    "parse_hostfile",
    "place_ranks",
    "read_hostfile",
    "spawn_payload",
    "ssh_command",
]


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One host of a host file and how many ranks it takes."""

    host: str
    slots: int = 1


def parse_hostfile(text: str, source: str = "hostfile") -> list[HostEntry]:
    """The hosts of a host file's `text`, in order of first appearance (see module doc)."""
    slots: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        host, *options = line.split()
        count = 1
        for option in options:
            name, sep, value = option.partition("=")
            if name != "slots" or not sep:
                raise BadInput(
                    f"{source} line {number}: unknown option {option!r} (expected 'host [slots=N]')"
                )
            try:
                count = int(value)
            except ValueError:
                count = 0
            if count < 1:
                raise BadInput(
                    f"{source} line {number}: slots must be a positive integer, got {value!r}"
                )
        slots[host] = slots.get(host, 0) + count
    if not slots:
        raise BadInput(f"{source} names no hosts")
    return [HostEntry(host, count) for host, count in slots.items()]


def read_hostfile(path: str | Path) -> list[HostEntry]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BadInput(f"cannot read hostfile {str(path)!r}: {exc.strerror}") from None
    return parse_hostfile(text, str(path))


def place_ranks(hosts: Sequence[HostEntry], n: int) -> list[str]:
    """The host of each rank 0..n-1, filling each host's slots in order."""
    total = sum(entry.slots for entry in hosts)
    if n > total:
        raise BadInput(f"-n {n} needs {n} slots but the hostfile has only {total}")
    placement: list[str] = []
    for entry in hosts:
        placement += [entry.host] * entry.slots
    return placement[:n]


def is_local(host: str) -> bool:
    """Whether `host` names this machine (see module doc)."""
    if host in ("localhost", "localhost.localdomain", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssh_command(host: str, python: str | None = None) -> list[str]:
    """The command that starts one remote rank on `host` (its environment comes on stdin)."""
    if host.startswith("-"):
        raise BadInput(f"host name {host!r} may not start with '-'")
    return [
        "ssh",
        "-T",  # no terminal: stdin carries the job's environment
        "-o",
        "BatchMode=yes",  # never prompt for a password
        host,
        python or sys.executable,
        "-m",
        "tejido.mpi.spawn",
    ]


def spawn_payload(argv: Sequence[str], env: dict[str, str], cwd: str) -> bytes:
    """What `ssh_command`'s standard input carries: one JSON line for tejido.mpi.spawn."""
    return json.dumps({"argv": list(argv), "env": env, "cwd": cwd}).encode() + b"\n"
