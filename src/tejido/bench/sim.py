"""`tejido bench sim`: how many messages the simulator delivers per wall-clock second.

The workload is the trivial `relay` protocol (tokens hop between random nodes), so the
cost measured is the simulator's own: the event heap, the network model, the outbox
handling and, with clocks on, Lamport and vector clock stamping. No faults, no trace, no
invariants: this is the simulator's ceiling, on one core.
"""

from __future__ import annotations

import random
import statistics
import time

from tejido.bench.records import Record
from tejido.core.ids import NodeId
from tejido.protocols.relay import Relay
from tejido.sim.network import Network
from tejido.sim.world import Simulator

__all__ = ["bench_sim", "measure_delivery_rate"]


def measure_delivery_rate(
    *, clocks: bool, nodes: int = 5, tokens: int = 8, virtual_s: float = 20.0, seed: int = 1
) -> tuple[float, int]:
    """Run relay for `virtual_s` virtual seconds; return (deliveries per wall second, count)."""
    ids = [NodeId(i) for i in range(1, nodes + 1)]
    network = Network(
        rng=random.Random(f"{seed}:net"),
        latency_s={(a, b): 0.001 for a in ids for b in ids},
        jitter_s=0.0005,
        drop_probability=0.0,
        duplicate_probability=0.0,
        reorder_probability=0.0,
    )
    sim = Simulator(lambda env: Relay(env, tokens=tokens), ids, network, seed=seed, clocks=clocks)
    sim.start()
    started = time.perf_counter()
    sim.run_until(virtual_s)
    wall = time.perf_counter() - started
    return sim.delivered / wall, sim.delivered


def bench_sim(repeats: int = 3, virtual_s: float = 20.0) -> list[Record]:
    records: list[Record] = []
    for clocks in (False, True):
        rates = [
            measure_delivery_rate(clocks=clocks, virtual_s=virtual_s)[0] for _ in range(repeats)
        ]
        records.append(
            {
                "system": "tejido-sim",
                "workload": "clocks on" if clocks else "clocks off",
                "metric": "delivered messages",
                "value": round(statistics.median(rates)),
                "unit": "msg/s",
                "runs": repeats,
                "nodes": 5,
                "protocol": "relay",
            }
        )
    return records
