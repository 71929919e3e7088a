"""`tejido mpirun -n N script.py [args]`: run an MPI-style program on the tcp backend.

Starts N ranks of one job, here or on the hosts of ``--hostfile`` (see
`tejido.mpi.launcher`: job secret, rendezvous, failure handling). Exit code: 0 when every
rank exited 0, else the first failed rank's code (128 + signal for a signal); 2 for bad
input.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tejido.core.errors import BadInput

__all__ = ["mpirun_command"]


def mpirun_command(
    command: Annotated[list[str], typer.Argument(help="The script (and its arguments).")],
    n: Annotated[int, typer.Option("-n", "--np", help="How many ranks.")] = 1,
    grace: Annotated[
        float,
        typer.Option(help="Seconds the other ranks get to exit after one fails, then killed."),
    ] = 5.0,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a rank may stay silent (no heartbeat) before the others count it "
            "as failed; 0: never (default: TEJIDO_MPI_TIMEOUT or 60)."
        ),
    ] = None,
    hostfile: Annotated[
        str | None,
        typer.Option(
            "--hostfile",
            help="Place ranks on the hosts of FILE ('host [slots=N]' per line); "
            "local names start here, others over ssh.",
        ),
    ] = None,
) -> None:
    """Run N ranks of SCRIPT over tejido's tcp backend (see docs/mpi.md)."""
    from tejido.mpi.launcher import launch

    try:
        result = launch(n, command, grace_s=grace, timeout_s=timeout, hostfile=hostfile)
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(result.exit_code)
