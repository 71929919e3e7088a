"""`tejido node ...`: run a protocol node on real sockets and disk, and talk to it.

``tejido node run`` prints one line ``tejido node ID listening on HOST:PORT`` on stdout
once it accepts connections (so a supervisor or a test can start it on port 0), runs until
SIGTERM or SIGINT, then stops cleanly (exit 0). A node that fails (the protocol raised, an
fsync failed) exits 1 with the reason on stderr; bad arguments exit 2.

With ``--trace FILE`` the node records its messages (stamped with Lamport and vector
clocks), events, commands and timers in FILE (`tejido.net.trace`), and after the listening
line also prints each event record on stdout as one JSON line (``tejido run`` shows them).
Every node of a cluster must trace, or none: traced peer frames carry a clock stamp.

The runtime and the scenario registry load inside the commands, so that importing this
module (for `tejido --help`, or for `parse_node_id` elsewhere) stays cheap.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tejido.core.errors import BadInput, TejidoError
from tejido.core.ids import NodeId

if TYPE_CHECKING:
    import socket

    from tejido.core.operations import OpValue
    from tejido.net.host import NodeHost

__all__ = ["app", "parse_node_id", "parse_peer"]

app = typer.Typer(
    help="Run protocol nodes over TCP/TLS with on-disk storage.", no_args_is_help=True
)


def parse_node_id(text: str) -> NodeId:
    """``3`` or ``n3``."""
    digits = text[1:] if text[:1] in ("n", "N") else text
    if not digits.isdigit():
        raise BadInput(f"node id {text!r} must be a non-negative integer (like 3 or n3)")
    return NodeId(int(digits))


def parse_peer(text: str) -> tuple[NodeId, str]:
    """``ID=HOST:PORT``."""
    ident, sep, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    if not sep or not colon or not host or not port.isdigit():
        raise BadInput(f"--peer {text!r} must look like ID=HOST:PORT (e.g. 2=127.0.0.1:7002)")
    return parse_node_id(ident), address


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("run")
def run(
    protocol: Annotated[str, typer.Option(help="Protocol to run (see `tejido sim --list`).")],
    node_id: Annotated[str, typer.Option("--id", help="This node's id (3 or n3).")],
    data: Annotated[Path, typer.Option(help="Data directory (created if missing).")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on; port 0 picks one.")] = (
        "127.0.0.1:0"
    ),
    peer: Annotated[
        list[str] | None, typer.Option(help="A peer as ID=HOST:PORT; repeat for each peer.")
    ] = None,
    cluster: Annotated[str, typer.Option(help="Cluster id; peers must agree on it.")] = "tejido",
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="Directory from `tejido certs` (ca.pem, nID.pem, nID.key): mutual TLS."),
    ] = None,
    listen_fd: Annotated[
        int | None,
        typer.Option(help="Serve on this inherited, listening socket (instead of --listen)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed the protocol's generator.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    trace: Annotated[
        Path | None,
        typer.Option(help="Record a trace (JSON lines) in this file; print events on stdout."),
    ] = None,
    trace_start: Annotated[
        float | None,
        typer.Option(help="Unix time the trace's t=0 stands for (default: when the node starts)."),
    ] = None,
) -> None:
    """Run one node until SIGTERM; prints ``tejido node ID listening on HOST:PORT``."""
    import asyncio
    import logging
    import socket
    import time

    from tejido.net.host import NodeHost, use_uvloop
    from tejido.net.mesh import node_cert_name
    from tejido.net.tls import TLSConfig
    from tejido.net.trace import TraceRecorder
    from tejido.sim.registry import get_protocol

    try:
        me = parse_node_id(node_id)
        peers = dict(parse_peer(p) for p in peer or [])
        spec = get_protocol(protocol)
        if me in peers:
            raise BadInput(f"--peer lists this node's own id {me}")
        tls = TLSConfig.from_dir(tls_dir, node_cert_name(me)) if tls_dir else None
        if tls is not None:
            tls.server_context()  # fail now, naming the missing file, not at the first dial
    except BadInput as exc:
        raise _fail(str(exc)) from None
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    sock = socket.socket(fileno=listen_fd) if listen_fd is not None else None
    tracer = None
    if trace is not None:
        try:
            tracer = TraceRecorder(
                me, trace, start=time.time() if trace_start is None else trace_start, echo=_echo
            )
        except OSError as exc:
            raise _fail(f"cannot open --trace {str(trace)!r}: {exc.strerror or exc}") from None
    host = NodeHost(
        node_id=me,
        peers=peers,
        factory=spec.factory,
        data_dir=data,
        cluster=cluster,
        tls=tls,
        seed=seed,
        tracer=tracer,
    )
    use_uvloop()
    try:
        reason = asyncio.run(_serve(host, None if sock else listen, sock))
    except TejidoError as exc:
        raise _fail(str(exc)) from None
    if reason is not None:
        typer.echo(f"node {me} failed: {reason}", err=True)
        raise typer.Exit(1)


def _echo(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


async def _serve(host: NodeHost, listen: str | None, sock: socket.socket | None) -> str | None:
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = await host.start(listen, sock=sock)
    print(f"tejido node {host.node_id} listening on {address}", flush=True)
    assert host.failed is not None
    host.failed.add_done_callback(lambda _: stop.set())
    await stop.wait()
    await host.stop()
    return host.failed.result() if host.failed.done() else None


def _value(text: str) -> OpValue:
    try:
        return int(text)
    except ValueError:
        return text


@app.command("call")
def call(
    address: Annotated[str, typer.Argument(help="The node's HOST:PORT.")],
    function: Annotated[str, typer.Argument(help="read or write (what the protocol supports).")],
    key: Annotated[str, typer.Argument(help="The key.")],
    value: Annotated[str | None, typer.Argument(help="The value to write (int or text).")] = None,
    cluster: Annotated[str, typer.Option(help="Cluster id.")] = "tejido",
    tls_dir: Annotated[Path | None, typer.Option(help="Directory from `tejido certs`.")] = None,
    tls_name: Annotated[str, typer.Option(help="Certificate name in --tls-dir.")] = "client",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 5.0,
) -> None:
    """Submit one operation to a node and print its outcome as JSON."""
    import asyncio

    from tejido.core.operations import Operation
    from tejido.net.client import NodeClient
    from tejido.net.host import use_uvloop
    from tejido.net.tls import TLSConfig

    if function == "write" and value is None:
        raise _fail("write needs a VALUE")
    operation = Operation(function, key, _value(value) if value is not None else None)
    try:
        tls = TLSConfig.from_dir(tls_dir, tls_name) if tls_dir else None
        context = tls.client_context() if tls else None
    except BadInput as exc:
        raise _fail(str(exc)) from None

    async def submit() -> dict[str, object]:
        client = await NodeClient.connect(address, cluster=cluster, ssl=context)
        try:
            outcome = await client.submit(operation, timeout)
        finally:
            await client.close()
        return {"type": outcome.type, "value": outcome.value, "error": outcome.error}

    use_uvloop()
    try:
        result = asyncio.run(submit())
    except TimeoutError:
        result = {"type": "info", "error": f"no outcome within {timeout} s"}
    except (OSError, TejidoError, ValueError) as exc:
        typer.echo(f"error: cannot reach {address}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result))
    if result["type"] != "ok":
        sys.exit(1)
