"""Election algorithms in the simulator: Bully and ring (Chang-Roberts / LCR).

Both assume crash failures detected by timeouts in a synchronous system with reliable
channels (see their modules), so ``--faults all`` runs them with crashes (and recoveries)
and clock drift only: loss, partitions or pauses would make a live coordinator look dead,
which their assumptions rule out.

Checked after every event: no node follows a coordinator with a lower id than its own
(both algorithms make such a node start an election instead). Checked at the end of every
run (everything was healed and restarted at ``heal_at_s``): every node has the highest id
as its coordinator, and that node considers itself the coordinator.
"""

from __future__ import annotations

from collections.abc import Callable

from tejido.algorithms.bully import ELECTION_MESSAGES as BULLY_MESSAGES
from tejido.algorithms.bully import BullyConfig, BullyNode
from tejido.algorithms.ring import RingConfig, RingElection
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.core.protocol import Env, Process
from tejido.sim.counts import CountCase, CountRun
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.world import Simulator

__all__ = ["COUNTS", "SPECS", "ElectionInvariant"]

ELECTION_FAULTS = ("crash", "clock")

NEVER_S = 1e9
"""A ping interval that never fires: count scenarios decide who detects a failure."""


def _leader(process: Process | None) -> NodeId | None:
    if isinstance(process, BullyNode | RingElection):
        return process.leader
    return None


class ElectionInvariant(Invariant):
    name = "election"

    def check(self, sim: Simulator) -> None:
        for node, process in sim.processes().items():
            leader = _leader(process)
            if leader is not None and leader < node:
                raise InvariantViolation(
                    "coordinator-not-lower",
                    f"node {node} follows coordinator {leader}, a lower id",
                )

    def finish(self, sim: Simulator, healthy_from_s: float) -> None:
        highest = max(sim.node_ids)
        views = {n: _leader(p) for n, p in sim.processes().items()}
        wrong = {n: v for n, v in views.items() if v != highest}
        if wrong:
            shown = ", ".join(f"node {n}: {v}" for n, v in sorted(wrong.items()))
            raise InvariantViolation(
                "election-liveness",
                f"at the end (healed since {healthy_from_s}s) not every node follows the "
                f"highest id {highest}: {shown}",
            )


def _bully(config: BullyConfig) -> Callable[[Env], Process]:
    return lambda env: BullyNode(env, config)


def _ring(config: RingConfig) -> Callable[[Env], Process]:
    return lambda env: RingElection(env, config)


SPECS = [
    ProtocolSpec(
        name="bully",
        summary="Bully election (Garcia-Molina 1982): highest live id leads",
        factory=_bully(BullyConfig()),
        invariants=lambda: [ElectionInvariant()],
        faults=ELECTION_FAULTS,
        default_nodes=5,
        min_nodes=1,
    ),
    ProtocolSpec(
        name="ring",
        summary="ring election (Chang-Roberts 1979 / LCR), skipping crashed nodes",
        factory=_ring(RingConfig()),
        invariants=lambda: [ElectionInvariant()],
        faults=ELECTION_FAULTS,
        default_nodes=5,
        min_nodes=1,
    ),
]


# Message counts ---------------------------------------------------------------------------


def _agreed(run: CountRun, leader: int, nodes: list[int]) -> None:
    views = {n: _leader(run.sim.nodes[NodeId(n)].process) for n in nodes}
    if any(v != leader for v in views.values()):
        raise InvariantViolation("count-scenario", f"expected leader {leader} everywhere: {views}")


def bully_second_highest_detects(n: int) -> int:
    """Node n (the coordinator) crashes; node n-1 alone detects it; count until quiet."""
    config = BullyConfig(ping_interval_s=NEVER_S)
    run = CountRun(_bully(config), n).start().run_for(1.0)
    _agreed(run, n, list(range(1, n + 1)))
    run.sim.crash(NodeId(n), power_loss=False, torn_probability=0.0)
    run.mark()
    run.submit(n - 1, Operation("suspect"))
    run.run_for(1.0)
    _agreed(run, n - 1, list(range(1, n)))
    return run.sent(BULLY_MESSAGES)


def _ring_start(order: str, kinds: tuple[str, ...], n: int) -> int:
    config = RingConfig(
        order="descending" if order == "descending" else "ascending", ping_interval_s=NEVER_S
    )
    run = CountRun(_ring(config), n)
    run.mark()
    run.start().run_for(1.0)
    _agreed(run, n, list(range(1, n + 1)))
    return run.sent(kinds)


COUNTS = [
    CountCase(
        algorithm="bully",
        scenario="the coordinator (id n) crashes; id n-1 detects it",
        counted="Election + Answer + Coordinator (not Ping/Pong)",
        formula="n-2",
        expected=lambda n: n - 2,
        measure=bully_second_highest_detects,
    ),
    CountCase(
        algorithm="ring",
        scenario="all start at once; ids decrease along the ring (worst)",
        counted="Election",
        formula="n(n+1)/2",
        expected=lambda n: n * (n + 1) // 2,
        measure=lambda n: _ring_start("descending", ("RingElectionMessage",), n),
    ),
    CountCase(
        algorithm="ring",
        scenario="all start at once; ids increase along the ring (best)",
        counted="Election",
        formula="2n-1",
        expected=lambda n: 2 * n - 1,
        measure=lambda n: _ring_start("ascending", ("RingElectionMessage",), n),
    ),
    CountCase(
        algorithm="ring",
        scenario="the announcement, either arrangement",
        counted="Elected (not HopAck/Ping/Pong)",
        formula="n",
        expected=lambda n: n,
        measure=lambda n: _ring_start("descending", ("RingElected",), n),
    ),
]
