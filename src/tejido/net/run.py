"""Running an algorithm on real local processes, and judging what they recorded.

`LocalRun` is the library half of ``tejido run``: it starts N ``tejido node run``
subprocesses on loopback with tracing on (`tejido.net.trace`), drives a workload through
`NodeClient`, kills (SIGKILL) and restarts nodes when asked, stops everything, and merges
the per-node trace files into one trace in the format of ``docs/formats.md``. `judge`
then runs the checkers of `tejido.check` that read events only. Rules:

1. **Ports are never guessed**: the launcher binds every node's socket on port 0 and hands
   it over with ``--listen-fd``, keeping it across a kill, so a restarted node is reachable
   at the same address.
2. **One clock for all files**: every node measures ``t`` from the launcher's start
   timestamp (wall clock, same machine), so merging is a sort by ``t``; records with the
   same ``t`` keep Lamport order.
3. **The client history** is recorded as in `tejido.check.history`: one fresh client
   process per operation, ``invoke`` when sent, ``ok``/``fail`` on the answer, ``info``
   when none came (timeout, the node died, the run ended).
4. **Checks read events, never state**: mutual exclusion from ``request``/``ENTER``/
   ``exit`` events in real-time order; causal and total order from client broadcasts and
   ``deliver`` events in Lamport order (a linearization of happens-before); atomicity from
   decisions; election agreement from the last leader each live node reported; snapshot
   conservation from recorded totals; linearizability from the client history.
5. **The run stops at ``duration_s``**, counted from when every node is up, except that a
   restart scheduled before then always completes and the restarted node then runs at
   least `RESTART_GRACE_S` (starting a process on a loaded machine can take seconds; a
   run must not end with a node half-started). Stopping is SIGTERM; a node that stops
   with status 0 or by that signal stopped cleanly, any other exit is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from tejido.check import check_linearizable, parse_history
from tejido.check.commit import check_atomicity
from tejido.check.mutex import MutexEvent, check_mutual_exclusion
from tejido.check.order import OrderEvent, check_causal_order, check_total_order
from tejido.core.errors import BadInput
from tejido.core.operations import Operation, Outcome
from tejido.net.client import NodeClient

__all__ = ["RESTART_GRACE_S", "LocalRun", "RunPlan", "Verdict", "judge", "merge_traces"]

RESTART_GRACE_S = 1.0
"""A restarted node runs at least this long before the run stops (rule 5)."""

Record = dict[str, object]


class Workload(Protocol):
    def next_operation(self, rng: random.Random) -> Operation: ...


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What to run and for how long (seconds, counted from when every node is up)."""

    protocol: str
    nodes: int
    duration_s: float = 4.0
    kill: int | None = None
    kill_at_s: float = 1.0
    restart_after_s: float | None = None
    ops_per_node: int = 3
    op_timeout_s: float = 3.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    check: str
    ok: bool
    detail: str


@dataclass(eq=False)
class _Node:
    ident: int
    sock: socket.socket
    data: Path
    trace: Path
    log: Path
    proc: asyncio.subprocess.Process | None = None
    client: NodeClient | None = None
    log_file: IO[bytes] | None = None
    reader: asyncio.Task[None] | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)
    killed: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"


