"""`tejido certs ...`: make a cluster CA and node/client certificates for mutual TLS.

``tejido certs init DIR`` makes the CA; ``tejido certs issue DIR n1 --ip 10.0.0.1`` a node's
certificate (nodes are named ``n<ID>``: `tejido node run --tls-dir DIR --id 1` reads
``n1.pem``/``n1.key``); ``tejido certs issue DIR client`` one for `tejido node call`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tejido.core.errors import BadInput

app = typer.Typer(help="Certificates for mutual TLS.", no_args_is_help=True)


@app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write ca.pem and ca.key.")],
    cluster: Annotated[str, typer.Option(help="Cluster name, written into the CA's name.")] = (
        "tejido"
    ),
    days: Annotated[int, typer.Option(help="Validity in days.")] = 3650,
) -> None:
    """Create a cluster CA."""
    from tejido.net import certs

    try:
        path = certs.init_ca(directory, cluster, days=days)
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path} and {path.with_suffix('.key')}")


@app.command("issue")
def issue(
    directory: Annotated[Path, typer.Argument(help="The CA's directory (from `certs init`).")],
    name: Annotated[str, typer.Argument(help="n<ID> for a node, or a client's name.")],
    ip: Annotated[
        list[str] | None, typer.Option(help="An IP address SAN; repeat. Default 127.0.0.1.")
    ] = None,
    dns: Annotated[
        list[str] | None, typer.Option(help="A DNS name SAN; repeat. Default localhost.")
    ] = None,
    days: Annotated[int, typer.Option(help="Validity in days.")] = 825,
) -> None:
    """Issue a certificate signed by the cluster CA."""
    from tejido.net import certs

    try:
        path = certs.issue(
            directory,
            name,
            ips=ip if ip is not None else ["127.0.0.1"],
            dns=dns if dns is not None else ["localhost"],
            days=days,
        )
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path} and {path.with_suffix('.key')}")
