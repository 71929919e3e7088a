"""`tejido run ALGORITHM`: run an algorithm on real local processes, show and check it.

Starts ``--nodes`` ``tejido node run`` processes on loopback (tracing on), drives the
algorithm's workload (the same `Workload` the simulator uses: each node gets up to
``--ops`` operations, one at a time; elections need none), prints every event as it
happens with its node and Lamport time, kills ``--kill`` with SIGKILL ``--at`` seconds in
(and restarts it ``--restart-after`` seconds later if asked), stops at ``--time``, then runs
the event-only checkers (`tejido.net.run.judge`), prints their verdicts, and writes the
merged trace (``--trace``) and the space-time diagram (``--html``).

Exit codes: 0 every check passed, 1 a check failed or a node could not start or failed
(its log is printed), 2 bad input.

The runtime, the scenario registry and the drawing code load inside the command, so that
other commands do not pay for them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tejido.core.errors import BadInput

if TYPE_CHECKING:
    from tejido.net.run import Record

__all__ = ["algorithms", "run_command"]


def algorithms() -> list[str]:
    """The protocols `tejido run` accepts: every registered one not broken on purpose."""
    from tejido.sim.registry import REGISTRY

    return sorted(name for name, spec in REGISTRY.items() if not spec.broken)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _show_event(record: Record) -> None:
    t = record.get("t")
    stamp = f"{t:8.3f}s" if isinstance(t, float | int) else " " * 9
    typer.echo(f"{stamp} [L={record.get('lamport')}] n{record.get('node')} {record.get('event')}")


def _show_note(t: float, text: str) -> None:
    typer.echo(f"{t:8.3f}s ---- {text}")


def run_command(
    algorithm: Annotated[str, typer.Argument(help="The algorithm (see `tejido sim --list`).")],
    nodes: Annotated[int, typer.Option(help="How many node processes.")] = 3,
    kill: Annotated[int | None, typer.Option(help="Kill this node id with SIGKILL.")] = None,
    at: Annotated[float, typer.Option(help="Seconds after the start to kill --kill.")] = 1.0,
    restart_after: Annotated[
        float | None, typer.Option(help="Restart the killed node this many seconds later.")
    ] = None,
    time_s: Annotated[float, typer.Option("--time", help="Seconds to run in total.")] = 4.0,
    ops: Annotated[int, typer.Option(help="Operations each node's client submits.")] = 3,
    html: Annotated[Path | None, typer.Option(help="Write the space-time diagram here.")] = None,
    trace: Annotated[Path | None, typer.Option(help="Write the merged trace here.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed the workload and the nodes.")] = None,
) -> None:
    """Run ALGORITHM on real local processes; print events, check them, draw them."""
    import asyncio

    from tejido.net.host import use_uvloop
    from tejido.net.run import LocalRun, RunPlan, judge
    from tejido.sim.registry import REGISTRY
    from tejido.sim.trace import write_trace
    from tejido.viz import render_html

    spec = REGISTRY.get(algorithm)
    if spec is None or spec.broken:
        raise _fail(f"unknown algorithm {algorithm!r}; available: {', '.join(algorithms())}")
    if nodes < max(1, spec.min_nodes):
        raise _fail(f"--nodes {nodes}: {algorithm} needs at least {max(1, spec.min_nodes)}")
    if nodes > 32:
        raise _fail(f"--nodes {nodes}: at most 32 local processes")
    if time_s <= 0:
        raise _fail(f"--time {time_s}: must be positive")
    if ops < 0:
        raise _fail(f"--ops {ops}: must be >= 0")
    if kill is not None:
        if not 1 <= kill <= nodes:
            raise _fail(f"--kill {kill}: node ids are 1..{nodes}")
        if not 0 <= at < time_s:
            raise _fail(f"--at {at}: must be in [0, --time) = [0, {time_s})")
    elif restart_after is not None:
        raise _fail("--restart-after needs --kill")
    if restart_after is not None and restart_after < 0:
        raise _fail(f"--restart-after {restart_after}: must be >= 0")
    plan = RunPlan(
        protocol=algorithm,
        nodes=nodes,
        duration_s=time_s,
        kill=kill,
        kill_at_s=at,
        restart_after_s=restart_after,
        ops_per_node=ops,
        op_timeout_s=max(1.0, time_s / 2),
        seed=seed,
    )
    use_uvloop()
    typer.echo(f"tejido run {algorithm}: {nodes} processes for {time_s:g} s")
    with tempfile.TemporaryDirectory(prefix="tejido-run-") as tmp:
        launcher = LocalRun(
            plan,
            Path(tmp),
            workload=spec.workload() if spec.workload is not None else None,
            on_event=_show_event,
            on_note=_show_note,
        )
        try:
            records = asyncio.run(launcher.run())
        except BadInput as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        alive = launcher.alive()
        history = launcher.history
    verdicts = judge(
        algorithm, records, history, alive=alive, nodes=nodes, linearizable=spec.linearizable
    )
    sends = sum(1 for r in records if r.get("kind") == "send")
    events = sum(1 for r in records if r.get("kind") == "event")
    typer.echo(f"---- {events} events, {sends} messages")
    if not verdicts:
        typer.echo(f"no event-only checker applies to {algorithm}")
    for v in verdicts:
        typer.echo(f"check {v.check}: {'PASS' if v.ok else 'FAIL'} ({v.detail})")
    if trace is not None:
        write_trace(records, trace)
        typer.echo(f"trace: {trace}")
    if html is not None:
        page = render_html(records, title=f"tejido run {algorithm} ({nodes} processes)")
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page, encoding="utf-8")
        typer.echo(f"diagram: {html}")
    for failure in launcher.failures:
        typer.echo(f"error: {failure}", err=True)
    sys.stdout.flush()
    if launcher.failures or not all(v.ok for v in verdicts):
        raise typer.Exit(1)