class LocalRun:
    """One run of `plan` in directory `base`; `on_line` receives every line to print."""

    def __init__(
        self,
        plan: RunPlan,
        base: Path,
        *,
        workload: Workload | None,
        on_event: Callable[[Record], None],
        on_note: Callable[[float, str], None],
    ) -> None:
        self.plan = plan
        self.base = base
        self.workload = workload
        self.on_event = on_event
        self.on_note = on_note
        self.rng = random.Random(plan.seed)
        self.cluster = f"run-{plan.protocol}"
        self.start = 0.0
        self.ready = 0.0
        """When every node was up and the run's clock (``--at``, ``--time``) started."""
        self.records: list[Record] = []
        """The launcher's own records: crash, restart, invoke, complete."""
        self.history: list[Record] = []
        self.failures: list[str] = []
        """Nodes that exited on their own (not killed, not stopped cleanly), with their logs."""
        self._next_process = 0
        self.restarted_up = 0.0
        self.nodes: dict[int, _Node] = {}
        for n in range(1, plan.nodes + 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            self.nodes[n] = _Node(
                n, sock, base / f"n{n}", base / f"n{n}.trace.jsonl", base / f"n{n}.log"
            )

    def now(self) -> float:
        return round(time.time() - self.start, 6)

    # ------------------------------------------------------------------ processes
    def _command(self, node: _Node) -> list[str]:
        peers: list[str] = []
        for other in self.nodes.values():
            if other is not node:
                peers += ["--peer", f"{other.ident}={other.address}"]
        seed = [] if self.plan.seed is None else ["--seed", str(self.plan.seed * 1000 + node.ident)]
        return [
            sys.executable, "-m", "tejido.cli.main", "node", "run",
            "--protocol", self.plan.protocol, "--id", str(node.ident),
            "--data", str(node.data), "--listen-fd", str(node.sock.fileno()),
            "--cluster", self.cluster, "--trace", str(node.trace),
            "--trace-start", repr(self.start), *seed, *peers,
        ]  # fmt: skip

    async def _spawn(self, node: _Node) -> None:
        if node.log_file is None:
            node.log_file = node.log.open("ab")
        node.proc = await asyncio.create_subprocess_exec(
            *self._command(node),
            stdout=asyncio.subprocess.PIPE,
            stderr=node.log_file,
            pass_fds=[node.sock.fileno()],
        )
        assert node.proc.stdout is not None
        try:
            async with asyncio.timeout(60):
                # Events of `on_start` are printed before the listening line.
                while (line := await node.proc.stdout.readline()).startswith(b"{"):
                    self._line(line)
        except TimeoutError:
            line = b"(nothing within 60 s)"
        if b"listening on" not in line:
            if node.proc.returncode is None:
                node.proc.kill()
            await node.proc.wait()
            raise BadInput(
                f"node {node.ident} did not start ({line.decode(errors='replace').strip()!r}); "
                f"its log:\n{node.log.read_text(errors='replace')}"
            )
        node.reader = asyncio.get_running_loop().create_task(self._read(node, node.proc))
        node.client = await NodeClient.connect(node.address, cluster=self.cluster)
        node.killed = False
        node.up.set()

    async def _read(self, node: _Node, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            self._line(line)

    def _line(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if isinstance(record, dict):
            self.on_event(record)

    async def kill(self, n: int) -> None:
        """SIGKILL: no clean shutdown, no final sync."""
        node = self.nodes[n]
        node.up.clear()
        node.killed = True
        if node.proc is not None and node.proc.returncode is None:
            node.proc.send_signal(signal.SIGKILL)
            await node.proc.wait()
        if node.reader is not None:
            await node.reader
        self.records.append({"t": self.now(), "kind": "crash", "node": n})
        self.on_note(self.now(), f"n{n} KILLED (SIGKILL)")
        if node.client is not None:
            await node.client.close()
            node.client = None

    async def restart(self, n: int) -> None:
        self.records.append({"t": self.now(), "kind": "restart", "node": n})
        self.on_note(self.now(), f"n{n} restarts")
        await self._spawn(self.nodes[n])
        self.restarted_up = time.time()

    # ------------------------------------------------------------------ the run
    async def run(self) -> list[Record]:
        """Run the plan; returns the merged trace (meta first, end last)."""
        plan = self.plan
        self.start = time.time()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(self._spawn(node) for node in self.nodes.values()))
            self.ready = time.time()
            self.on_note(self.now(), f"{len(self.nodes)} nodes up")
            faults = loop.create_task(self._faults())
            tasks = [faults]
            if self.workload is not None:
                tasks += [loop.create_task(self._drive(n)) for n in self.nodes]
            await asyncio.sleep(max(0.0, self.ready + plan.duration_s - time.time()))
            restart_at = plan.kill_at_s + (plan.restart_after_s or 0.0)
            planned = plan.kill is not None and plan.restart_after_s is not None
            if planned and restart_at <= plan.duration_s:  # rule 5: a planned restart completes
                await faults
                await asyncio.sleep(max(0.0, self.restarted_up + RESTART_GRACE_S - time.time()))
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self._stop_all()
        return merge_traces(
            self.meta(), [n.trace for n in self.nodes.values()], self.records, self.now()
        )

    def meta(self) -> Record:
        return {
            "t": 0.0,
            "kind": "meta",
            "protocol": self.plan.protocol,
            "seed": self.plan.seed,
            "nodes": sorted(self.nodes),
            "clocks": True,
            "runtime": "processes",
            "start": self.start,
        }

    async def _faults(self) -> None:
        plan = self.plan
        if plan.kill is None:
            return
        await asyncio.sleep(max(0.0, self.ready + plan.kill_at_s - time.time()))
        await self.kill(plan.kill)
        if plan.restart_after_s is not None:
            await asyncio.sleep(plan.restart_after_s)
            await self.restart(plan.kill)

    async def _drive(self, n: int) -> None:
        """Submit up to ``ops_per_node`` operations to node `n`, one at a time."""
        node = self.nodes[n]
        workload = self.workload
        assert workload is not None
        for _ in range(self.plan.ops_per_node):
            await node.up.wait()
            client = node.client
            if client is None:
                continue
            op = workload.next_operation(self.rng)
            process = self._invoke(n, op)
            outcome: Outcome | None = None
            try:
                outcome = await client.submit(op, self.plan.op_timeout_s)
            except (TimeoutError, ConnectionError, OSError):
                outcome = None
            finally:
                self._complete(n, process, op, outcome)

    def _invoke(self, n: int, op: Operation) -> int:
        process = self._next_process
        self._next_process += 1
        t = self.now()
        self.records.append(
            {"t": t, "kind": "invoke", "node": n, "process": process, "op": op.describe()}
        )
        self._history(t, process, "invoke", op, op.value)
        return process

    def _complete(self, n: int, process: int, op: Operation, outcome: Outcome | None) -> None:
        t = self.now()
        kind = "info" if outcome is None else outcome.type
        value = outcome.value if outcome is not None and op.f == "read" else op.value
        if op.f == "read" and kind != "ok":
            value = None
        self.records.append(
            {
                "t": t,
                "kind": "complete",
                "node": n,
                "process": process,
                "op": op.describe(),
                "type": kind,
                "value": _jsonable(outcome.value if outcome is not None else None),
            }
        )
        self._history(t, process, kind, op, value)

    def _history(self, t: float, process: int, kind: str, op: Operation, value: object) -> None:
        self.history.append(
            {
                "process": process,
                "type": kind,
                "f": op.f,
                "key": op.key,
                "value": _jsonable(value),
                "time": round(t * 1e9),
            }
        )

    async def _stop_all(self) -> None:
        for node in self.nodes.values():
            if node.client is not None:
                await node.client.close()
                node.client = None
            if node.proc is not None and node.proc.returncode is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            if node.proc is not None:
                try:
                    await asyncio.wait_for(node.proc.wait(), 10)
                except TimeoutError:
                    node.proc.kill()
                    await node.proc.wait()
            if node.reader is not None:
                with contextlib.suppress(Exception):
                    await node.reader
            code = node.proc.returncode if node.proc is not None else 0
            if code not in (0, -signal.SIGTERM, -signal.SIGKILL) or (
                code == -signal.SIGKILL and not node.killed
            ):
                tail = node.log.read_text(errors="replace")[-2000:] if node.log.exists() else ""
                self.failures.append(f"node {node.ident} exited with {code}: {tail.strip()}")
            if node.log_file is not None:
                node.log_file.close()
            with contextlib.suppress(OSError):
                node.sock.close()

    def alive(self) -> list[int]:
        return [n for n, node in self.nodes.items() if not node.killed]


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def merge_traces(
    meta: Record, paths: Iterable[Path], extra: Iterable[Record], end_t: float
) -> list[Record]:
    """One trace from the nodes' files and the launcher's records, sorted by ``t``."""
    records: list[Record] = list(extra)
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_bytes().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a last line torn by SIGKILL
                if isinstance(record, dict):
                    records.append(record)

    def key(r: Record) -> tuple[float, int]:
        t, lamport = r.get("t"), r.get("lamport")
        return (
            float(t) if isinstance(t, int | float) else 0.0,
            lamport if isinstance(lamport, int) else 0,
        )

    records.sort(key=key)
    sends = sum(1 for r in records if r.get("kind") == "send")
    events = sum(1 for r in records if r.get("kind") == "event")
    end: Record = {"t": end_t, "kind": "end", "events": events, "messages": sends}
    return [meta, *records, end]


# ---------------------------------------------------------------------------- checks
def _events(records: Iterable[Record]) -> list[tuple[Record, dict[str, object]]]:
    out = []
    for r in records:
        data = r.get("data")
        if r.get("kind") == "event" and isinstance(data, dict):
            out.append((r, data))
    return out


def _int(value: object) -> int:
    return value if isinstance(value, int) else -1


def _lamport_key(r: Record) -> tuple[int, int]:
    return (_int(r.get("lamport")), _int(r.get("node")))


def judge(
    protocol: str,
    records: list[Record],
    history: list[Record],
    *,
    alive: list[int],
    nodes: int,
    linearizable: bool = False,
    initial_balance: int = 1000,
) -> list[Verdict]:
    """The verdicts of every event-only check that applies to what was recorded."""
    events = _events(records)
    types = {str(d.get("type")) for _, d in events}
    verdicts: list[Verdict] = []
    if types & {"Requested", "EnterCS", "ExitCS"}:
        verdicts += _mutex(events)
    if "Delivered" in types:
        verdicts += _order(protocol, records, events)
    if "Decided" in types:
        verdicts.append(_atomicity(events))
    if types & {"Elected", "CoordinatorKnown", "LeaderElected"}:
        verdicts.append(_election(events, alive))
    if "SnapshotTaken" in types:
        verdicts.append(_snapshot(events, nodes, initial_balance))
    if linearizable:
        verdicts.append(_linearizable(history))
    return verdicts


def _mutex(events: list[tuple[Record, dict[str, object]]]) -> list[Verdict]:
    kinds = {"Requested": "request", "EnterCS": "enter", "ExitCS": "exit"}
    timeline: list[MutexEvent] = []
    for r, d in sorted(events, key=lambda e: (float(str(e[0]["t"])), _lamport_key(e[0]))):
        kind = kinds.get(str(d.get("type")))
        if kind is not None:
            timeline.append((float(str(r["t"])), _int(r.get("node")), kind))  # type: ignore[arg-type]
    violation = check_mutual_exclusion(timeline)
    entries = sum(1 for e in timeline if e[2] == "enter")
    if violation is not None:
        return [Verdict("mutual-exclusion", False, str(violation))]
    return [Verdict("mutual-exclusion", True, f"{entries} entries, never two at once")]


def _order(
    protocol: str, records: list[Record], events: list[tuple[Record, dict[str, object]]]
) -> list[Verdict]:
    bid_of: dict[object, tuple[int, int]] = {}
    for _, d in events:
        if d.get("type") == "Delivered":
            bid_of[d.get("value")] = (_int(d.get("origin")), _int(d.get("number")))
    stream: list[tuple[Record, OrderEvent]] = []
    for r in records:
        if r.get("kind") == "command" and r.get("f") == "broadcast":
            bid = bid_of.get(r.get("value"))
            if bid is not None:
                stream.append((r, (_int(r.get("node")), "broadcast", bid)))
    for r, d in events:
        if d.get("type") == "Delivered":
            bid = (_int(d.get("origin")), _int(d.get("number")))
            stream.append((r, (_int(r.get("node")), "deliver", bid)))
    stream.sort(key=lambda e: _lamport_key(e[0]))
    ordered = [e for _, e in stream]
    verdicts = []
    causal = check_causal_order(ordered)
    delivered = sum(1 for e in ordered if e[1] == "deliver")
    verdicts.append(
        Verdict(
            "causal-order", causal is None, str(causal) if causal else f"{delivered} deliveries"
        )
    )
    if "total" in protocol or "sequencer" in protocol:
        total = check_total_order(ordered)
        verdicts.append(
            Verdict("total-order", total is None, str(total) if total else "one delivery order")
        )
    return verdicts


def _atomicity(events: list[tuple[Record, dict[str, object]]]) -> Verdict:
    decisions = [
        (d.get("txn"), _int(r.get("node")), str(d.get("outcome")))
        for r, d in events
        if d.get("type") == "Decided"
    ]
    problems = check_atomicity(
        [(json.dumps(t), n, o) for t, n, o in decisions]  # txn ids may be lists
    )
    if problems:
        return Verdict("atomicity", False, "; ".join(problems[:3]))
    txns = len({json.dumps(t) for t, _, _ in decisions})
    return Verdict("atomicity", True, f"{txns} transactions, every site agrees")


def _election(events: list[tuple[Record, dict[str, object]]], alive: list[int]) -> Verdict:
    belief: dict[int, int] = {}
    for r, d in events:
        node = _int(r.get("node"))
        kind = d.get("type")
        if kind == "Elected":
            belief[node] = node
        elif kind in ("CoordinatorKnown", "LeaderElected"):
            leader = _int(d.get("leader"))
            belief[node] = node if leader < 0 else leader
    live = sorted(alive)
    views = {n: belief.get(n) for n in live}
    leaders = set(views.values())
    highest = max(live) if live else None
    shown = ", ".join(f"n{n}->{'?' if v is None else f'n{v}'}" for n, v in views.items())
    if leaders == {highest}:
        return Verdict("election", True, f"every live node names n{highest} ({shown})")
    return Verdict(
        "election", False, f"live nodes should all name n{highest}, the highest live id: {shown}"
    )


def _snapshot(
    events: list[tuple[Record, dict[str, object]]], nodes: int, initial_balance: int
) -> Verdict:
    totals = [_int(d.get("total")) for _, d in events if d.get("type") == "SnapshotTaken"]
    expected = nodes * initial_balance
    wrong = [t for t in totals if t != expected]
    if wrong:
        return Verdict("conservation", False, f"snapshot totals {wrong} != {expected}")
    return Verdict("conservation", True, f"{len(totals)} snapshot(s), each totals {expected}")


def _linearizable(history: list[Record]) -> Verdict:
    events = parse_history([json.dumps(h) for h in history], "<tejido run>")
    result = check_linearizable(events)
    if result.linearizable:
        return Verdict("linearizable", True, f"{result.operations} operations")
    return Verdict("linearizable", False, f"not linearizable (key {result.key!r})")
