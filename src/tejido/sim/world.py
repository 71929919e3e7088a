"""The deterministic discrete-event simulator: virtual time, one thread, one seed.

Rules that make a run reproducible from its seed:

1. Every source of randomness is a `random.Random` seeded from the run's seed and a fixed
   label (``"net"``, ``"node 3 boot 2"``, ...), so adding draws in one place does not shift
   another stream.
2. Events sit in one heap ordered by (virtual time, sequence number); the sequence number
   breaks ties in the order events were scheduled, never by object identity or hash.
3. Nothing iterates a `set` of strings or objects; node ids are ints, kept in sorted lists.
4. Nothing reads the wall clock (import-linter forbids `time` here).

Each node runs a `Process` on its own clock: ``local = offset + t * (1 + rate)``, so a
timer set for ``d`` local seconds fires after ``d / (1 + rate)`` virtual seconds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tejido.core.clocks import VectorClock
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Outbox, Process
from tejido.core.storage import Recovered
from tejido.sim.disk import SimDisk
from tejido.sim.network import Network, Partition
from tejido.sim.trace import Trace

__all__ = ["ProcessFactory", "ReplyHandler", "SimNode", "Simulator"]

ProcessFactory = Callable[[Env], Process]
ReplyHandler = Callable[[RequestId, Outcome], None]

Handler = Callable[..., None]


@dataclass(slots=True)
class SimNode:
    """The simulator's bookkeeping for one node; the `process` is the protocol itself."""

    node_id: NodeId
    process: Process | None
    disk: SimDisk
    rate: float = 0.0
    offset_s: float = 0.0
    incarnation: int = 0
    up: bool = True
    paused: bool = False
    lamport: int = 0
    vc: VectorClock = field(default_factory=VectorClock)
    last_sync_done: float = 0.0
    timers: dict[TimerName, int] = field(default_factory=dict)
    """The generation of each pending timer; a fired timer must match it."""
    deferred: list[tuple[Handler, tuple[object, ...]]] = field(default_factory=list)
    """Events that reached the node while it was paused, in arrival order."""


