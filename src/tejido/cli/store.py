"""The store's commands: ``tejido node start``, ``tejido up``, ``tejido status``,
``tejido kv ...``, ``tejido lease ...``, ``tejido member ...``, ``tejido leader transfer``
and ``tejido demo``.

- ``tejido node start --config FILE.toml`` (or flags) runs one store member until SIGTERM or
  SIGINT. It is a subcommand (not options on ``tejido node`` itself) so that the generic
  ``tejido node run|call`` keep their meaning. It prints one line ``tejido store member ID
  pid PID listening on peer HOST:PORT client HOST:PORT [grpc HOST:PORT]`` once it serves
  (``--grpc HOST:PORT`` or the config key ``grpc``: the client API over gRPC as well;
  ``--no-grpc`` turns off a ``grpc`` the config sets).
- ``tejido up`` starts a local cluster under ``--dir`` (`tejido.store.local`), prints the
  client and gRPC endpoints (``--no-grpc``: no gRPC port), and shows a live status table
  until Ctrl-C, which stops every member (SIGTERM) and reports.
- Client commands find the cluster `tejido up` started in the current directory
  (``.tejido/cluster.json``) or take ``--endpoints HOST:PORT,...``.

Exit codes: 0 success; 1 the operation failed (or its outcome is unknown: the message says
which); 2 bad input.

The store client, the member runtime and the KV API types load inside the commands, so
that ``tejido --help`` and the other commands do not pay for them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from tejido.core.errors import BadInput, TejidoError
from tejido.core.ids import NodeId

if TYPE_CHECKING:
    from tejido.kv import Client
    from tejido.mvcc import api
    from tejido.store.config import StoreConfig
    from tejido.store.local import LocalCluster

__all__ = ["register"]

T = TypeVar("T")
DIR = Path(".tejido")

kv_app = typer.Typer(help="Keys and values: put, get, del, watch, txn.", no_args_is_help=True)
lease_app = typer.Typer(help="Leases: grant, keepalive, revoke, ttl.", no_args_is_help=True)
member_app = typer.Typer(help="Membership: list, add, promote, remove.", no_args_is_help=True)
leader_app = typer.Typer(help="Leadership: transfer.", no_args_is_help=True)

Endpoints = Annotated[
    str | None,
    typer.Option(help="Client addresses HOST:PORT,... (default: the cluster in --dir)."),
]
DirOption = Annotated[Path, typer.Option("--dir", help="Directory of a `tejido up` cluster.")]
Timeout = Annotated[float, typer.Option(help="Seconds per operation (retries included).")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _run(
    endpoints: str | None, directory: Path, timeout: float, fn: Callable[[Client], Awaitable[T]]
) -> T:
    import asyncio

    from tejido.kv import Client
    from tejido.store.errors import NotApplied, OutcomeUnknown
    from tejido.store.local import find_endpoints

    try:
        found = find_endpoints(endpoints, directory)
    except BadInput as exc:
        raise _fail(str(exc)) from None

    async def main() -> T:
        async with Client(found, timeout_s=timeout) as client:
            return await fn(client)

    try:
        return asyncio.run(main())
    except NotApplied as exc:
        raise _fail(f"not applied: {exc}", 1) from None
    except OutcomeUnknown as exc:
        raise _fail(f"outcome unknown: {exc}", 1) from None


def _text(data: bytes) -> str:
    return data.decode(errors="backslashreplace")


def _kv_record(kv: api.KeyValue) -> dict[str, Any]:
    return {
        "key": _text(kv.key),
        "value": _text(kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
    }


# ---------------------------------------------------------------- tejido node start
def _parse_book(entries: list[str], what: str) -> dict[NodeId, str]:
    from tejido.cli.node import parse_peer

    try:
        return dict(parse_peer(entry) for entry in entries)
    except BadInput as exc:
        raise BadInput(str(exc).replace("--peer", what)) from None


def node_start(
    config: Annotated[Path | None, typer.Option(help="The member's TOML configuration.")] = None,
    node_id: Annotated[str | None, typer.Option("--id", help="This member's id.")] = None,
    peer: Annotated[
        list[str] | None,
        typer.Option(help="ID=HOST:PORT peer address of a member (repeat; include this one)."),
    ] = None,
    client: Annotated[
        list[str] | None,
        typer.Option(help="ID=HOST:PORT client address of a member (repeat; include this one)."),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
    cluster: Annotated[str, typer.Option(help="Cluster id.")] = "tejido",
    election_timeout: Annotated[float, typer.Option(help="Seconds.")] = 1.0,
    heartbeat_interval: Annotated[float, typer.Option(help="Seconds.")] = 0.1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    grpc: Annotated[
        str | None,
        typer.Option(help="HOST:PORT to also serve the client API over gRPC (port 0: any)."),
    ] = None,
    no_grpc: Annotated[
        bool, typer.Option("--no-grpc", help="No gRPC endpoint, whatever the config says.")
    ] = False,
) -> None:
    """Run one store member (Raft + the KV API) until SIGTERM."""
    import asyncio
    import logging

    from tejido.cli.node import parse_node_id
    from tejido.store.config import MemberAddress, StoreConfig, load_config

    try:
        if config is not None:
            settings = load_config(config)
        else:
            if node_id is None or data is None or not peer or not client:
                raise BadInput("give --config FILE, or --id, --data, --peer and --client")
            peers = _parse_book(peer, "--peer")
            clients = _parse_book(client, "--client")
            if set(peers) != set(clients):
                raise BadInput(
                    f"--peer ids {sorted(peers)} differ from --client ids {sorted(clients)}"
                )
            settings = StoreConfig(
                member_id=parse_node_id(node_id),
                members={i: MemberAddress(peers[i], clients[i]) for i in peers},
                data_dir=data,
                cluster=cluster,
                election_timeout_s=election_timeout,
                heartbeat_interval_s=heartbeat_interval,
            )
        if grpc is not None and no_grpc:
            raise BadInput("give --grpc HOST:PORT or --no-grpc, not both")
        if grpc is not None or no_grpc:
            settings = dataclasses.replace(settings, grpc_address=grpc)
        settings.validate()
    except BadInput as exc:
        raise _fail(str(exc)) from None
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    from tejido.net.host import use_uvloop

    use_uvloop()
    try:
        reason = asyncio.run(_serve_member(settings))
    except (TejidoError, OSError) as exc:
        raise _fail(str(exc), 1) from None
    if reason is not None:
        typer.echo(f"member {settings.member_id} failed: {reason}", err=True)
        raise typer.Exit(1)


async def _serve_member(settings: StoreConfig) -> str | None:
    import asyncio
    import os
    import signal

    from tejido.store.node import StoreNode, tune_member_process

    node = StoreNode(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await node.start()
    tune_member_process()
    print(
        f"tejido store member {node.member_id} pid {os.getpid()} listening on "
        f"peer {node.peer_address} client {node.client_address}"
        + (f" grpc {node.grpc_address}" if node.grpc_address else ""),
        flush=True,
    )
    failed = node.failed
    assert failed is not None
    failed.add_done_callback(lambda _: stop.set())
    await stop.wait()
    await node.stop()
    return failed.result() if failed.done() else None


# ---------------------------------------------------------------- up / status
_COLUMNS = ("member", "role", "term", "commit", "applied", "leader", "revision", "address", "pid")


async def _statuses(client: Client, endpoints: list[str]) -> list[dict[str, Any]]:
    import asyncio

    from tejido.store.errors import NotApplied, OutcomeUnknown

    async def one(endpoint: str) -> dict[str, Any]:
        try:
            status = await asyncio.wait_for(client.status(endpoint), 2.0)
        except (NotApplied, OutcomeUnknown, TimeoutError, OSError) as exc:
            return {"address": endpoint, "role": "down", "error": str(exc)}
        return {
            "member": status.member,
            "role": status.role,
            "term": status.term,
            "commit": status.commit,
            "applied": status.applied,
            "leader": status.leader,
            "revision": status.revision,
            "address": status.address,
            "pid": status.pid,
        }

    return list(await asyncio.gather(*(one(e) for e in endpoints)))


def _table(records: list[dict[str, Any]], title: str) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in _COLUMNS:
        table.add_column(column, no_wrap=True)
    for record in records:
        style = (
            "bold green"
            if record.get("role") == "leader"
            else ("red" if record.get("role") == "down" else None)
        )
        table.add_row(
            *("" if record.get(c) is None else str(record.get(c)) for c in _COLUMNS), style=style
        )
    return table


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per member.")] = False,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """Show every member: role, term, commit, applied, leader, revision, address, pid."""
    import asyncio

    from tejido.kv import Client
    from tejido.store.local import find_endpoints

    try:
        found = find_endpoints(endpoints, directory)
    except BadInput as exc:
        raise _fail(str(exc)) from None

    async def main() -> list[dict[str, Any]]:
        async with Client(found, timeout_s=timeout) as client:
            return await _statuses(client, found)

    records = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(records))
    else:
        from rich.console import Console

        Console().print(_table(records, "tejido store"))
    if all(r.get("role") == "down" for r in records):
        raise typer.Exit(1)


def up_command(
    nodes: Annotated[int, typer.Option(help="Members to start.")] = 3,
    directory: DirOption = DIR,
    election_timeout: Annotated[float, typer.Option(help="Seconds.")] = 1.0,
    heartbeat_interval: Annotated[float, typer.Option(help="Seconds.")] = 0.1,
    refresh: Annotated[float, typer.Option(help="Seconds between table refreshes.")] = 0.5,
    table: Annotated[
        bool, typer.Option(help="Show the live table (else one line per refresh).")
    ] = True,
    grpc: Annotated[
        bool, typer.Option(help="Also serve the client API over gRPC (a port per member).")
    ] = True,
) -> None:
    """Start a local cluster (one process per member) and show it until Ctrl-C."""
    import asyncio
    import signal

    from tejido.store.local import LocalCluster

    if not 1 <= nodes <= 9:
        raise _fail(f"--nodes {nodes} must be between 1 and 9")
    local = LocalCluster(
        directory,
        nodes,
        election_timeout_s=election_timeout,
        heartbeat_interval_s=heartbeat_interval,
        grpc=grpc,
    )
    try:
        local.prepare()
        local.start()
    except (BadInput, OSError) as exc:
        local.stop()
        raise _fail(str(exc), 1) from None
    listed = ",".join(m.client for m in local.members)
    typer.echo(f"cluster of {len(local.members)} in {directory}; endpoints {listed}")
    if grpc:
        typer.echo("grpc endpoints " + ",".join(m.grpc or "-" for m in local.members))
    stop = {"now": False}

    def interrupted(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    endpoints = [m.client for m in local.members]
    try:
        asyncio.run(_watch_cluster(endpoints, refresh, table, stop))
    finally:
        typer.echo("stopping every member (SIGTERM) ...")
        codes = local.stop()
        for ident, code in codes.items():
            typer.echo(f"member {ident}: exit code {code}")


async def _watch_cluster(
    endpoints: list[str], refresh: float, live: bool, stop: dict[str, bool]
) -> None:
    import asyncio

    from tejido.kv import Client

    async with Client(endpoints, timeout_s=2.0) as client:
        if live:
            from rich.live import Live

            with Live(_table([], "tejido store (Ctrl-C stops)"), refresh_per_second=4) as view:
                while not stop["now"]:
                    records = await _statuses(client, endpoints)
                    view.update(_table(records, "tejido store (Ctrl-C stops)"))
                    await asyncio.sleep(refresh)  # the refresh period
        else:
            while not stop["now"]:
                records = await _statuses(client, endpoints)
                print(json.dumps(records), flush=True)
                await asyncio.sleep(refresh)  # the refresh period


# ---------------------------------------------------------------- kv
@kv_app.command("put")
def kv_put(
    key: str,
    value: str,
    lease: Annotated[int, typer.Option(help="Attach to this lease id.")] = 0,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """Set KEY to VALUE; prints the revision."""
    reply = _run(endpoints, directory, timeout, lambda c: c.put(key, value, lease=lease))
    typer.echo(json.dumps({"revision": reply.header.revision}))


@kv_app.command("get")
def kv_get(
    key: str,
    prefix: Annotated[bool, typer.Option(help="Every key starting with KEY.")] = False,
    serializable: Annotated[bool, typer.Option(help="Local, possibly stale read.")] = False,
    revision: Annotated[int, typer.Option(help="Read at this past revision.")] = 0,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """Print the key(s) as JSON lines (exit 1 when none)."""
    reply = _run(
        endpoints,
        directory,
        timeout,
        lambda c: c.range(key, prefix=prefix, serializable=serializable, revision=revision),
    )
    for kv in reply.result.kvs:
        typer.echo(json.dumps(_kv_record(kv)))
    if not reply.result.kvs:
        raise typer.Exit(1)


@kv_app.command("del")
def kv_del(
    key: str,
    prefix: Annotated[bool, typer.Option(help="Every key starting with KEY.")] = False,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """Delete the key(s); prints how many."""
    reply = _run(endpoints, directory, timeout, lambda c: c.delete(key, prefix=prefix))
    typer.echo(json.dumps({"deleted": reply.result.deleted, "revision": reply.header.revision}))


@kv_app.command("watch")
def kv_watch(
    key: str,
    prefix: Annotated[bool, typer.Option(help="Every key starting with KEY.")] = False,
    rev: Annotated[int, typer.Option(help="Start at this revision (history first).")] = 0,
    count: Annotated[int, typer.Option(help="Stop after this many events (0: never).")] = 0,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
) -> None:
    """Print events as JSON lines, resuming across failovers, until Ctrl-C (or --count)."""

    async def watch(client: Client) -> None:
        seen = 0
        async for response in client.watch(key, prefix=prefix, start_revision=rev):
            for event in response.events:
                print(json.dumps({"type": event.type, **_kv_record(event.kv)}), flush=True)
                seen += 1
                if count and seen >= count:
                    return

    with contextlib.suppress(KeyboardInterrupt):
        _run(endpoints, directory, 5.0, watch)


def _pair(text: str, flag: str) -> tuple[bytes, bytes]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise _fail(f"{flag} {text!r} must look like KEY=VALUE")
    return key.encode(), value.encode()


@kv_app.command("txn")
def kv_txn(
    if_value: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE: the key holds VALUE.")
    ] = None,
    if_version: Annotated[
        list[str] | None, typer.Option(help="KEY=N: the key's version is N (0: absent).")
    ] = None,
    then_put: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE to put if all hold.")
    ] = None,
    then_del: Annotated[list[str] | None, typer.Option(help="KEY to delete if all hold.")] = None,
    else_put: Annotated[list[str] | None, typer.Option(help="KEY=VALUE to put otherwise.")] = None,
    else_del: Annotated[list[str] | None, typer.Option(help="KEY to delete otherwise.")] = None,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """A transaction: if every --if-* holds, the --then-* operations, else the --else-*."""
    from tejido.mvcc import api

    compare = [
        api.Compare(key=k, target="VALUE", value=v)
        for k, v in (_pair(t, "--if-value") for t in if_value or [])
    ]
    for text in if_version or []:
        k, v = _pair(text, "--if-version")
        if not v.isdigit():
            raise _fail(f"--if-version {text!r}: the version must be a number")
        compare.append(api.Compare(key=k, target="VERSION", version=int(v)))

    def branch(puts: list[str] | None, dels: list[str] | None, flag: str) -> list[api.RequestOp]:
        ops: list[api.RequestOp] = [
            api.PutRequest(key=k, value=v) for k, v in (_pair(t, flag) for t in puts or [])
        ]
        ops.extend(api.DeleteRangeRequest(key=k.encode()) for k in dels or [])
        return ops

    request = api.TxnRequest(
        compare=compare,
        success=branch(then_put, then_del, "--then-put"),
        failure=branch(else_put, else_del, "--else-put"),
    )
    reply = _run(endpoints, directory, timeout, lambda c: c.txn(request))
    typer.echo(json.dumps({"succeeded": reply.result.succeeded, "revision": reply.header.revision}))


# ---------------------------------------------------------------- lease
@lease_app.command("grant")
def lease_grant(
    ttl: int, endpoints: Endpoints = None, directory: DirOption = DIR, timeout: Timeout = 5.0
) -> None:
    """Grant a lease of TTL seconds; prints its id."""
    reply = _run(endpoints, directory, timeout, lambda c: c.lease_grant(ttl))
    typer.echo(json.dumps({"id": reply.id, "ttl": reply.ttl}))


@lease_app.command("keepalive")
def lease_keepalive(
    leases: Annotated[list[int], typer.Argument(help="Lease ids (one stream keeps them all).")],
    once: Annotated[bool, typer.Option(help="Renew each once and exit.")] = False,
    count: Annotated[int, typer.Option(help="Stop after this many renewals (0: never).")] = 0,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between renewals (default: a third of TTL).")
    ] = None,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """Keep LEASES alive over one stream (each every third of its TTL) until Ctrl-C, or
    once; one JSON line per renewal. Exits 1 when a lease is gone (expired or revoked)."""
    from tejido.store.errors import NotApplied

    async def keep(client: Client) -> None:
        if once:
            for lease in leases:
                reply = await client.lease_keepalive(lease)
                print(json.dumps({"id": reply.id, "ttl": reply.ttl}), flush=True)
            return
        renewals = 0
        if interval is not None and interval <= 0:
            raise NotApplied(f"--interval must be positive seconds, got {interval}")
        stream = client.keepalive(*leases, interval_s=interval)
        async with contextlib.aclosing(stream) as stream:  # type: ignore[type-var]
            async for reply in stream:
                print(json.dumps({"id": reply.id, "ttl": reply.ttl}), flush=True)
                renewals += 1
                if count and renewals >= count:
                    return

    with contextlib.suppress(KeyboardInterrupt):
        _run(endpoints, directory, timeout, keep)


@lease_app.command("revoke")
def lease_revoke(
    lease: int, endpoints: Endpoints = None, directory: DirOption = DIR, timeout: Timeout = 5.0
) -> None:
    """Revoke LEASE (its keys are deleted)."""
    _run(endpoints, directory, timeout, lambda c: c.lease_revoke(lease))
    typer.echo(json.dumps({"revoked": lease}))


@lease_app.command("ttl")
def lease_ttl(
    lease: int,
    keys: Annotated[bool, typer.Option(help="List the attached keys.")] = False,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """Remaining and granted TTL of LEASE."""
    reply = _run(endpoints, directory, timeout, lambda c: c.lease_ttl(lease, keys=keys))
    record: dict[str, Any] = {
        "id": reply.id,
        "ttl": round(reply.ttl, 3),
        "granted_ttl": reply.granted_ttl,
    }
    if keys:
        record["keys"] = [_text(k) for k in reply.keys]
    typer.echo(json.dumps(record))


# ---------------------------------------------------------------- member / leader
def _members(reply: Any) -> None:
    import msgspec

    for m in reply.members:
        typer.echo(json.dumps(msgspec.to_builtins(m) | {"leader": m.id == reply.leader}))


@member_app.command("list")
def member_list(
    endpoints: Endpoints = None, directory: DirOption = DIR, timeout: Timeout = 5.0
) -> None:
    """Every member of the address book with its role (voter, learner, spare)."""
    _members(_run(endpoints, directory, timeout, lambda c: c.member_list()))


@member_app.command("add")
def member_add(
    member: int,
    peer: Annotated[
        str | None, typer.Option(help="HOST:PORT of the new member's peer (Raft) port.")
    ] = None,
    client: Annotated[
        str | None, typer.Option(help="HOST:PORT of the new member's client port.")
    ] = None,
    endpoints: Endpoints = None,
    directory: DirOption = DIR,
    timeout: Timeout = 5.0,
) -> None:
    """Add MEMBER as a learner. A member the cluster has never seen needs --peer and
    --client: the change carries them, so every member learns how to reach it. Then start
    it (its config lists every member, voters the current ones) and promote it."""
    if (peer is None) != (client is None):
        raise _fail("give both --peer and --client (or neither, for a member already known)")
    _members(
        _run(endpoints, directory, timeout, lambda c: c.member_add_learner(member, peer, client))
    )


@member_app.command("promote")
def member_promote(
    member: int, endpoints: Endpoints = None, directory: DirOption = DIR, timeout: Timeout = 5.0
) -> None:
    """Make learner MEMBER a voter (once it caught up)."""
    _members(_run(endpoints, directory, timeout, lambda c: c.member_promote(member)))


@member_app.command("remove")
def member_remove(
    member: int, endpoints: Endpoints = None, directory: DirOption = DIR, timeout: Timeout = 5.0
) -> None:
    """Remove MEMBER from the configuration."""
    _members(_run(endpoints, directory, timeout, lambda c: c.member_remove(member)))


@leader_app.command("transfer")
def leader_transfer(
    target: int, endpoints: Endpoints = None, directory: DirOption = DIR, timeout: Timeout = 5.0
) -> None:
    """Hand leadership to voting member TARGET and wait until it leads (exit 1 with
    ``leader_transfer_timeout`` if it does not within --timeout; 1 with ``bad_request``
    for an unknown member, a learner or the leader itself)."""
    reply = _run(endpoints, directory, timeout, lambda c: c.leader_transfer(target))
    typer.echo(json.dumps({"from": reply.member, "to": reply.leader, "term": reply.term}))


# ---------------------------------------------------------------- demo
def demo_command(
    nodes: Annotated[int, typer.Option(help="Members.")] = 3,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where (default: a temporary directory).")
    ] = None,
    keys: Annotated[int, typer.Option(help="Keys written before and after the failover.")] = 20,
) -> None:
    """Start a cluster, write, kill -9 the leader, time the failover, read, verify, stop."""
    import asyncio
    import tempfile

    from tejido.store.errors import NotApplied, OutcomeUnknown
    from tejido.store.local import LocalCluster

    root = directory or Path(tempfile.mkdtemp(prefix="tejido-demo-"))
    local = LocalCluster(root, nodes)
    try:
        local.prepare()
        local.start()
        typer.echo(f"started {nodes} members in {root}")
        result = asyncio.run(_demo(local, keys))
    except (BadInput, NotApplied, OutcomeUnknown, OSError) as exc:
        raise _fail(f"demo failed: {exc}", 1) from None
    finally:
        codes = local.stop()
        typer.echo(f"stopped: {codes}")
    typer.echo(json.dumps(result))
    if not result["verified"]:
        raise typer.Exit(1)


async def _demo(local: LocalCluster, keys: int) -> dict[str, Any]:
    import time

    from tejido.kv import Client

    endpoints = [m.client for m in local.members]
    async with Client(endpoints, timeout_s=10.0) as client:
        for i in range(keys):
            await client.put(f"demo/{i:03d}", f"before {i}")
        typer.echo(f"wrote {keys} keys")
        status = await client.status()
        leader = next(m for m in local.members if m.id == status.leader)
        typer.echo(f"killing leader {leader.id} (pid {leader.pid}) with SIGKILL")
        killed_at = time.monotonic()
        local.kill(leader)
        await client.put("demo/after-failover", "1")
        failover_s = time.monotonic() - killed_at
        new_leader = (await client.status()).leader
        typer.echo(f"first write after the kill took {failover_s:.3f} s; new leader {new_leader}")
        for i in range(keys):
            await client.put(f"demo/{i + keys:03d}", f"after {i}")
        reply = await client.range("demo/", prefix=True)
        got = {kv.key.decode(): kv.value.decode() for kv in reply.result.kvs}
        expected = {f"demo/{i:03d}": f"before {i}" for i in range(keys)}
        expected |= {f"demo/{i + keys:03d}": f"after {i}" for i in range(keys)}
        expected["demo/after-failover"] = "1"
        verified = got == expected
        typer.echo(f"read back {len(got)} keys: {'all correct' if verified else 'MISMATCH'}")
        return {
            "killed_leader": leader.id,
            "new_leader": new_leader,
            "failover_s": round(failover_s, 3),
            "keys": len(got),
            "verified": verified,
        }


def register(app: typer.Typer) -> None:
    """Add the store's commands to the `tejido` app (and ``start`` to ``tejido node``)."""
    from tejido.cli import node

    node.app.command("start")(node_start)
    app.command("up")(up_command)
    app.command("status")(status_command)
    app.command("demo")(demo_command)
    app.add_typer(kv_app, name="kv")
    app.add_typer(lease_app, name="lease")
    app.add_typer(member_app, name="member")
    app.add_typer(leader_app, name="leader")
