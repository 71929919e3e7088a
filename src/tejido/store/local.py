"""A local cluster of store members as separate processes (what `tejido up` and `tejido
demo` run), described by ``DIR/cluster.json``.

Layout of DIR (default ``.tejido``)::

    cluster.json        {"cluster", "endpoints": [client addresses], "grpc": [gRPC
                         addresses], "members": [{"id", "peer", "client", "grpc", "pid",
                         "config", "log", "data"}]}
    n1.toml, n2.toml    each member's configuration (`tejido.store.config`)
    n1/, n2/            each member's data directory
    n1.log, n2.log      each member's stdout and stderr

Rules:

1. Ports are ephemeral ports the kernel hands out (bound, then released for the member to
   bind); a directory that already holds configurations is started again on the same
   ports with the same data, so `tejido up` twice in a row resumes the same cluster.
2. A member is up once it printed its listening line; `start` waits for every member
   (or raises naming the one that exited, with the end of its log).
3. Every member also serves the client API over gRPC (`tejido.rpc.grpc`, the same `KV`
   service) on a port of its own, unless ``grpc=False``. A new directory records the port
   in each member's configuration (key ``grpc``); a member is started with ``--grpc
   ADDRESS`` or ``--no-grpc`` so the cluster's setting wins over an older configuration.
4. `stop` sends SIGTERM to every member, waits (then SIGKILL after `grace_s`), and
   returns each member's exit code.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tejido.core.errors import BadInput

__all__ = ["LocalCluster", "LocalMember", "find_endpoints", "read_cluster_file"]

CLUSTER_FILE = "cluster.json"
LISTENING = "listening on"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _loopback() -> str:
    return f"127.0.0.1:{_free_port()}"


@dataclass
class LocalMember:
    id: int
    peer: str
    client: str
    config: Path
    data: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    grpc: str | None = None
    """Where the member serves the client API over gRPC (rule 3); None: it does not."""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def record(self) -> dict[str, object]:
        return {
            "id": self.id,
            "peer": self.peer,
            "client": self.client,
            "grpc": self.grpc,
            "pid": self.pid,
            "config": str(self.config),
            "data": str(self.data),
            "log": str(self.log),
        }


@dataclass
class LocalCluster:
    directory: Path
    nodes: int = 3
    cluster: str = "tejido"
    election_timeout_s: float = 1.0
    heartbeat_interval_s: float = 0.1
    lease_reads: bool = False
    grpc: bool = True
    """Rule 3: every member also serves the client API over gRPC."""
    members: list[LocalMember] = field(default_factory=list)

    def prepare(self) -> None:
        """Write (or reuse, rule 1) every member's configuration."""
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.directory.glob("n*.toml"))
        if existing:
            self.members = [self._read_member(path) for path in existing]
            return
        members = range(1, self.nodes + 1)
        book = {i: (_loopback(), _loopback()) for i in members}
        self.write_configs(book, {i: _loopback() for i in members} if self.grpc else None)

    def write_configs(
        self, book: dict[int, tuple[str, str]], grpc: dict[int, str] | None = None
    ) -> None:
        """Write one configuration per member of `book` (id -> (peer, client) address) and
        add the members; the caller chooses the addresses (`prepare` asks the kernel).
        `grpc` (id -> address) adds each member's gRPC address (rule 3)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        table = "\n".join(
            f'{i} = {{ peer = "{peer}", client = "{client}" }}'
            for i, (peer, client) in book.items()
        )
        lease_reads = "lease_reads = true\n" if self.lease_reads else ""
        for i, (peer, client) in book.items():
            config = self.directory / f"n{i}.toml"
            grpc_address = grpc.get(i) if grpc is not None else None
            grpc_line = f'grpc = "{grpc_address}"\n' if grpc_address else ""
            config.write_text(
                f'id = {i}\ncluster = "{self.cluster}"\ndata_dir = "n{i}"\n{grpc_line}\n'
                f"[members]\n{table}\n\n[raft]\n"
                f"election_timeout_s = {self.election_timeout_s}\n"
                f"heartbeat_interval_s = {self.heartbeat_interval_s}\n"
                f"{lease_reads}"
            )
            self.members.append(self._member(i, peer, client, config, grpc_address))

    def _member(
        self, i: int, peer: str, client: str, config: Path, grpc: str | None = None
    ) -> LocalMember:
        d = self.directory
        return LocalMember(i, peer, client, config, d / f"n{i}", d / f"n{i}.log", grpc=grpc)

    def _read_member(self, path: Path) -> LocalMember:
        from tejido.store.config import load_config

        config = load_config(path)
        me = config.me
        grpc = (config.grpc_address or _loopback()) if self.grpc else None
        return self._member(int(config.member_id), me.peer, me.client, path, grpc)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start every member not running (rule 2) and write cluster.json."""
        if not self.members:
            self.prepare()
        for member in self.members:
            if member.process is None or member.process.poll() is not None:
                self.start_member(member)
        deadline = time.monotonic() + timeout_s
        for member in self.members:
            self.wait_listening(member, deadline)
        self.write_file()

    def start_member(self, member: LocalMember) -> None:
        log = member.log.open("ab")
        member.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tejido.cli.main",
                "node",
                "start",
                "--config",
                str(member.config),
                *(["--grpc", member.grpc] if member.grpc else ["--no-grpc"]),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches `tejido up` only
        )
        log.close()

    def wait_listening(self, member: LocalMember, deadline: float) -> None:
        assert member.process is not None
        pid_marker = f"pid {member.process.pid} "
        while True:
            text = member.log.read_text(errors="replace") if member.log.exists() else ""
            if any(LISTENING in line and pid_marker in line for line in text.splitlines()):
                return
            if member.process.poll() is not None:
                tail = "\n".join(text.splitlines()[-10:])
                raise BadInput(
                    f"member {member.id} exited with code {member.process.returncode}:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise BadInput(f"member {member.id} did not start listening in time ({member.log})")
            time.sleep(0.05)  # polling a child's log file for its readiness line

    def write_file(self) -> None:
        record = {
            "cluster": self.cluster,
            "endpoints": [m.client for m in self.members],
            "grpc": [m.grpc for m in self.members if m.grpc],
            "members": [m.record() for m in self.members],
            "supervisor": os.getpid(),
        }
        path = self.directory / CLUSTER_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(path)

    def kill(self, member: LocalMember, signum: int = signal.SIGKILL) -> None:
        if member.process is not None and member.process.poll() is None:
            member.process.send_signal(signum)
            member.process.wait()

    def stop(self, grace_s: float = 10.0) -> dict[int, int | None]:
        """Rule 4."""
        for member in self.members:
            if member.process is not None and member.process.poll() is None:
                member.process.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for member in self.members:
            if member.process is None:
                codes[member.id] = None
                continue
            try:
                codes[member.id] = member.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                member.process.kill()
                codes[member.id] = member.process.wait()
        return codes


def read_cluster_file(directory: Path) -> dict[str, object]:
    path = directory / CLUSTER_FILE
    try:
        data: dict[str, object] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(
            f"no cluster here: {path} does not exist (run `tejido up` in this directory, "
            "or pass --endpoints HOST:PORT,...)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    return data


def find_endpoints(endpoints: str | None, directory: Path) -> list[str]:
    """``--endpoints a,b`` if given, else the endpoints of ``DIR/cluster.json``."""
    if endpoints:
        found = [e.strip() for e in endpoints.split(",") if e.strip()]
        if not found:
            raise BadInput("--endpoints is empty")
        return found
    data = read_cluster_file(directory)
    listed = data.get("endpoints")
    if not isinstance(listed, list) or not all(isinstance(e, str) for e in listed):
        raise BadInput(f"{directory / CLUSTER_FILE} has no endpoints list")
    return list(listed)
