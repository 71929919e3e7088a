"""`tejido rpc ...`: tools for RPC services.

`tejido rpc proto MODULE:Service [-o FILE]` imports MODULE (from the current directory
too, like ``python -m``), reads the service interface and writes its proto3 file
(`tejido.rpc.proto`) to stdout or FILE. Exit 2, with one line naming the problem, for a
malformed target, a module that does not import, a missing name, or an interface with a
type proto3 cannot carry.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tejido.core.errors import BadInput, TejidoError

__all__ = ["app", "load_interface", "proto_command"]

app = typer.Typer(
    help="RPC service tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """RPC service tools."""


def _interfaces(module: object) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and "__tejido_service_name__" in value.__dict__
    )


def load_interface(target: str) -> type:
    """The class named by ``MODULE:Service`` (``Service`` may be dotted: ``Outer.Inner``)."""
    module_name, colon, attr = target.rpartition(":")
    if not colon or not module_name or not attr:
        raise BadInput(
            f"expected MODULE:Service (e.g. examples.rpc.grpc_interop:Shop), got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BadInput(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the module's own code failed; say how
        raise BadInput(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    value: object = module
    for part in attr.split("."):
        if not hasattr(value, part):
            found = ", ".join(_interfaces(module)) or "none"
            raise BadInput(f"{module_name!r} has no {attr!r} (service interfaces there: {found})")
        value = getattr(value, part)
    if not isinstance(value, type):
        raise BadInput(f"{target!r} is a {type(value).__name__}, not a service interface class")
    return value


@app.command("proto")
def proto_command(
    target: Annotated[
        str, typer.Argument(metavar="MODULE:Service", help="The interface, e.g. pkg.api:Shop.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the proto3 file of a service interface (for gRPC clients in any language)."""
    from tejido.rpc.proto import proto_text

    try:
        text = proto_text(load_interface(target))
    except TejidoError as exc:  # BadInput, or the interface / type mapping refused
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        typer.echo(f"error: cannot write {output}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
