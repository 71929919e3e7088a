"""Lease reads under clock drift, in the simulator, judged by the linearizability checker.

Lease assumption (reads.py rule 2): over one election timeout no two clocks' progress
differs by more than `max_clock_drift` seconds.

1. Within the bound, reads stay linearizable: the `raft-lease` sweep (all faults, clock
   rates drawn up to 5 % fast or slow: at most 0.1 s of relative progress per 1 s
   timeout, the default `max_clock_drift`), and the scripted scenario below with the
   leader's clock 4 % slow.
2. Beyond it, the checker catches the stale read: the same scenario with the leader's clock
   running at a quarter of real speed. Leadership moves to that node; it is then isolated
   and keeps serving reads from a lease that, on its slow clock, lasts about 3.6 s of real
   time, while the other two elect a leader after about 1-2 s and accept writes.
"""

from __future__ import annotations

import random

import msgspec
import pytest

from tejido.check.history import parse_history
from tejido.check.linearizability import check_linearizable
from tejido.core.ids import NodeId
from tejido.raft import RaftConfig, RaftNode, Role
from tejido.sim.clients import Clients, KeyValueWorkload
from tejido.sim.network import Network, Partition
from tejido.sim.options import FAULT_KINDS
from tejido.sim.registry import RaftSafety, get_protocol
from tejido.sim.runner import run_seed
from tejido.sim.world import Simulator

LEASE = RaftConfig(lease_reads=True)
NODES = [NodeId(1), NodeId(2), NodeId(3)]
SLOW = NodeId(1)


@pytest.mark.parametrize("seed", range(1, 21))
def test_lease_reads_linearizable_within_the_drift_bound(seed: int) -> None:
    result = run_seed(get_protocol("raft-lease"), seed, faults=FAULT_KINDS)
    assert result.ok, f"seed {seed}: {result.violation}"
    assert result.options.max_clock_drift <= 0.05  # what max_clock_drift=0.1 s covers


def _leader(sim: Simulator) -> NodeId | None:
    leaders = [
        (p.term, n)
        for n, p in sim.processes().items()
        if isinstance(p, RaftNode) and p.role is Role.LEADER
    ]
    return max(leaders)[1] if leaders else None


def _scenario(seed: int, slow_rate: float) -> tuple[bool, str, bool]:
    """Node 1's clock runs at (1 + slow_rate) of real speed. Leadership is transferred to
    it at 3 s, it is isolated from 5 s to 9 s; clients read and write throughout. Returns
    (linearizable, checker's description, whether node 1 led when isolated)."""
    network = Network(
        rng=random.Random(f"{seed}:net"),
        latency_s={(a, b): 0.001 for a in NODES for b in NODES if a != b},
        jitter_s=0.002,
        drop_probability=0.0,
        duplicate_probability=0.0,
        reorder_probability=0.0,
    )
    sim = Simulator(
        lambda env: RaftNode(env, LEASE), NODES, network, seed=seed, rates={SLOW: slow_rate}
    )
    safety = RaftSafety(LEASE)
    sim.after_event = lambda: safety.check(sim)
    workload = KeyValueWorkload(keys=("x",), functions=("read", "write"))
    clients = Clients(sim, workload, 4, timeout_s=1.0, think_time_s=0.05, stop_at_s=11.0)
    isolated_leader = []

    def transfer() -> None:
        leader = _leader(sim)
        assert leader is not None
        if leader != SLOW:
            process = sim.processes()[leader]
            assert isinstance(process, RaftNode)
            # The output leaves with the leader's next event (its heartbeat, < 0.1 s).
            process.transfer_leadership(SLOW)

    def isolate() -> None:
        isolated_leader.append(_leader(sim) == SLOW)
        others = [n for n in NODES if n != SLOW]
        sim.partition(Partition.split([SLOW], others, "isolate the slow leader"))

    sim.call_at(3.0, transfer)
    sim.call_at(5.0, isolate)
    sim.call_at(9.0, sim.heal)
    clients.start()
    sim.start()
    sim.run_until(12.0)
    encoder = msgspec.json.Encoder()
    events = parse_history((encoder.encode(e) for e in clients.history), source="lease run")
    result = check_linearizable(events)
    return result.linearizable, result.describe(), bool(isolated_leader and isolated_leader[0])


@pytest.mark.parametrize("seed", [3, 5, 7])
def test_lease_reads_linearizable_with_drift_inside_the_bound(seed: int) -> None:
    ok, detail, slow_led = _scenario(seed, slow_rate=-0.04)
    assert slow_led
    assert ok, detail


def test_checker_catches_stale_lease_reads_when_drift_exceeds_the_bound() -> None:
    ok, detail, slow_led = _scenario(seed=7, slow_rate=-0.75)
    assert slow_led
    assert not ok, "a leader with a clock at 1/4 speed served only fresh reads"
    assert "read" in detail
