"""Helpers shared by the algorithm tests: seed sweeps and pure-process harnesses."""

from __future__ import annotations

import random
from collections.abc import Callable

from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.core.protocol import Env, Process
from tejido.sim.options import FAULT_KINDS
from tejido.sim.registry import get_protocol
from tejido.sim.runner import RunResult, run_seed

__all__ = ["make_env", "sweep", "sweep_chunks"]


def sweep(
    name: str, seeds: range, *, duration_s: float, nodes: int | None = None
) -> list[RunResult]:
    """Run `name` under ``--faults all`` (its spec keeps the kinds it allows) for `seeds`;
    fail with the first violation and the command that reproduces it."""
    spec = get_protocol(name)
    results = []
    for seed in seeds:
        result = run_seed(spec, seed, nodes=nodes, duration_s=duration_s, faults=FAULT_KINDS)
        if not result.ok:
            v = result.violation
            assert v is not None
            raise AssertionError(
                f"{name} seed {seed}: {v.property} at {v.at_s:.6f}s: {v.detail}\n"
                f"reproduce: tejido sim {name} --seed {seed} --nodes {nodes or spec.default_nodes}"
                f" --faults all --time {duration_s:g}"
            )
        results.append(result)
    return results


def sweep_chunks(total: int, size: int) -> list[range]:
    return [range(low, min(low + size, total + 1)) for low in range(1, total + 1, size)]


def make_env(node: int, nodes: int, clock: Callable[[], float] = lambda: 0.0) -> Env:
    """An `Env` for driving a process by hand, without any runtime."""
    return Env(
        node_id=NodeId(node),
        nodes=tuple(NodeId(i) for i in range(1, nodes + 1)),
        rng=random.Random(node),
        clock=clock,
    )


def take_messages(process: Process) -> list[tuple[NodeId, Message]]:
    out = process.ready()
    return list(out.messages)
