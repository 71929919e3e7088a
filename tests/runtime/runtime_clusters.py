"""One small `Cluster` interface, two implementations: the simulator and real processes.

A scenario written against `Cluster` runs unchanged on both: `SimCluster` drives the
protocol's pure objects in `tejido.sim.Simulator` (virtual time), `ProcessCluster` starts
``tejido node run`` subprocesses on loopback and talks to them with `NodeClient`. Both
record the client history in the JSON-lines format of `tejido.check.history`: one fresh
client process per call, an ``invoke`` when it is sent, ``ok``/``fail`` when the node
answers, ``info`` when it does not answer in time.

Ports are never guessed: the test process binds each node's listening socket on port 0
and hands it to the node (``--listen-fd``), keeping it across kills and restarts, so a
restarted node is reachable at the same address and no other test can take the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from tejido.check import HistoryEvent, parse_history
from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.net.client import NodeClient
from tejido.sim.network import Network
from tejido.sim.world import Simulator

Call = tuple[int, Operation]


class Cluster(Protocol):
    nodes: list[int]

    async def call_many(self, calls: list[Call]) -> list[Outcome | None]:
        """Submit every call at once; each result is the outcome, or None if it timed out."""
        ...

    async def kill(self, node: int) -> None: ...

    async def restart(self, node: int) -> None: ...

    def history(self) -> list[HistoryEvent]: ...


class HistoryRecorder:
    """History events in real-time order; `now` is the implementation's clock in seconds."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.events: list[dict[str, object]] = []
        self._next_process = 0

    def invoke(self, op: Operation) -> int:
        process = self._next_process
        self._next_process += 1
        self._add(process, "invoke", op, op.value)
        return process

    def complete(self, process: int, op: Operation, outcome: Outcome | None) -> None:
        if outcome is None:
            self._add(process, "info", op, None if op.f == "read" else op.value)
        elif op.f == "read":
            self._add(process, outcome.type, op, outcome.value if outcome.type == "ok" else None)
        else:
            self._add(process, outcome.type, op, op.value)

    def _add(self, process: int, kind: str, op: Operation, value: object) -> None:
        self.events.append(
            {
                "process": process,
                "type": kind,
                "f": op.f,
                "key": op.key,
                "value": value,
                "time": round(self.now() * 1e9),
            }
        )

    def history(self) -> list[HistoryEvent]:
        import json

        return parse_history([json.dumps(e) for e in self.events], "<runtime test>")


class SimCluster:
    """The protocol in the deterministic simulator: reliable links, 1-3 ms latency."""

    def __init__(
        self, factory: Callable[[Env], Process], nodes: int = 3, seed: int = 1, timeout_s: float = 5
    ) -> None:
        ids = [NodeId(i) for i in range(1, nodes + 1)]
        latency = {(a, b): 0.002 for a in ids for b in ids if a != b}
        network = Network(random.Random(f"{seed}:net"), latency, 0.0005, 0.0, 0.0, 0.0)
        self.sim = Simulator(factory, ids, network, seed=seed)
        self.sim.reply_handler = self._on_reply
        self.nodes = list(range(1, nodes + 1))
        self.timeout_s = timeout_s
        self.recorder = HistoryRecorder(lambda: self.sim.now)
        self._pending: dict[RequestId, tuple[int, Operation]] = {}
        self._outcomes: dict[RequestId, Outcome] = {}
        self._next_request = 0
        self.sim.start()

    def _on_reply(self, request: RequestId, outcome: Outcome) -> None:
        pending = self._pending.pop(request, None)
        if pending is not None:
            self.recorder.complete(pending[0], pending[1], outcome)
            self._outcomes[request] = outcome

    async def call_many(self, calls: list[Call]) -> list[Outcome | None]:
        requests = []
        for node, op in calls:
            self._next_request += 1
            request = RequestId(self._next_request)
            self._pending[request] = (self.recorder.invoke(op), op)
            self.sim.submit(NodeId(node), request, op, 0.0005)
            requests.append(request)
        deadline = self.sim.now + self.timeout_s
        while any(r in self._pending for r in requests) and self.sim.now < deadline:
            self.sim.run_until(self.sim.now + 0.005)
        for request in requests:
            pending = self._pending.pop(request, None)
            if pending is not None:
                self.recorder.complete(pending[0], pending[1], None)
        return [self._outcomes.get(r) for r in requests]

    async def kill(self, node: int) -> None:
        self.sim.crash(NodeId(node), power_loss=True, torn_probability=0.0)

    async def restart(self, node: int) -> None:
        self.sim.restart(NodeId(node))

    def history(self) -> list[HistoryEvent]:
        return self.recorder.history()


