"""Broadcast algorithms in the simulator: causal broadcast and total-order broadcast.

Clients submit ``broadcast V`` to random nodes; a node answers when it has delivered its own
message. The algorithms assume reliable channels and no process failures (see their
modules), so ``--faults all`` runs them with duplication, reordering, pauses, clock drift
and slow disks, but without loss, partitions or crashes.

Checked after every event, from the nodes' logs of broadcasts and deliveries
(`tejido.check.order`): integrity and causal order for all three; total order for the two
total-order algorithms. Checked at the end of every run: every message broadcast at least
``settle_s`` before the end has been delivered by every node.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tejido.algorithms.broadcast_base_a1 import BroadcastId, BroadcastProcess
from tejido.algorithms.causal import CausalBroadcast, CausalConfig
from tejido.algorithms.total_order import (
    SequencerBroadcast,
    TotalOrderBroadcast,
    TotalOrderConfig,
)
from tejido.check.order import CausalOrderChecker, TotalOrderChecker, undelivered
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.protocol import Env, Process
from tejido.sim.counts import CountCase, CountRun
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["COUNTS", "SPECS", "BroadcastWorkload", "DeliveryOrder"]

BROADCAST_FAULTS = ("duplicate", "reorder", "pause", "clock", "disk")


@dataclass(slots=True)
class BroadcastWorkload:
    """``broadcast 1``, ``broadcast 2``, ...: unique values, so every message is traceable."""

    _counter: int = 0

    def next_operation(self, rng: random.Random) -> Operation:
        self._counter += 1
        return Operation("broadcast", None, self._counter)


class DeliveryOrder(Invariant):
    """Feeds every node's new log entries to the order checkers after each event."""

    name = "delivery-order"

    def __init__(self, total: bool, settle_s: float = 1.0) -> None:
        self.causal = CausalOrderChecker()
        self.total = TotalOrderChecker() if total else None
        self.settle_s = settle_s
        self._seen: dict[NodeId, tuple[BroadcastProcess, int]] = {}
        self.broadcast_at: dict[BroadcastId, float] = {}

    def check(self, sim: Simulator) -> None:
        for node, process in sim.processes().items():
            if not isinstance(process, BroadcastProcess):
                continue
            known, offset = self._seen.get(node, (process, 0))
            if known is not process:
                raise InvariantViolation(
                    "broadcast-model", f"node {node} restarted: these algorithms assume no crashes"
                )
            log = process.log
            if offset == len(log):
                continue
            for kind, bid in log[offset:]:
                if kind == "broadcast":
                    self.broadcast_at[bid] = sim.now
                    self.causal.broadcast(node, bid)
                else:
                    self.causal.deliver(node, bid)
                    if self.total is not None:
                        self.total.deliver(node, bid)
            self._seen[node] = (process, len(log))

    def finish(self, sim: Simulator, healthy_from_s: float) -> None:
        deadline = sim.now - self.settle_s
        due = [bid for bid, at in self.broadcast_at.items() if at <= deadline]
        logs: dict[int, list[BroadcastId]] = {}
        for node, process in sim.processes().items():
            if isinstance(process, BroadcastProcess):
                logs[node] = [bid for kind, bid in process.log if kind == "deliver"]
        missing = undelivered(due, logs)
        if missing:
            shown = "; ".join(
                f"node {n} lacks {', '.join(_show(m) for m in ms[:5])}"
                + (f" (+{len(ms) - 5})" if len(ms) > 5 else "")
                for n, ms in missing.items()
            )
            raise InvariantViolation(
                "delivery-liveness",
                f"messages broadcast before {deadline:.3f}s not delivered everywhere: {shown}",
            )


def _show(mid: object) -> str:
    return f"{mid[0]}.{mid[1]}" if isinstance(mid, tuple) else repr(mid)


def _spec(
    name: str, summary: str, factory: Callable[[Env], Process], total: bool, broken: bool = False
) -> ProtocolSpec:
    return ProtocolSpec(
        name=name,
        summary=summary,
        factory=factory,
        workload=BroadcastWorkload,
        invariants=lambda: [DeliveryOrder(total)],
        faults=BROADCAST_FAULTS,
        min_nodes=1,
        broken=broken,
    )


SPECS = [
    _spec(
        "causal-broadcast",
        "causal broadcast with the vector-clock delivery condition (Birman et al. 1991)",
        lambda env: CausalBroadcast(env),
        total=False,
    ),
    _spec(
        "total-order-broadcast",
        "total-order broadcast: Lamport timestamps with acknowledgements (Lamport 1978)",
        lambda env: TotalOrderBroadcast(env),
        total=True,
    ),
    _spec(
        "sequencer-broadcast",
        "total-order broadcast through a fixed sequencer",
        lambda env: SequencerBroadcast(env),
        total=True,
    ),
    _spec(
        "causal-broadcast-no-holdback",
        "BROKEN on purpose: causal broadcast delivering on receipt",
        lambda env: CausalBroadcast(env, CausalConfig(hold_back=False)),
        total=False,
        broken=True,
    ),
    _spec(
        "total-order-no-acks",
        "BROKEN on purpose: Lamport total order delivering without waiting for later stamps",
        lambda env: TotalOrderBroadcast(env, TotalOrderConfig(wait_for_acks=False)),
        total=True,
        broken=True,
    ),
]


# Message counts ---------------------------------------------------------------------------


def per_broadcast(factory: Callable[[Env], Process], kinds: tuple[str, ...], n: int) -> int:
    """Messages per broadcast when each node except the lowest id broadcasts in turn."""
    run = CountRun(factory, n).start().run_for(0.1)
    costs = []
    for node in range(2, n + 1):
        run.mark()
        run.submit(node, Operation("broadcast", None, node))
        run.run_for(0.5)
        costs.append(run.sent(kinds))
    if len(set(costs)) != 1:
        raise InvariantViolation("count-scenario", f"broadcasts cost different counts: {costs}")
    return costs[0]


COUNTS = [
    CountCase(
        algorithm="causal-broadcast",
        scenario="one broadcast",
        counted="Broadcast",
        formula="n-1",
        expected=lambda n: n - 1,
        measure=lambda n: per_broadcast(CausalBroadcast, ("CausalMessage",), n),
    ),
    CountCase(
        algorithm="total-order-broadcast",
        scenario="one broadcast",
        counted="Broadcast + Ack",
        formula="(n-1) + (n-1)^2 = n(n-1)",
        expected=lambda n: n * (n - 1),
        measure=lambda n: per_broadcast(
            TotalOrderBroadcast, ("TotalOrderMessage", "TotalOrderAck"), n
        ),
    ),
    CountCase(
        algorithm="sequencer-broadcast",
        scenario="one broadcast by a node other than the sequencer",
        counted="Submit + Ordered",
        formula="1 + (n-1) = n",
        expected=lambda n: n,
        measure=lambda n: per_broadcast(SequencerBroadcast, ("Submit", "Ordered"), n),
    ),
]
