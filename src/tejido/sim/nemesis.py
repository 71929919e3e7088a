"""The nemesis: a fault schedule drawn from the seed, then a healing phase.

During the fault phase (virtual time ``0 .. heal_at_s``) it acts at exponentially
distributed intervals, each time picking one of the enabled scheduled faults: cut or heal a
partition, crash a node (and restart it later), pause a node (and resume it later), or
make fsync slow for a while. Loss, duplication, reordering and clock drift are continuous
and set up by the options. At ``heal_at_s`` it heals everything: the network becomes
reliable, every node is restarted and resumed, and the protocol must make progress again
(TigerBeetle's VOPR: a safety phase, then a liveness phase on a healed cluster).
"""

from __future__ import annotations

import random

from tejido.core.ids import NodeId
from tejido.sim.network import Partition
from tejido.sim.options import SimOptions
from tejido.sim.world import Simulator

__all__ = ["Nemesis"]

_SCHEDULED = ("partition", "crash", "pause", "disk")


class Nemesis:
    def __init__(self, sim: Simulator, options: SimOptions) -> None:
        self.sim = sim
        self.options = options
        self.rng = random.Random(f"{sim.seed}:nemesis")
        self.kinds = [k for k in _SCHEDULED if k in options.faults]
        self.healed = False

    def start(self) -> None:
        if self.kinds:
            self._schedule_next()
        if self.options.heal_at_s > 0:
            self.sim.call_at(self.options.heal_at_s, self.heal_all)

    def _schedule_next(self) -> None:
        at = self.sim.now + self.rng.expovariate(1.0 / self.options.nemesis_interval_s)
        if at < self.options.heal_at_s:
            self.sim.call_at(at, self._act)

    def _act(self) -> None:
        if self.healed:
            return
        kind = self.kinds[self.rng.randrange(len(self.kinds))]
        getattr(self, f"_{kind}")()
        self._schedule_next()

    def _up_nodes(self) -> list[NodeId]:
        return [n for n in self.sim.node_ids if self.sim.nodes[n].up]

    def _later(self, low_s: float, high_s: float) -> float:
        return self.sim.now + self.rng.uniform(low_s, high_s)

    def _partition(self) -> None:
        if self.sim.network.partition is not None and self.rng.random() < 0.5:
            self.sim.heal()
            return
        self.sim.partition(Partition.draw(self.rng, list(self.sim.node_ids)))

    def _crash(self) -> None:
        up = self._up_nodes()
        if not up:
            return
        node = up[self.rng.randrange(len(up))]
        power_loss = self.rng.random() < self.options.power_loss_probability
        self.sim.crash(
            node, power_loss=power_loss, torn_probability=self.options.torn_write_probability
        )
        self.sim.call_at(self._later(0.01, 1.0), lambda: self._restart(node))

    def _restart(self, node: NodeId) -> None:
        if not self.healed:
            self.sim.restart(node)

    def _pause(self) -> None:
        candidates = [n for n in self._up_nodes() if not self.sim.nodes[n].paused]
        if not candidates:
            return
        node = candidates[self.rng.randrange(len(candidates))]
        self.sim.pause(node)
        self.sim.call_at(self._later(0.01, 0.5), lambda: self.sim.resume(node))

    def _disk(self) -> None:
        sim = self.sim
        if sim.slow_fsync_probability:
            sim.slow_fsync_probability = 0.0
        else:
            sim.slow_fsync_s = self.options.slow_fsync_s
            sim.slow_fsync_probability = self.rng.uniform(0.1, 1.0)

    def heal_all(self) -> None:
        """End of the fault phase: every fault is repaired."""
        self.healed = True
        sim = self.sim
        if sim.network.partition is not None:
            sim.heal()
        sim.network.calm()
        sim.slow_fsync_probability = 0.0
        for n in sim.node_ids:
            if not sim.nodes[n].up:
                sim.restart(n)
            elif sim.nodes[n].paused:
                sim.resume(n)
        sim.record({"t": sim.now, "kind": "heal-all"})
