"""Run one seed of a protocol: options, cluster, nemesis, clients, checks, verdict."""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass, field

import msgspec

from tejido.check.history import parse_history
from tejido.check.linearizability import CheckGaveUp, check_linearizable
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.sim.clients import Clients
from tejido.sim.nemesis import Nemesis
from tejido.sim.network import Network
from tejido.sim.options import SimOptions, draw_options
from tejido.sim.registry import ProtocolSpec
from tejido.sim.spec import Invariant
from tejido.sim.trace import Trace
from tejido.sim.world import Simulator

__all__ = ["RunResult", "Violation", "run_seed"]

DEFAULT_MAX_EVENTS = 20_000_000
CHECK_BUDGET_CONFIGURATIONS = 5_000_000
"""Search budget per key for the linearizability check of one run's history."""


@dataclass(frozen=True, slots=True)
class Violation:
    property: str
    """Which property broke: an invariant's name, ``linearizability``, ``liveness``,
    ``crash`` (the protocol raised) or ``event-budget`` (the run never settled)."""
    detail: str
    at_s: float


@dataclass(slots=True)
class RunResult:
    protocol: str
    seed: int
    options: SimOptions
    violation: Violation | None
    events: int
    sent: int
    delivered: int
    operations: int
    history: list[dict[str, object]] = field(default_factory=list)
    trace: Trace | None = None

    @property
    def ok(self) -> bool:
        return self.violation is None


class _StopRun(Exception):
    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.detail)
        self.violation = violation


def run_seed(
    spec: ProtocolSpec,
    seed: int,
    *,
    nodes: int | None = None,
    duration_s: float = 10.0,
    faults: tuple[str, ...] = (),
    clients: int = 3,
    clocks: bool = True,
    record_trace: bool = False,
    swarm: bool = True,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> RunResult:
    """Run `spec` for one seed; everything that happens is decided by `seed`."""
    n = nodes or spec.default_nodes
    if spec.faults is not None:
        faults = tuple(k for k in faults if k in spec.faults)
    options = draw_options(
        seed,
        n,
        duration_s,
        faults,
        clients=clients if spec.workload else 0,
        clocks=clocks,
        swarm=swarm,
    )
    ids = [NodeId(i) for i in range(1, n + 1)]
    network = Network(
        rng=random.Random(f"{seed}:net"),
        latency_s={
            (NodeId(int(a)), NodeId(int(b))): v
            for link, v in options.latency_s.items()
            for a, b in [link.split("->")]
        },
        jitter_s=options.jitter_s,
        drop_probability=options.drop_probability,
        duplicate_probability=options.duplicate_probability,
        reorder_probability=options.reorder_probability,
    )
    trace = Trace() if record_trace else None
    sim = Simulator(
        spec.factory,
        ids,
        network,
        seed=seed,
        clocks=clocks,
        trace=trace,
        fsync_s=options.fsync_s,
        rates={NodeId(int(k)): v for k, v in options.clock_rates.items()},
        offsets={i: float(i) * 10.0 for i in ids} if options.clock_rates else None,
    )
    sim.record(
        {
            "t": 0.0,
            "kind": "meta",
            "protocol": spec.name,
            "seed": seed,
            "nodes": list(ids),
            "clocks": clocks,
            "options": options.summary(),
        }
    )
    driver: Clients | None = None
    if spec.workload is not None and options.clients:
        driver = Clients(
            sim,
            spec.workload(),
            options.clients,
            timeout_s=options.client_timeout_s,
            think_time_s=options.think_time_s,
            stop_at_s=duration_s,
        )
    invariants = spec.invariants()
    if invariants:

        def check_invariants() -> None:
            for invariant in invariants:
                try:
                    invariant.check(sim)
                except InvariantViolation as exc:
                    raise _StopRun(Violation(exc.name, exc.detail, sim.now)) from exc

        sim.after_event = check_invariants

    violation: Violation | None = None
    try:
        Nemesis(sim, options).start()
        if driver is not None:
            driver.start()
        sim.start()
        sim.run_until(duration_s, max_events=max_events)
        if sim.events >= max_events:
            violation = Violation(
                "event-budget",
                f"{max_events} events before virtual time {duration_s}s (stuck at {sim.now:.6f}s)",
                sim.now,
            )
    except _StopRun as stop:
        violation = stop.violation
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc))
        violation = Violation("crash", detail.rstrip(), sim.now)

    if violation is None:
        violation = _finish_invariants(invariants, sim, options)
    history = driver.history if driver is not None else []
    if violation is None and driver is not None:
        violation = _check_liveness(spec, options, driver, duration_s)
    if violation is None and spec.linearizable and history:
        violation = _check_history(history, sim.now)
    if violation is not None:
        sim.record(
            {
                "t": sim.now,
                "kind": "violation",
                "property": violation.property,
                "detail": violation.detail,
            }
        )
    sim.record({"t": sim.now, "kind": "end", "events": sim.events, "messages": sim.sent})
    return RunResult(
        protocol=spec.name,
        seed=seed,
        options=options,
        violation=violation,
        events=sim.events,
        sent=sim.sent,
        delivered=sim.delivered,
        operations=len(driver.completed) if driver else 0,
        history=history,
        trace=trace,
    )


def _finish_invariants(
    invariants: list[Invariant], sim: Simulator, options: SimOptions
) -> Violation | None:
    """Each invariant's end-of-run check (liveness properties that clients cannot see)."""
    for invariant in invariants:
        try:
            invariant.finish(sim, options.heal_at_s + options.grace_s)
        except InvariantViolation as exc:
            return Violation(exc.name, exc.detail, sim.now)
    return None


def _check_liveness(
    spec: ProtocolSpec, options: SimOptions, driver: Clients, duration_s: float
) -> Violation | None:
    """After the heal (plus grace), every operation must finish before its timeout."""
    if not spec.liveness:
        return None
    start = options.heal_at_s + options.grace_s
    deadline = duration_s - options.client_timeout_s
    if deadline <= start:
        return None
    window = [c for c in driver.completed if start <= c[0] <= deadline]
    unknown = [c for c in window if c[2] == "info"]
    if unknown:
        first = unknown[0]
        return Violation(
            "liveness",
            f"{len(unknown)} of {len(window)} operations invoked after the heal at "
            f"{options.heal_at_s}s (+{options.grace_s}s grace) did not complete; first invoked "
            f"at {first[0]:.6f}s",
            first[1],
        )
    if not any(c[2] == "ok" for c in window):
        return Violation("liveness", "no operation succeeded after the heal", duration_s)
    return None


def _check_history(history: list[dict[str, object]], now: float) -> Violation | None:
    encoder = msgspec.json.Encoder()
    events = parse_history((encoder.encode(e) for e in history), source="simulated history")
    try:
        result = check_linearizable(events, max_configurations=CHECK_BUDGET_CONFIGURATIONS)
    except CheckGaveUp as exc:
        # No verdict is not a pass: report it, so the seed gets looked at.
        return Violation("linearizability-undecided", str(exc), now)
    if result.linearizable:
        return None
    return Violation("linearizability", result.describe(), now)
