"""The `tejido` command: parses arguments, calls the library, prints results.

Exit codes everywhere: 0 success, 1 a check failed (a violation, a non-linearizable
history), 2 bad input (the message names what was wrong).

Start-up cost rules (every ``tejido lock NAME -- COMMAND`` pays it): the command modules
import only typer and the standard library at module level, and load their libraries
inside the command functions (tests/cli/test_cli_imports.py checks the module list).
`main` builds the click command of the one top-level command named on the line (typer
builds every command's parameters up front otherwise); ``tejido``, ``tejido --help`` and
a name that is not a command get the whole `app`. typer (0.29) coerces a parameter's
value through a pydantic adapter, importing pydantic (~0.1 s), unless the value is already
what it should be; its ``--help`` flag defaults to None, so every group and command on the
line would import pydantic just to read an absent ``--help``: `_Group` and `_Command`
give that flag the default False.
"""

from __future__ import annotations

import sys

import typer
from typer._click import Context  # the Context type typer's commands take
from typer.core import TyperCommand, TyperGroup, TyperOption

from tejido import __version__
from tejido.cli import bench, certs, check, node, rpc, sim, store, viz
from tejido.cli import mpi as mpi_cli
from tejido.cli import recipes as recipes_cli
from tejido.cli import run as run_cli


def _absent_is_false(option: TyperOption | None) -> TyperOption | None:
    if option is not None and option.default is None:
        option.default = False
    return option


class _Group(TyperGroup):
    """A group whose absent ``--help`` is False (see the module docstring)."""

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        return _absent_is_false(super().get_help_option(ctx))


class _Command(TyperCommand):
    """A command whose absent ``--help`` is False (see the module docstring)."""

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        return _absent_is_false(super().get_help_option(ctx))


app = typer.Typer(
    name="tejido",
    cls=_Group,
    help="Fault-tolerant distributed systems: simulate, check and draw protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("sim", help=sim.__doc__)(sim.sim_command)
app.command("viz", help="Draw a trace as a self-contained HTML space-time diagram.")(
    viz.viz_command
)
app.command("run", help=run_cli.__doc__)(run_cli.run_command)
app.command(
    "mpirun",
    help=mpi_cli.__doc__,
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)(mpi_cli.mpirun_command)
app.add_typer(check.app, name="check")
app.add_typer(bench.app, name="bench")
app.add_typer(node.app, name="node")
app.add_typer(rpc.app, name="rpc")
app.add_typer(certs.app, name="certs")
store.register(app)
recipes_cli.register(app)


@app.command("version", cls=_Command)
def version() -> None:
    """Print tejido's version."""
    typer.echo(__version__)


def _only(name: str) -> typer.Typer | None:
    """`app` cut down to its top-level command (or group) `name`; None if there is none."""
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return None
    single = typer.Typer(
        name=app.info.name,
        cls=_Group,
        help=app.info.help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    single.registered_commands = commands
    single.registered_groups = groups
    # a callback keeps `single` a group, so that NAME stays the first word of the line
    single.callback()(_group)
    return single


def _group() -> None:
    """Fault-tolerant distributed systems: simulate, check and draw protocols."""


def main() -> None:
    args = sys.argv[1:]
    chosen = (_only(args[0]) if args and not args[0].startswith("-") else None) or app
    try:
        chosen()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
