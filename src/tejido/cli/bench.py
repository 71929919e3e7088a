"""`tejido bench NAME`: run a benchmark, print a table, optionally write JSON records.

Every benchmark (and `tejido.bench` itself) loads inside its command, so that the other
commands of `tejido` do not pay for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tejido.bench.records import Record


def print_table(records: Sequence[Record]) -> None:
    """`tejido.bench.records.print_table`, imported when a benchmark has run."""
    from tejido.bench.records import print_table as show

    show(records)


def write_json(records: Sequence[Record], path: Path) -> None:
    """`tejido.bench.records.write_json`, imported when a benchmark has run."""
    from tejido.bench.records import write_json as write

    write(records, path)


app = typer.Typer(help="Measure tejido (records: system, workload, metric, value, unit).")

JsonOption = Annotated[Path | None, typer.Option("--json", help="Write the records as JSON.")]


@app.command("sim")
def bench_sim_command(
    json_path: JsonOption = None,
    repeats: Annotated[int, typer.Option(help="Runs per workload (median reported).")] = 3,
    virtual_s: Annotated[float, typer.Option("--time", help="Virtual seconds per run.")] = 20.0,
) -> None:
    """Simulator delivery rate (msg/s) with clock stamping off and on."""
    from tejido.bench.sim import bench_sim

    records = bench_sim(repeats=repeats, virtual_s=virtual_s)
    print_table(records)
    if json_path is not None:
        write_json(records, json_path)


@app.command("raft")
def bench_raft_command(
    json_path: JsonOption = None,
    repeats: Annotated[int, typer.Option(help="Runs per workload (median reported).")] = 3,
    entries: Annotated[int, typer.Option(help="Entries committed per run.")] = 20_000,
    profile: Annotated[
        bool, typer.Option("--profile", help="Also print the top functions (cProfile).")
    ] = False,
) -> None:
    """Raft core: committed entries/s, 3 nodes in one process, batches of 1, 16, 256."""
    from tejido.bench.raft import bench_raft, profile_summary

    records = bench_raft(repeats=repeats, entries=entries)
    print_table(records)
    if profile:
        typer.echo(profile_summary(entries=entries))
    if json_path is not None:
        write_json(records, json_path)


@app.command("check")
def bench_check_command(json_path: JsonOption = None) -> None:
    """Linearizability checker: time to check generated and recorded histories."""
    from tejido.check.bench import bench_check

    records = bench_check()
    print_table(records)
    if json_path is not None:
        write_json(records, json_path)


@app.command("rpc")
def bench_rpc_command(
    json_path: JsonOption = None,
    against: Annotated[
        str,
        typer.Option(help="Anchors besides asyncio-echo: grpc, pyro5 (comma-separated) or none."),
    ] = "grpc,pyro5",
    repeats: Annotated[
        int, typer.Option(help="Runs per system and workload (median reported).")
    ] = 3,
    duration: Annotated[float, typer.Option(help="Measured seconds per run.")] = 2.0,
    warmup: Annotated[float, typer.Option(help="Unmeasured seconds before each run.")] = 0.5,
    placement: Annotated[
        str,
        typer.Option(help="CPUs: split (server CPU 1, client CPU 0), shared (both CPU 0) or none."),
    ] = "split",
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="Also sample tejido's server and client with py-spy during one 64-in-flight "
            "run; write the stacks to this directory and print where the time goes.",
        ),
    ] = None,
) -> None:
    """RPC calls/s and latency: tejido, a bare asyncio echo, grpcio and Pyro5 side by side."""
    from tejido.bench.rpc import (
        RpcBenchError,
        bench_rpc,
        describe_conditions,
        format_rpc_table,
        parse_against,
        target_lines,
    )
    from tejido.bench.rpc_setup import PAYLOAD_BYTES, placement_named

    try:
        chosen = placement_named(placement)
        anchors = parse_against(against)
        typer.echo(
            f"{chosen.describe()}; {PAYLOAD_BYTES}-byte calls; median of {repeats} runs of "
            f"{duration:g} s after {warmup:g} s warm-up",
            err=True,
        )
        records = bench_rpc(
            anchors,
            repeats=repeats,
            duration_s=duration,
            warmup_s=warmup,
            placement=chosen,
            progress=lambda line: typer.echo(line, err=True),
        )
        summary = None
        if profile is not None:
            from tejido.bench.rpc_profile import profile_tejido

            summary = profile_tejido(
                profile, placement=chosen, duration_s=duration, warmup_s=warmup
            )
    except (RpcBenchError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(describe_conditions(records))
    typer.echo(format_rpc_table(records))
    for line in target_lines(records):
        typer.echo(line)
    if summary is not None:
        typer.echo(summary)
    if json_path is not None:
        write_json(records, json_path)


@app.command("kv")
def bench_kv_command(
    json_path: JsonOption = None,
    against: Annotated[
        str,
        typer.Option(
            help="Anchors: etcd, pysyncobj, zookeeper, floor (the hops of a replicated "
            "fsynced store with no protocol), comma-separated."
        ),
    ] = "etcd,pysyncobj",
    systems: Annotated[
        str, typer.Option(help="Systems measured besides the anchors (tejido, or none).")
    ] = "tejido",
    clients: Annotated[str, typer.Option(help="Client counts (comma-separated).")] = "1,16,64,256",
    duration: Annotated[float, typer.Option(help="Measured seconds per point.")] = 20.0,
    warmup: Annotated[float, typer.Option(help="Unmeasured seconds before each point.")] = 3.0,
    generators: Annotated[
        int | None,
        typer.Option(help="Load generator processes per point (default: 1 below 64 clients, 2)."),
    ] = None,
    failover: Annotated[
        bool, typer.Option(help="Also kill the leader under a write load (last, per system).")
    ] = True,
) -> None:
    """Replicated stores: tejido beside etcd, PySyncObj (and ZooKeeper), 3 members each."""
    from tejido.bench.kv import (
        KvBenchError,
        bench_kv,
        format_kv_table,
        parse_clients,
        parse_systems,
        target_lines,
    )

    failures: list[str] = []
    try:
        names = parse_systems(systems) + [
            s for s in parse_systems(against) if s not in parse_systems(systems)
        ]
        records = bench_kv(
            names,
            clients=parse_clients(clients),
            duration_s=duration,
            warmup_s=warmup,
            generators=generators,
            failover=failover,
            progress=lambda line: typer.echo(line, err=True),
            failures=failures,
        )
    except KvBenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_kv_table(records))
    for line in target_lines(records):
        typer.echo(line)
    if json_path is not None:
        write_json(records, json_path)
    if failures:
        for message in failures:
            typer.echo(f"failed: {message}", err=True)
        raise typer.Exit(1)


@app.command("actors")
def bench_actors_command(
    json_path: JsonOption = None,
    against: Annotated[
        str, typer.Option(help="Anchors: pykka, thespian, ray (comma-separated) or none.")
    ] = "pykka,thespian",
    repeats: Annotated[int, typer.Option(help="Runs per system and workload (median).")] = 3,
    messages: Annotated[int, typer.Option(help="Messages per local tell run.")] = 200_000,
    asks: Annotated[int, typer.Option(help="Round trips per local ask run.")] = 20_000,
    spawn: Annotated[int, typer.Option(help="Actors spawned for the spawn time.")] = 100_000,
    remote: Annotated[
        bool, typer.Option(help="Also remote tell/ask between two processes.")
    ] = True,
    remote_asks: Annotated[int, typer.Option(help="Round trips per remote ask run.")] = 5_000,
    remote_messages: Annotated[int, typer.Option(help="Messages per remote tell run.")] = 50_000,
) -> None:
    """Actor tell and ask, local and between two processes: tejido beside pykka, Thespian,
    Ray and a bare asyncio echo; memory and spawn time."""
    from tejido.bench.actors import ActorBenchError, bench_actors, parse_against, target_lines

    try:
        records = bench_actors(
            parse_against(against),
            repeats=repeats,
            messages=messages,
            asks=asks,
            spawn=spawn,
            remote=remote,
            remote_asks=remote_asks,
            remote_messages=remote_messages,
            progress=lambda line: typer.echo(line, err=True),
        )
    except ActorBenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    print_table(records)
    for line in target_lines(records):
        typer.echo(line)
    if json_path is not None:
        write_json(records, json_path)


@app.command("mpi")
def bench_mpi_command(
    json_path: JsonOption = None,
    repeats: Annotated[int, typer.Option(help="Rounds per workload (median reported).")] = 3,
    systems: Annotated[
        str, typer.Option(help="Comma-separated: tejido-tcp, tejido-mpi, mpi4py, socket.")
    ] = "tejido-tcp,tejido-mpi,mpi4py,socket",
) -> None:
    """MPI: ping-pong latency, bandwidth, allreduce; tejido tcp/mpi vs mpi4py vs a socket."""
    from tejido.bench.mpi import bench_mpi

    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    records = bench_mpi(repeats=repeats, systems=chosen)
    print_table(records)
    if json_path is not None:
        write_json(records, json_path)


@app.command("recipes")
def bench_recipes_command(
    json_path: JsonOption = None,
    against: Annotated[str, typer.Option(help="Anchors: etcd or none.")] = "etcd",
    locks: Annotated[int, typer.Option(help="Uncontended locks per run.")] = 200,
    handoffs: Annotated[int, typer.Option(help="Contended hand-offs measured.")] = 30,
    cli_runs: Annotated[int, typer.Option(help="`tejido lock -- true` runs.")] = 5,
) -> None:
    """Fenced lock: uncontended acquire+release/s and hand-off latency, tejido and etcd."""
    from tejido.bench.recipes import RecipeBenchError, bench_recipes

    if against not in ("etcd", "none"):
        typer.echo(f"error: --against must be etcd or none, not {against!r}", err=True)
        raise typer.Exit(2)
    try:
        records = bench_recipes(
            against_etcd=against == "etcd",
            locks=locks,
            handoffs=handoffs,
            cli_runs=cli_runs,
            progress=lambda line: typer.echo(line, err=True),
        )
    except RecipeBenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    print_table(records)
    if json_path is not None:
        write_json(records, json_path)
