"""`tejido rpc ...`: tools for RPC services (generate a .proto for an interface)."""

from __future__ import annotations

import typer

app = typer.Typer(help="RPC service tools.", no_args_is_help=True)
