"""Coordination from the shell: ``tejido lock``, ``tejido semaphore``, ``tejido elect``.

- ``tejido lock NAME -- COMMAND [ARGS...]`` waits for the lock NAME, then runs COMMAND
  while holding it, with ``TEJIDO_FENCING_TOKEN`` (the lock's fencing token) and
  ``TEJIDO_LOCK_KEY`` in its environment, and releases the lock when COMMAND ends. Exit
  code: COMMAND's own.
- ``tejido semaphore NAME N -- COMMAND`` is the same with a counting semaphore of N.
- ``tejido elect NAME VALUE`` campaigns with VALUE, prints one JSON line per leadership
  change (``{"leader": VALUE, "term": T, "us": bool}``) until Ctrl-C, then resigns. If its
  session's lease is lost (the store says it is gone, or no keep-alive got through for a
  whole TTL), it prints ``{"lost": true, "term": T, "reason": ...}`` at once (T: the term
  it led, 0 if it was only a candidate) and exits 1 without re-campaigning: whatever it
  did as leader must stop, and a supervisor decides whether to start it again.

If the lease is lost while COMMAND runs (the holder could not renew it for a whole TTL,
e.g. it was stopped or cut off from the cluster), the lock may already belong to someone
else: COMMAND gets SIGTERM (SIGKILL 5 s later), and the exit code is 1. COMMAND should
still pass its fencing token to whatever it changes: a stopped process cannot be told
in time (docs/recipes.md). Clusters are found like the other client commands (``--dir``,
``--endpoints``). Exit codes: 1 the store failed or the lease was lost, 2 bad input.

The store client and the recipes load inside the commands, so that ``tejido --help`` and
``tejido lock --help`` do not pay for them.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tejido.core.errors import BadInput, TejidoError

if TYPE_CHECKING:
    from tejido.recipes import Lock, Semaphore, Session

__all__ = ["register"]

Endpoints = Annotated[
    str | None,
    typer.Option(help="Client addresses HOST:PORT,... (default: the cluster in --dir)."),
]
DirOption = Annotated[Path, typer.Option("--dir", help="Directory of a `tejido up` cluster.")]
Ttl = Annotated[int, typer.Option(help="Lease TTL in seconds (renewed every TTL/3).")]
Timeout = Annotated[float, typer.Option(help="Seconds per store call (retries included).")]
Command = Annotated[list[str], typer.Argument(help="The command to run while holding.")]
_PASS_THROUGH = {"ignore_unknown_options": True}


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _endpoints(endpoints: str | None, directory: Path) -> list[str]:
    from tejido.store.local import find_endpoints

    try:
        return find_endpoints(endpoints, directory)
    except BadInput as exc:
        raise _fail(str(exc), 2) from None


async def _run_holding(lock: Lock | Semaphore, session: Session, command: list[str]) -> int:
    import asyncio
    import signal

    from tejido.kv import NotApplied, OutcomeUnknown

    token = await lock.acquire()
    env = {
        **os.environ,
        "TEJIDO_FENCING_TOKEN": str(token),
        "TEJIDO_LOCK_KEY": lock.key.decode(errors="replace"),
    }
    typer.echo(f"tejido: {lock.name.decode()} held, fencing token {token}", err=True)
    try:
        child = await asyncio.create_subprocess_exec(*command, env=env)
    except OSError as exc:
        await lock.release()
        raise _fail(f"cannot run {command[0]!r}: {exc}", 2) from None
    waiting = asyncio.ensure_future(child.wait())
    lost = asyncio.ensure_future(session.lost.wait())
    try:
        await asyncio.wait({waiting, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
    if not waiting.done():
        typer.echo(f"error: {session.reason}; stopping the command", err=True)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await waiting
        return 1
    with contextlib.suppress(NotApplied, OutcomeUnknown):
        await lock.release()
    return waiting.result()


def _hold(
    name: str,
    limit: int | None,
    command: list[str],
    endpoints: str | None,
    directory: Path,
    ttl: int,
    timeout: float,
) -> None:
    if not command:
        raise _fail("no command given: tejido lock NAME -- COMMAND [ARGS...]", 2)
    found = _endpoints(endpoints, directory)

    import asyncio

    from tejido.kv import Client, NotApplied, OutcomeUnknown
    from tejido.recipes import Lock, Semaphore, Session

    async def main() -> int:
        async with Client(found, timeout_s=timeout) as client, Session(client, ttl) as session:
            lock = Lock(session, name) if limit is None else Semaphore(session, name, limit)
            return await _run_holding(lock, session, command)

    try:
        code = asyncio.run(main())
    except (ValueError, BadInput) as exc:
        raise _fail(str(exc), 2) from None
    except (TejidoError, NotApplied, OutcomeUnknown) as exc:
        raise _fail(str(exc), 1) from None
    raise typer.Exit(code)


def lock_command(
    name: str,
    command: Command,
    endpoints: Endpoints = None,
    directory: DirOption = Path(".tejido"),
    ttl: Ttl = 10,
    timeout: Timeout = 5.0,
) -> None:
    """Run COMMAND while holding the lock NAME (TEJIDO_FENCING_TOKEN in its environment)."""
    _hold(name, None, command, endpoints, directory, ttl, timeout)


def semaphore_command(
    name: str,
    limit: int,
    command: Command,
    endpoints: Endpoints = None,
    directory: DirOption = Path(".tejido"),
    ttl: Ttl = 10,
    timeout: Timeout = 5.0,
) -> None:
    """Run COMMAND while holding one of LIMIT places of the semaphore NAME."""
    if limit < 1:
        raise _fail(f"a semaphore needs N >= 1, not {limit}", 2)
    _hold(name, limit, command, endpoints, directory, ttl, timeout)


def elect_command(
    name: str,
    value: str,
    endpoints: Endpoints = None,
    directory: DirOption = Path(".tejido"),
    ttl: Ttl = 10,
    timeout: Timeout = 5.0,
) -> None:
    """Campaign in the election NAME with VALUE; print leadership changes as JSON lines."""
    found = _endpoints(endpoints, directory)

    import asyncio

    from tejido.kv import Client, NotApplied, OutcomeUnknown
    from tejido.recipes import Election, LeadershipLost, Session

    async def main() -> None:
        async with Client(found, timeout_s=timeout) as client, Session(client, ttl) as session:
            election = Election(session, name)
            campaign = asyncio.ensure_future(election.campaign(value))
            try:
                async for leader in election.observe():
                    if campaign.done():
                        campaign.result()  # raises if the campaign failed
                    record = (
                        {"leader": None, "term": 0, "us": False}
                        if leader is None
                        else {
                            "leader": leader.value.decode(errors="replace"),
                            "term": leader.term,
                            "us": leader.key == election.key,
                        }
                    )
                    typer.echo(json.dumps(record))
            except LeadershipLost as exc:
                lost = {"lost": True, "term": exc.term, "reason": exc.reason}
                typer.echo(json.dumps(lost))
                raise
            finally:
                campaign.cancel()
                with contextlib.suppress(BaseException):
                    await campaign
                if not session.expired:  # a lost session's key is gone (or going) anyway
                    with contextlib.suppress(NotApplied, OutcomeUnknown):
                        await election.resign()

    try:
        asyncio.run(main())
    except (ValueError, BadInput) as exc:
        raise _fail(str(exc), 2) from None
    except (TejidoError, NotApplied, OutcomeUnknown) as exc:
        raise _fail(str(exc), 1) from None


def register(app: typer.Typer) -> None:
    app.command("lock", context_settings=_PASS_THROUGH)(lock_command)
    app.command("semaphore", context_settings=_PASS_THROUGH)(semaphore_command)
    app.command("elect")(elect_command)
