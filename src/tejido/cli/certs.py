"""`tejido certs ...`: make a cluster CA and node/client certificates for mutual TLS."""

from __future__ import annotations

import typer

app = typer.Typer(help="Certificates for mutual TLS.", no_args_is_help=True)
