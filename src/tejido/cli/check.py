"""`tejido check linearizable FILE`: judge a recorded history.

Exit codes: 0 linearizable, 1 not linearizable (the counterexample is printed), 2 bad input
(one line on stderr naming the problem and the line number).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from tejido.core.errors import BadInput

__all__ = ["app", "linearizable_command"]

app = typer.Typer(
    help="Check recorded histories (JSON lines, see docs/formats.md) for consistency.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Check recorded histories for consistency."""


@app.command("linearizable")
def linearizable_command(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A history, one JSON event a line.")],
    shrink: Annotated[
        bool,
        typer.Option(
            "--shrink/--no-shrink",
            help="Shrink a failure to a 1-minimal counterexample (else show the whole key).",
        ),
    ] = True,
    strict_fail_cas: Annotated[
        bool,
        typer.Option(
            "--strict-fail-cas",
            help="Treat a failed cas as observing that the register did not hold the "
            "expected value (porcupine's reading) instead of dropping it.",
        ),
    ] = False,
) -> None:
    """Check that a key-value / register history is linearizable.

    Exit 0 if it is, 1 if not (with a minimal counterexample), 2 on bad input.
    """
    from tejido.check.history import read_history
    from tejido.check.linearizability import check_linearizable

    started = time.perf_counter()
    try:
        events = read_history(path)
        result = check_linearizable(events, minimize=shrink, strict_fail_cas=strict_fail_cas)
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    elapsed = time.perf_counter() - started
    typer.echo(f"{path}: {result.describe()}")
    typer.echo(f"(checked in {elapsed:.3f} s)")
    if not result.linearizable:
        raise typer.Exit(1)
