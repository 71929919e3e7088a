"""Simulation options, drawn from the seed ("swarm testing").

Each run draws not only a fault schedule but *which kinds* of faults are enabled and how
intense they are (Groce et al. 2012, "Swarm Testing"; TigerBeetle's VOPR does the same):
a run with only reordering and clock drift explores different interleavings than a run
drowning in partitions. The drawn options are printed with every failure so the run can be
understood, and the seed alone reproduces it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from tejido.core.errors import BadInput

__all__ = ["FAULT_KINDS", "LIVENESS_MIN_S", "SimOptions", "draw_options", "parse_faults"]

LIVENESS_MIN_S = 2.5
"""Shortest healed phase: 1 s grace + 1 s client timeout + room for operations."""

FAULT_KINDS: tuple[str, ...] = (
    "drop",  # messages lost
    "duplicate",  # messages delivered twice
    "reorder",  # some messages delayed far beyond the usual latency
    "partition",  # symmetric, one-way, isolate, majority/minority, bridge
    "crash",  # process crash or power loss (unsynced writes lost, last append torn)
    "pause",  # a node stops processing for a while (GC pause, SIGSTOP)
    "clock",  # per-node clock rate drift and offset
    "disk",  # slow fsync
)


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Everything that shapes one run besides the protocol; all drawn from the seed."""

    nodes: int
    duration_s: float
    """Virtual time of the whole run: a fault phase, then a healed liveness phase."""
    faults: tuple[str, ...]
    """Fault kinds enabled in this run (a subset of the kinds requested)."""
    clients: int = 3
    clocks: bool = True
    """Stamp every message with Lamport and vector clocks."""
    heal_at_s: float = 0.0
    """When every fault is healed; operations invoked after ``heal_at_s + grace_s`` must
    complete."""
    grace_s: float = 1.0
    # network
    latency_s: dict[str, float] = field(default_factory=dict)
    """Mean one-way latency per directed link, keyed ``"src->dst"``."""
    jitter_s: float = 0.0005
    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    reorder_probability: float = 0.0
    # nemesis
    nemesis_interval_s: float = 0.5
    """Mean time between nemesis actions during the fault phase."""
    torn_write_probability: float = 0.0
    power_loss_probability: float = 0.0
    """Chance that a crash also loses unsynced writes (otherwise the OS kept them)."""
    max_clock_drift: float = 0.0
    """Largest clock rate error, as a fraction (0.01 = 1 % fast or slow)."""
    clock_rates: dict[str, float] = field(default_factory=dict)
    fsync_s: float = 0.0002
    slow_fsync_s: float = 0.0
    client_timeout_s: float = 1.0
    think_time_s: float = 0.02

    def summary(self) -> dict[str, object]:
        """The options as a JSON-ready dict (for traces and failure reports)."""
        return asdict(self)


def parse_faults(spec: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma-separated list of fault kinds."""
    spec = spec.strip()
    if spec == "all":
        return FAULT_KINDS
    if spec in ("none", ""):
        return ()
    kinds = tuple(part.strip() for part in spec.split(","))
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise BadInput(
            f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}, "
            "'all' or 'none'"
        )
    if len(set(kinds)) != len(kinds):
        raise BadInput(f"fault kind listed twice in {spec!r}")
    return kinds


def draw_options(
    seed: int,
    nodes: int,
    duration_s: float,
    faults: tuple[str, ...],
    *,
    clients: int = 3,
    clocks: bool = True,
    swarm: bool = True,
) -> SimOptions:
    """Draw one run's options from `seed`.

    With `swarm`, each requested fault kind is enabled with probability 1/2 (at least one
    stays on when any was requested), and its intensity is drawn too.
    """
    rng = random.Random(f"tejido-options:{seed}")
    enabled = list(faults)
    if swarm and len(faults) > 1:
        enabled = [k for k in faults if rng.random() < 0.5] or [rng.choice(faults)]
    on = set(enabled)
    ids = range(1, nodes + 1)
    base = rng.choice((0.0005, 0.001, 0.002, 0.005))
    latency = {f"{a}->{b}": round(base * rng.uniform(0.5, 2.0), 6) for a in ids for b in ids}
    max_drift = rng.choice((0.001, 0.01, 0.05)) if "clock" in on else 0.0
    rates = {str(n): round(rng.uniform(-max_drift, max_drift), 6) for n in ids} if max_drift else {}
    # The liveness phase must fit a grace period plus one client timeout with room to spare;
    # runs too short for that still get faults, but liveness is then not judged.
    liveness_s = max(0.3 * duration_s, LIVENESS_MIN_S)
    heal_at = duration_s - liveness_s if duration_s > liveness_s else duration_s * 0.5
    heal_at = round(heal_at, 6) if enabled else 0.0
    return SimOptions(
        nodes=nodes,
        duration_s=duration_s,
        faults=tuple(k for k in FAULT_KINDS if k in on),
        clients=clients,
        clocks=clocks,
        heal_at_s=heal_at,
        latency_s=latency,
        jitter_s=round(base * rng.uniform(0.1, 1.0), 6),
        drop_probability=round(rng.uniform(0.01, 0.3), 4) if "drop" in on else 0.0,
        duplicate_probability=round(rng.uniform(0.01, 0.2), 4) if "duplicate" in on else 0.0,
        reorder_probability=round(rng.uniform(0.01, 0.2), 4) if "reorder" in on else 0.0,
        nemesis_interval_s=round(rng.uniform(0.1, 1.0), 4),
        torn_write_probability=round(rng.uniform(0.0, 1.0), 4) if "crash" in on else 0.0,
        power_loss_probability=round(rng.uniform(0.0, 1.0), 4) if "crash" in on else 0.0,
        max_clock_drift=max_drift,
        clock_rates=rates,
        fsync_s=rng.choice((0.0001, 0.0002, 0.001)),
        slow_fsync_s=rng.choice((0.01, 0.05, 0.2)) if "disk" in on else 0.0,
    )
