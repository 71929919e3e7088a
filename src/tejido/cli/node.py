"""`tejido node ...`: run a protocol node on real sockets and disk, and talk to it."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Run protocol nodes over TCP/TLS with on-disk storage.", no_args_is_help=True
)
