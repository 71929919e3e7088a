"""A hand-driven cluster for Paxos unit tests: every message and sync is routed by the test.

Syncs complete at once (the storage is perfect unless a test crashes a node, which drops
its unsynced writes: there are none, since every sync completes immediately). Messages wait
in `in_flight` until the test delivers or drops them.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tejido.core.ids import NodeId, RequestId
from tejido.core.messages import Message
from tejido.core.operations import Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import StorageState


class Cluster:
    def __init__(self, factory: Callable[[Env], Process], size: int = 3) -> None:
        self.factory = factory
        self.ids = tuple(NodeId(i) for i in range(1, size + 1))
        self.disks = {n: StorageState() for n in self.ids}
        self.nodes: dict[NodeId, Process] = {}
        self.in_flight: list[tuple[NodeId, NodeId, Message]] = []
        self.replies: dict[RequestId, Outcome] = {}
        self.clock = 0.0
        for n in self.ids:
            self.boot(n)

    def boot(self, n: NodeId) -> None:
        env = Env(n, self.ids, random.Random(f"{n}"), lambda: self.clock)
        process = self.factory(env)
        self.nodes[n] = process
        process.on_start(self.disks[n].snapshot())
        self.flush(n)

    def crash(self, n: NodeId) -> None:
        del self.nodes[n]
        self.in_flight = [m for m in self.in_flight if m[1] != n]

    def flush(self, n: NodeId) -> None:
        process = self.nodes.get(n)
        while process is not None and process.out:
            out = process.ready()
            for op in out.storage:
                self.disks[n].apply(op)
            for dst, message in out.messages:
                self.in_flight.append((n, dst, message))
            for request, outcome in out.replies:
                self.replies[request] = outcome
            for token in out.syncs:
                process.on_durable(token)

    def deliver(
        self, keep: Callable[[NodeId, NodeId, Message], bool] = lambda s, d, m: True
    ) -> int:
        """Deliver (or, where `keep` says no, drop) everything in flight until quiet."""
        count = 0
        while self.in_flight:
            src, dst, message = self.in_flight.pop(0)
            if dst not in self.nodes or not keep(src, dst, message):
                continue
            count += 1
            self.nodes[dst].on_message(src, message)
            self.flush(dst)
        return count

    def timer(self, n: NodeId, name: str) -> None:
        self.nodes[n].on_timer(name)  # type: ignore[arg-type]
        self.flush(n)
