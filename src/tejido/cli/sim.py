"""Run a protocol in the deterministic simulator under faults, and check it.

The simulator, its scenario registry and the drawing code load only when the command runs,
so that other commands (and `tejido --help`) do not pay for them.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from tejido.core.errors import BadInput

if TYPE_CHECKING:
    from tejido.sim.runner import RunResult

__all__ = ["parse_seed_range", "sim_command"]


def parse_seed_range(text: str) -> range:
    """``A..B`` (inclusive) or a single seed."""
    text = text.strip()
    try:
        if ".." in text:
            low_text, high_text = text.split("..", 1)
            low, high = int(low_text), int(high_text)
        else:
            low = high = int(text)
    except ValueError:
        raise BadInput(f"bad seed range {text!r}: expected A..B with integers A <= B") from None
    if low < 0:
        raise BadInput(f"bad seed range {text!r}: seeds are non-negative")
    if high < low:
        raise BadInput(f"empty seed range {text!r}: {low} > {high} (write it as {high}..{low})")
    return range(low, high + 1)


class _WallClockLimit(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _WallClockLimit("the run exceeded its wall-clock limit (a protocol handler hung?)")


def _reproduce(protocol: str, seed: int, args: dict[str, str]) -> str:
    extra = "".join(f" {k} {v}" if v else f" {k}" for k, v in args.items())
    return f"tejido sim {protocol} --seed {seed}{extra}"


def _report_failure(result: RunResult, reproduce: str) -> None:
    v = result.violation
    assert v is not None
    typer.echo(f"FAIL seed={result.seed} property={v.property} at={v.at_s:.6f}s", err=False)
    o = result.options
    typer.echo(
        f"  options: nodes={o.nodes} faults={','.join(o.faults) or 'none'} "
        f"drop={o.drop_probability} dup={o.duplicate_probability} reorder={o.reorder_probability} "
        f"drift={o.max_clock_drift} power-loss={o.power_loss_probability} "
        f"torn={o.torn_write_probability} heal-at={o.heal_at_s}s"
    )
    for line in v.detail.splitlines()[:40]:
        typer.echo(f"  | {line}")
    typer.echo(f"  reproduce: {reproduce}")


def sim_command(
    protocol: Annotated[str | None, typer.Argument(help="Protocol to run (see --list).")] = None,
    list_protocols: Annotated[
        bool, typer.Option("--list", help="List protocols and exit.")
    ] = False,
    nodes: Annotated[int | None, typer.Option("--nodes", help="Cluster size.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Run one seed.")] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Run seeds A..B (inclusive).")
    ] = None,
    faults: Annotated[str, typer.Option("--faults", help="all, none, or a list.")] = "all",
    duration: Annotated[float, typer.Option("--time", help="Virtual seconds per run.")] = 10.0,
    clients: Annotated[int, typer.Option("--clients", help="Client processes.")] = 3,
    clocks: Annotated[bool, typer.Option("--clocks/--no-clocks", help="Stamp clocks.")] = True,
    swarm: Annotated[bool, typer.Option("--swarm/--no-swarm", help="Draw fault kinds.")] = True,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Write the trace (JSON lines).")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML diagram.")] = None,
    wall_limit: Annotated[float, typer.Option("--wall-limit", help="Seconds per seed.")] = 600.0,
) -> None:
    """Run a protocol in the deterministic simulator under faults, and check it.

    Exit 0 when every check held for every seed, 1 on a violation (with the line that
    reproduces it), 2 on bad input.
    """
    from tejido.sim.options import parse_faults
    from tejido.sim.registry import REGISTRY, get_protocol
    from tejido.sim.runner import run_seed

    try:
        if list_protocols:
            if protocol or seed is not None or seeds:
                raise BadInput("--list takes no protocol or seeds")
            for name, spec in REGISTRY.items():
                if not spec.broken:
                    typer.echo(name)
            return
        if protocol is None:
            raise BadInput("missing PROTOCOL (see `tejido sim --list`)")
        spec = get_protocol(protocol)
        if seed is not None and seeds is not None:
            raise BadInput("give either --seed or --seeds, not both")
        seed_range = (
            parse_seed_range(seeds) if seeds is not None else range(seed or 1, (seed or 1) + 1)
        )
        if seed is not None and seed < 0:
            raise BadInput(f"--seed must be >= 0, got {seed}")
        fault_kinds = parse_faults(faults)
        n = nodes if nodes is not None else spec.default_nodes
        if n < spec.min_nodes or n > 64:
            raise BadInput(f"--nodes {n}: {spec.name} runs with {spec.min_nodes}..64 nodes")
        if duration <= 0:
            raise BadInput(f"--time must be positive, got {duration}")
        if clients < 0:
            raise BadInput(f"--clients must be >= 0, got {clients}")
        if (trace or html) and len(seed_range) > 1:
            raise BadInput("--trace/--html write one run: use them with --seed, not a range")
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    args: dict[str, str] = {"--nodes": str(n), "--faults": faults, "--time": f"{duration:g}"}
    if clients != 3:
        args["--clients"] = str(clients)
    if not clocks:
        args["--no-clocks"] = ""
    if not swarm:
        args["--no-swarm"] = ""

    def run(s: int, record: bool) -> RunResult:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, wall_limit)
        try:
            return run_seed(
                spec,
                s,
                nodes=n,
                duration_s=duration,
                faults=fault_kinds,
                clients=clients,
                clocks=clocks,
                record_trace=record,
                swarm=swarm,
            )
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    started = time.perf_counter()
    violations = events = 0
    first_failure_written = False
    want_trace = trace is not None or html is not None
    for s in seed_range:
        result = run(s, want_trace)
        events += result.events
        if result.ok:
            if len(seed_range) == 1:
                kinds = ",".join(result.options.faults) or "none"
                typer.echo(
                    f"ok seed={s} events={result.events} messages={result.sent} "
                    f"operations={result.operations} faults={kinds}"
                )
        else:
            violations += 1
            trace_path, html_path = trace, html
            if not want_trace and not first_failure_written:
                trace_path = Path("runs") / f"{spec.name}-seed{s}.trace.jsonl"
                html_path = Path("runs") / f"{spec.name}-seed{s}.html"
                result = run(s, True)  # same seed, same run: now with its trace
                first_failure_written = True
            repro_args = dict(args)
            if trace_path is not None:
                repro_args["--trace"] = str(trace_path)
            if html_path is not None:
                repro_args["--html"] = str(html_path)
            _report_failure(result, _reproduce(spec.name, s, repro_args))
            _write_outputs(result, trace_path, html_path)
            continue
        _write_outputs(result, trace, html)
    wall = time.perf_counter() - started
    typer.echo(f"seeds={len(seed_range)} violations={violations} events={events} wall={wall:.2f}s")
    sys.stdout.flush()
    if violations:
        raise typer.Exit(1)


def _write_outputs(result: RunResult, trace: Path | None, html: Path | None) -> None:
    if result.trace is None:
        return
    if trace is not None:
        from tejido.sim.trace import write_trace

        write_trace(result.trace.records, trace)
        typer.echo(f"trace: {trace}")
    if html is not None:
        from tejido.viz import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(result.trace.records), encoding="utf-8")
        typer.echo(f"diagram: {html.resolve()}")
