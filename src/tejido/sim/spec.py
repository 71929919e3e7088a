"""What a protocol must tell the simulator: how to build it, its workload and its checks.

Protocol families outside this package's built-in list register themselves by adding a
module to `tejido.sim.specs` that defines ``SPECS: list[ProtocolSpec]``; the registry
imports every such module (in name order) and merges them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tejido.core.protocol import Env, Process
from tejido.sim.clients import Workload
from tejido.sim.world import Simulator

__all__ = ["Invariant", "ProtocolSpec"]


class Invariant:
    """A safety property checked after every simulator event. Subclasses may keep state.

    `check` sees the whole simulator: live processes (`sim.processes()`), and for crashed
    nodes what their disks hold (`sim.durable(node)`), so "nothing committed is lost" can
    count what a crashed replica would recover.
    """

    name = "invariant"

    def check(self, sim: Simulator) -> None:
        raise NotImplementedError

    def finish(self, sim: Simulator, healthy_from_s: float) -> None:
        """End-of-run check (liveness), called once when the run ended without a violation.

        `healthy_from_s` is when the faults ended plus the grace period; raise
        `InvariantViolation` if something that had to happen since then did not (every
        broadcast delivered everywhere, one agreed leader, ...). The default checks nothing.
        """


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    summary: str
    factory: Callable[[Env], Process]
    workload: Callable[[], Workload] | None = None
    invariants: Callable[[], list[Invariant]] = list
    linearizable: bool = False
    """Check the client history for linearizability at the end of each run."""
    liveness: bool = True
    """Operations invoked after the heal (plus a grace period) must complete."""
    faults: tuple[str, ...] | None = None
    """The fault kinds the protocol's assumptions allow (``--faults all`` means these);
    None allows every kind. A requested kind outside this set is left out of the run."""
    default_nodes: int = 3
    min_nodes: int = 1
    broken: bool = False
    """Deliberately wrong; exists to prove the checkers catch it. Not in `--list`."""
