"""Simulated clients: they issue operations, wait, give up, and record a history.

Each client process has at most one operation outstanding (the history format's rule). It
sends its command to a node drawn at random, waits up to ``client_timeout_s``, and records
``ok``/``fail`` when the node answers, or ``info`` (outcome unknown) when it gives up. After
an ``info`` the client continues under a fresh process id, as Jepsen does, because the old
operation may still take effect at any later moment.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tejido.core.ids import NodeId, ProcessId, RequestId
from tejido.core.operations import Operation, OpValue, Outcome
from tejido.sim.world import Simulator

__all__ = ["Clients", "KeyValueWorkload", "Workload"]


class Workload(Protocol):
    def next_operation(self, rng: random.Random) -> Operation: ...


@dataclass(slots=True)
class KeyValueWorkload:
    """Random operations over a few keys; written values are unique so histories are sharp."""

    keys: Sequence[str | None] = ("x", "y", "z")
    functions: Sequence[str] = ("read", "write")
    _counter: int = 0

    def next_operation(self, rng: random.Random) -> Operation:
        key = self.keys[rng.randrange(len(self.keys))]
        f = self.functions[rng.randrange(len(self.functions))]
        if f == "read":
            return Operation("read", key, None)
        self._counter += 1
        if f == "write":
            return Operation("write", key, self._counter)
        if f == "cas":
            return Operation("cas", key, (rng.randrange(self._counter + 1), self._counter))
        if f == "append":
            return Operation("append", key, f"x{self._counter}y")
        raise ValueError(f"unknown workload function {f!r}")


def _json_value(value: OpValue) -> object:
    return list(value) if isinstance(value, tuple) else value


@dataclass(slots=True)
class _Outstanding:
    process: ProcessId
    operation: Operation
    node: NodeId
    invoked_at: float


class Clients:
    """Drives `count` client processes against the simulator's nodes."""

    def __init__(
        self,
        sim: Simulator,
        workload: Workload,
        count: int,
        *,
        timeout_s: float,
        think_time_s: float,
        latency_s: float = 0.0005,
        stop_at_s: float,
    ) -> None:
        self.sim = sim
        self.workload = workload
        self.count = count
        self.timeout_s = timeout_s
        self.think_time_s = think_time_s
        self.latency_s = latency_s
        self.stop_at_s = stop_at_s
        self.rng = random.Random(f"{sim.seed}:clients")
        self.history: list[dict[str, object]] = []
        """JSON-ready history events in real-time order (docs/formats.md)."""
        self.completed: list[tuple[float, float, str]] = []
        """(invoked_at, completed_at, type) of every finished operation."""
        self._outstanding: dict[RequestId, _Outstanding] = {}
        self._next_request = 0
        self._next_process = count
        sim.reply_handler = self._on_reply

    def start(self) -> None:
        for p in range(self.count):
            self._schedule_next(ProcessId(p), self.rng.uniform(0, self.think_time_s))

    def _schedule_next(self, process: ProcessId, delay: float) -> None:
        at = self.sim.now + delay
        if at < self.stop_at_s:
            self.sim.call_at(at, lambda: self._invoke(process))

    def _event(self, process: ProcessId, kind: str, op: Operation, value: OpValue) -> None:
        event: dict[str, object] = {"process": process, "type": kind, "f": op.f}
        if op.key is not None:
            event["key"] = op.key
        event["value"] = _json_value(value)
        event["time"] = round(self.sim.now * 1e9)
        self.history.append(event)

    def _invoke(self, process: ProcessId) -> None:
        sim = self.sim
        op = self.workload.next_operation(self.rng)
        node = sim.node_ids[self.rng.randrange(len(sim.node_ids))]
        self._next_request += 1
        request = RequestId(self._next_request)
        self._outstanding[request] = _Outstanding(process, op, node, sim.now)
        self._event(process, "invoke", op, op.value)
        if sim.trace is not None:
            sim.trace.add(
                {
                    "t": sim.now,
                    "kind": "invoke",
                    "node": node,
                    "process": process,
                    "op": op.describe(),
                }
            )
        sim.submit(node, request, op, self.latency_s)
        sim.call_at(sim.now + self.timeout_s, lambda: self._timeout(request))

    def _on_reply(self, request: RequestId, outcome: Outcome) -> None:
        self.sim.call_at(self.sim.now + self.latency_s, lambda: self._complete(request, outcome))

    def _complete(self, request: RequestId, outcome: Outcome) -> None:
        pending = self._outstanding.pop(request, None)
        if pending is None:
            return  # the client gave up on it already
        self._finish(pending, outcome.type, outcome.value if outcome.type == "ok" else None)
        next_process = pending.process
        if outcome.type == "info":
            next_process = self._fresh_process()
        self._schedule_next(next_process, self.rng.expovariate(1.0 / self.think_time_s))

    def _timeout(self, request: RequestId) -> None:
        pending = self._outstanding.pop(request, None)
        if pending is None:
            return
        self._finish(pending, "info", None)
        self._schedule_next(self._fresh_process(), self.rng.expovariate(1.0 / self.think_time_s))

    def _fresh_process(self) -> ProcessId:
        self._next_process += 1
        return ProcessId(self._next_process - 1)

    def _finish(self, pending: _Outstanding, kind: str, read_value: OpValue) -> None:
        op = pending.operation
        value = read_value if op.f == "read" else op.value
        self._event(pending.process, kind, op, value)
        self.completed.append((pending.invoked_at, self.sim.now, kind))
        sim = self.sim
        if sim.trace is not None:
            sim.trace.add(
                {
                    "t": sim.now,
                    "kind": "complete",
                    "node": pending.node,
                    "process": pending.process,
                    "op": op.describe(),
                    "type": kind,
                    "value": _json_value(value),
                }
            )