class Simulator:
    """Runs one cluster of `Process` instances under a fault model."""

    def __init__(
        self,
        factory: ProcessFactory,
        nodes: list[NodeId],
        network: Network,
        *,
        seed: int,
        clocks: bool = True,
        trace: Trace | None = None,
        fsync_s: float = 0.0002,
        rates: Mapping[NodeId, float] | None = None,
        offsets: Mapping[NodeId, float] | None = None,
    ) -> None:
        self.factory = factory
        self.node_ids = sorted(nodes)
        self.network = network
        self.seed = seed
        self.clocks = clocks
        self.trace = trace
        self.fsync_s = fsync_s
        self.slow_fsync_s = 0.0
        self.slow_fsync_probability = 0.0
        self.now = 0.0
        self.events = 0
        self.delivered = 0
        self.sent = 0
        self._heap: list[tuple[float, int, Handler, tuple[object, ...]]] = []
        self._seq = 0
        self._next_message_id = 0
        self._timer_gen = 0
        self._disk_rng = random.Random(f"{seed}:disk")
        self.reply_handler: ReplyHandler | None = None
        self._deliver_handler: Handler = self._deliver  # bound once: used per message
        self.after_event: Callable[[], None] | None = None
        rates = rates or {}
        offsets = offsets or {}
        self.nodes: dict[NodeId, SimNode] = {
            n: SimNode(n, None, SimDisk(), rates.get(n, 0.0), offsets.get(n, 0.0))
            for n in self.node_ids
        }

    # ------------------------------------------------------------------ scheduling
    def schedule(self, at: float, handler: Handler, args: tuple[object, ...]) -> None:
        """Call `handler(*args)` at virtual time `at`."""
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, handler, args))

    def call_at(self, at: float, fn: Callable[[], None]) -> None:
        """Run `fn` at virtual time `at` (used by the nemesis and clients)."""
        self.schedule(at, fn, ())

    def local_time(self, node: SimNode) -> float:
        return node.offset_s + self.now * (1.0 + node.rate)

    def record(self, record: dict[str, object]) -> None:
        if self.trace is not None:
            self.trace.add(record)

    # ------------------------------------------------------------------ node lifecycle
    def _boot(self, node: SimNode) -> None:
        node.incarnation += 1
        rng = random.Random(f"{self.seed}:node {node.node_id} boot {node.incarnation}")
        env = Env(
            node_id=node.node_id,
            nodes=tuple(self.node_ids),
            rng=rng,
            clock=lambda: self.local_time(node),
        )
        process = self.factory(env)
        node.process = process
        node.up = True
        node.paused = False
        node.timers.clear()
        node.deferred.clear()
        node.last_sync_done = self.now
        process.on_start(node.disk.recover())
        self._flush(node)

    def start(self) -> None:
        """Start every node (at virtual time 0)."""
        for n in self.node_ids:
            self._boot(self.nodes[n])

    def crash(self, n: NodeId, *, power_loss: bool, torn_probability: float) -> None:
        node = self.nodes[n]
        if not node.up:
            return
        node.up = False
        node.process = None
        node.timers.clear()
        node.deferred.clear()
        report = node.disk.crash(self._disk_rng, power_loss, torn_probability)
        self.record(
            {
                "t": self.now,
                "kind": "crash",
                "node": n,
                "power_loss": power_loss,
                "lost": report.lost,
                "torn": report.torn,
            }
        )

    def restart(self, n: NodeId) -> None:
        node = self.nodes[n]
        if node.up:
            return
        self.record({"t": self.now, "kind": "restart", "node": n})
        self._boot(node)

    def pause(self, n: NodeId) -> None:
        node = self.nodes[n]
        if node.up and not node.paused:
            node.paused = True
            self.record({"t": self.now, "kind": "pause", "node": n})

    def resume(self, n: NodeId) -> None:
        node = self.nodes[n]
        if not (node.up and node.paused):
            return
        node.paused = False
        self.record({"t": self.now, "kind": "resume", "node": n})
        deferred, node.deferred = node.deferred, []
        for handler, args in deferred:
            handler(*args)

    def partition(self, part: Partition) -> None:
        self.network.cut(part)
        self.record(
            {
                "t": self.now,
                "kind": "partition",
                "blocked": sorted([a, b] for a, b in part.blocked),
                "desc": part.desc,
            }
        )

    def heal(self) -> None:
        self.network.heal()
        self.record({"t": self.now, "kind": "heal"})

    def durable(self, n: NodeId) -> Recovered:
        """What node `n` would recover if it crashed now and lost every unsynced write."""
        return self.nodes[n].disk.durable()

    def processes(self) -> dict[NodeId, Process | None]:
        """Each node's live process (None while crashed), for invariant checkers."""
        return {n: self.nodes[n].process for n in self.node_ids}

    # ------------------------------------------------------------------ client commands
    def submit(self, n: NodeId, request: RequestId, operation: Operation, delay_s: float) -> None:
        """A client's command reaches node `n` after `delay_s` (lost if it is down then)."""
        self.schedule(self.now + delay_s, self._command, (n, request, operation))

    # ------------------------------------------------------------------ output handling
    def _flush(self, node: SimNode) -> None:
        """Carry out everything the node's process left in its outbox."""
        process = node.process
        if process is None:
            return
        out = process.out
        if out.messages:
            for dst, message in out.messages:
                self._send(node, dst, message)
            out.messages.clear()
        if out.storage or out.syncs or out.timers or out.replies or out.events:
            self._flush_rest(node, out)
        if out.idle:  # the batch is carried out: `on_idle` at the same instant
            out.idle = False
            process.on_idle()
            self._flush(node)

    def _flush_rest(self, node: SimNode, out: Outbox) -> None:
        if out.storage:
            disk = node.disk
            for op in out.storage:
                disk.write(op)
            out.storage.clear()
        if out.syncs:
            self._syncs(node, out.syncs)
            out.syncs.clear()
        if out.timers:
            self._timers(node, out.timers)
            out.timers.clear()
        if out.replies:
            handler = self.reply_handler
            for request, outcome in out.replies:
                if handler is not None:
                    handler(request, outcome)
            out.replies.clear()
        if out.events:
            if self.trace is not None:
                for event in out.events:
                    self.trace.add(
                        {
                            "t": self.now,
                            "kind": "event",
                            "node": node.node_id,
                            "event": event.describe(),
                        }
                    )
            out.events.clear()

    def _syncs(self, node: SimNode, tokens: list[int]) -> None:
        upto = node.disk.sync_point()
        duration = self.fsync_s
        if self.slow_fsync_probability and self._disk_rng.random() < self.slow_fsync_probability:
            duration = self.slow_fsync_s
        done = max(self.now + duration, node.last_sync_done)
        node.last_sync_done = done
        for token in tokens:
            self.schedule(done, self._durable, (node, node.incarnation, token, upto))

    def _timers(self, node: SimNode, timers: list[tuple[TimerName, float | None]]) -> None:
        for name, delay in timers:
            if delay is None:
                node.timers.pop(name, None)
                continue
            self._timer_gen += 1
            gen = self._timer_gen
            node.timers[name] = gen
            at = self.now + delay / (1.0 + node.rate)
            self.schedule(at, self._fire_timer, (node, node.incarnation, name, gen))

    def _send(self, node: SimNode, dst: NodeId, message: Message) -> None:
        # The hot path of every simulation: keep it free of avoidable calls.
        src = node.node_id
        self._next_message_id = mid = self._next_message_id + 1
        self.sent += 1
        lamport = 0
        vc: VectorClock | None = None
        if self.clocks:
            node.lamport = lamport = node.lamport + 1
            node.vc = vc = node.vc.tick(src)
        trace = self.trace
        if trace is not None:
            record: dict[str, object] = {
                "t": self.now,
                "kind": "send",
                "id": mid,
                "src": src,
                "dst": dst,
                "msg": message.describe(),
                "type": type(message).__name__,
            }
            if vc is not None:
                record["lamport"] = lamport
                record["vc"] = vc.to_dict()
            trace.add(record)
        network = self.network
        if network.blocked and (src, dst) in network.blocked:
            self._drop(mid, src, dst, "partition")
            return
        if network.drop_probability and network.rng.random() < network.drop_probability:
            self._drop(mid, src, dst, "loss")
            return
        target = self.nodes[dst]
        self._seq = seq = self._seq + 1
        heapq.heappush(
            self._heap,
            (
                self.now + network.delay(src, dst),
                seq,
                self._deliver_handler,
                (mid, src, target, message, lamport, vc),
            ),
        )
        if network.duplicate_probability and network.rng.random() < network.duplicate_probability:
            self._next_message_id = copy = self._next_message_id + 1
            self.record(
                {
                    "t": self.now,
                    "kind": "duplicate",
                    "id": mid,
                    "src": src,
                    "dst": dst,
                    "copy": copy,
                }
            )
            payload = (copy, src, target, message, lamport, vc)
            self.schedule(self.now + network.delay(src, dst), self._deliver_handler, payload)

    def _drop(self, mid: int, src: NodeId, dst: NodeId, reason: str) -> None:
        if self.trace is not None:
            self.trace.add(
                {"t": self.now, "kind": "drop", "id": mid, "src": src, "dst": dst, "reason": reason}
            )

    # ------------------------------------------------------------------ the event loop
    def run_until(self, end_s: float, max_events: int | None = None) -> None:
        """Process events in order until virtual time `end_s` (or `max_events` events)."""
        heap = self._heap
        pop = heapq.heappop
        budget = max_events if max_events is not None else -1
        while heap and heap[0][0] <= end_s and budget != 0:
            at, _, handler, args = pop(heap)
            self.now = at
            self.events += 1
            budget -= 1
            handler(*args)
            if self.after_event is not None:
                self.after_event()
        if not heap or heap[0][0] > end_s:
            self.now = max(self.now, end_s)

    def _deliver(
        self,
        mid: int,
        src: NodeId,
        node: SimNode,
        message: Message,
        lamport: int,
        vc: VectorClock | None,
    ) -> None:
        dst = node.node_id
        if not node.up or node.paused or self.network.blocked:
            if not node.up:
                self._drop(mid, src, dst, "crashed")
                return
            if (src, dst) in self.network.blocked:
                self._drop(mid, src, dst, "partition")
                return
            if node.paused:
                node.deferred.append((self._deliver, (mid, src, node, message, lamport, vc)))
                return
        if vc is not None:
            node.lamport = max(node.lamport, lamport) + 1
            node.vc = node.vc.receive(dst, vc)
        self.delivered += 1
        trace = self.trace
        if trace is not None:
            record: dict[str, object] = {
                "t": self.now,
                "kind": "deliver",
                "id": mid,
                "src": src,
                "dst": dst,
            }
            if vc is not None:
                record["lamport"] = node.lamport
                record["vc"] = node.vc.to_dict()
            trace.add(record)
        process = node.process
        if process is not None:
            process.on_message(src, message)
            self._flush(node)

    def _fire_timer(self, node: SimNode, incarnation: int, name: TimerName, gen: int) -> None:
        if node.incarnation != incarnation or node.timers.get(name) != gen:
            return  # cancelled, replaced, or set by a previous incarnation
        if node.paused:
            node.deferred.append((self._fire_timer, (node, incarnation, name, gen)))
            return
        del node.timers[name]
        if self.trace is not None:
            self.trace.add({"t": self.now, "kind": "timer", "node": node.node_id, "name": name})
        process = node.process
        if process is not None:
            process.on_timer(name)
            self._flush(node)

    def _durable(self, node: SimNode, incarnation: int, token: int, upto: int) -> None:
        if node.incarnation != incarnation or not node.up:
            return
        if node.paused:
            node.deferred.append((self._durable, (node, incarnation, token, upto)))
            return
        node.disk.complete_sync(upto)
        if self.trace is not None:
            self.trace.add({"t": self.now, "kind": "durable", "node": node.node_id, "token": token})
        process = node.process
        if process is not None:
            process.on_durable(token)
            self._flush(node)

    def _command(self, n: NodeId, request: RequestId, operation: Operation) -> None:
        node = self.nodes[n]
        if not node.up:
            return  # the client will time out and record the outcome as unknown
        if node.paused:
            node.deferred.append((self._command, (n, request, operation)))
            return
        process = node.process
        if process is not None:
            process.on_command(request, operation)
            self._flush(node)
