"""The simulated network: per-link latency, loss, duplication, reordering and partitions.

Partitions are a set of cut directed links. The shapes the nemesis uses follow Jepsen's
partition nemeses: a random split into two sides, a one-way cut, one node isolated, a
majority/minority split, and a *bridge* (two halves that only one node can talk to; the
bridge node sees both sides and each side sees the bridge, so there are two overlapping
majorities).
"""

from __future__ import annotations

import math
import random

from tejido.core.ids import NodeId

__all__ = ["Network", "Partition"]

Link = tuple[NodeId, NodeId]


class Partition:
    """A named set of cut links."""

    __slots__ = ("blocked", "desc")

    def __init__(self, desc: str, blocked: set[Link]) -> None:
        self.desc = desc
        self.blocked = blocked

    @staticmethod
    def split(a: list[NodeId], b: list[NodeId], desc: str) -> Partition:
        cut = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
        return Partition(desc, cut)

    @staticmethod
    def draw(rng: random.Random, nodes: list[NodeId]) -> Partition:
        """Draw one of the partition shapes."""
        shape = rng.choice(("split", "one-way", "isolate", "majority", "bridge"))
        shuffled = list(nodes)
        rng.shuffle(shuffled)
        n = len(nodes)
        if n < 2:
            return Partition("none", set())
        if shape == "isolate":
            lone = shuffled[0]
            return Partition.split([lone], shuffled[1:], f"isolate {lone}")
        if shape == "one-way":
            src, dst = shuffled[0], shuffled[1]
            return Partition(f"one-way {src}-x->{dst}", {(src, dst)})
        if shape == "majority":
            minority = sorted(shuffled[: (n - 1) // 2 or 1])
            majority = sorted(shuffled[len(minority) :])
            return Partition.split(minority, majority, f"majority {majority} | {minority}")
        if shape == "bridge" and n >= 3:
            bridge = shuffled[0]
            rest = shuffled[1:]
            left, right = sorted(rest[: len(rest) // 2]), sorted(rest[len(rest) // 2 :])
            part = Partition.split(left, right, f"bridge {bridge}: {left} | {right}")
            return part
        cut = rng.randint(1, n - 1)
        a, b = sorted(shuffled[:cut]), sorted(shuffled[cut:])
        return Partition.split(a, b, f"split {a} | {b}")


class Network:
    """Decides the fate of each message: when it arrives, or that it is lost."""

    __slots__ = (
        "_latency",
        "blocked",
        "drop_probability",
        "duplicate_probability",
        "jitter_s",
        "latency_s",
        "partition",
        "reorder_probability",
        "rng",
    )

    def __init__(
        self,
        rng: random.Random,
        latency_s: dict[Link, float],
        jitter_s: float,
        drop_probability: float,
        duplicate_probability: float,
        reorder_probability: float,
    ) -> None:
        self.rng = rng
        self.latency_s = latency_s
        # The same latencies as nested dicts: no tuple is built per message.
        self._latency: dict[NodeId, dict[NodeId, float]] = {}
        for (src, dst), mean in latency_s.items():
            self._latency.setdefault(src, {})[dst] = mean
        self.jitter_s = jitter_s
        self.drop_probability = drop_probability
        self.duplicate_probability = duplicate_probability
        self.reorder_probability = reorder_probability
        self.partition: Partition | None = None
        self.blocked: set[Link] = set()

    def delay(self, src: NodeId, dst: NodeId) -> float:
        """One draw of the link's one-way latency: its mean plus exponential jitter."""
        rng = self.rng
        links = self._latency.get(src)
        mean = links.get(dst, 0.001) if links is not None else 0.001
        delay = mean - math.log(1.0 - rng.random()) * self.jitter_s
        if self.reorder_probability and rng.random() < self.reorder_probability:
            delay *= 5.0 + 45.0 * rng.random()
        return delay

    def cut(self, partition: Partition) -> None:
        self.partition = partition
        self.blocked = partition.blocked

    def heal(self) -> None:
        self.partition = None
        self.blocked = set()

    def calm(self) -> None:
        """The liveness phase: no more loss, duplication or reordering."""
        self.drop_probability = 0.0
        self.duplicate_probability = 0.0
        self.reorder_probability = 0.0
