"""``tejido viz TRACE -o FILE.html``: draw a simulator trace as a space-time diagram page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tejido.core.errors import BadInput

__all__ = ["viz_command"]


def viz_command(
    trace: Annotated[Path, typer.Argument(help="A trace written by `tejido sim --trace`.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The HTML page to write.", dir_okay=False)
    ],
) -> None:
    """Draw a trace (*.trace.jsonl) as a self-contained HTML space-time diagram."""
    from tejido.viz import write_html

    try:
        written = write_html(trace, output)
    except BadInput as exc:
        typer.echo(f"tejido viz: error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {written}")