class _Node:
    def __init__(self, ident: int, sock: socket.socket, data: Path, log: Path) -> None:
        self.ident = ident
        self.sock = sock
        self.address = f"127.0.0.1:{sock.getsockname()[1]}"
        self.data = data
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.client: NodeClient | None = None
        self.log_file: IO[bytes] | None = None


class ProcessCluster:
    """Real `tejido node run` processes on loopback; see the module docstring."""

    def __init__(self, protocol: str, base: Path, nodes: int = 3, timeout_s: float = 10.0) -> None:
        self.protocol = protocol
        self.nodes = list(range(1, nodes + 1))
        self.timeout_s = timeout_s
        loop = asyncio.get_running_loop()
        self.recorder = HistoryRecorder(loop.time)
        self._nodes: dict[int, _Node] = {}
        for n in self.nodes:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            self._nodes[n] = _Node(n, sock, base / f"n{n}", base / f"n{n}.log")

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(n) for n in self.nodes))

    def _command(self, node: _Node) -> list[str]:
        peers = []
        for other in self._nodes.values():
            if other is not node:
                peers += ["--peer", f"{other.ident}={other.address}"]
        return [
            sys.executable, "-m", "tejido.cli.main", "node", "run",
            "--protocol", self.protocol, "--id", str(node.ident), "--data", str(node.data),
            "--listen-fd", str(node.sock.fileno()), "--cluster", "contract",
            "--log-level", "info", *peers,
        ]  # fmt: skip

    async def _spawn(self, n: int) -> None:
        node = self._nodes[n]
        node.log_file = open(node.log, "ab")  # noqa: SIM115 - kept open for the node's life
        node.proc = await asyncio.create_subprocess_exec(
            *self._command(node),
            stdout=asyncio.subprocess.PIPE,
            stderr=node.log_file,
            pass_fds=[node.sock.fileno()],
        )
        assert node.proc.stdout is not None
        line = await asyncio.wait_for(node.proc.stdout.readline(), 60)
        if b"listening on" not in line:
            raise RuntimeError(f"node {n} did not start: {line!r}; log: {node.log.read_text()}")
        node.client = await NodeClient.connect(node.address, cluster="contract")

    async def call_many(self, calls: list[Call]) -> list[Outcome | None]:
        async def one(node: int, op: Operation) -> Outcome | None:
            client = self._nodes[node].client
            process = self.recorder.invoke(op)
            outcome: Outcome | None
            try:
                assert client is not None, f"node {node} is down"
                outcome = await client.submit(op, self.timeout_s)
            except (TimeoutError, ConnectionError, OSError):
                outcome = None
            self.recorder.complete(process, op, outcome)
            return outcome

        return list(await asyncio.gather(*(one(n, op) for n, op in calls)))

    async def kill(self, node: int) -> None:
        """SIGKILL: no clean shutdown, no final sync; the kernel closes the sockets."""
        entry = self._nodes[node]
        assert entry.proc is not None
        entry.proc.send_signal(signal.SIGKILL)
        await entry.proc.wait()
        if entry.client is not None:
            await entry.client.close()
            entry.client = None

    async def restart(self, node: int) -> None:
        await self._spawn(node)

    async def close(self) -> dict[int, int | None]:
        """SIGTERM every live node; returns each one's exit code (0 = stopped cleanly)."""
        codes: dict[int, int | None] = {}
        for node in self._nodes.values():
            if node.client is not None:
                await node.client.close()
            if node.proc is not None and node.proc.returncode is None:
                node.proc.send_signal(signal.SIGTERM)
                try:
                    codes[node.ident] = await asyncio.wait_for(node.proc.wait(), 20)
                except TimeoutError:
                    node.proc.kill()
                    codes[node.ident] = await node.proc.wait()
            if node.log_file is not None:
                node.log_file.close()
            with contextlib.suppress(OSError):
                node.sock.close()
        return codes

    def logs(self) -> str:
        return "\n".join(f"--- node {n.ident}\n{n.log.read_text()}" for n in self._nodes.values())

    def history(self) -> list[HistoryEvent]:
        return self.recorder.history()
