"""The host's carry-out order (tejido.net.host rule 1): a step's events are recorded
before its messages leave, and its messages are in the kernel before its fsync round is
requested, so a leader's AppendEntries never waits for the hand-off to the fsync thread."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from net_fixtures import LOOPS, Ping, run, start_hosts

from tejido.core.ids import NodeId, RequestId
from tejido.core.messages import Event
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered
from tejido.net.host import NodeHost
from tejido.net.storage import DiskStorage


class Wrote(Event, frozen=True):
    n: int


class Replicator(Process):
    """A command appends a record, asks for a sync and sends a Ping to node 2, in one step;
    the command is answered once the sync is durable."""

    MESSAGES = (Ping,)

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.waiting: list[tuple[int, RequestId]] = []

    def on_start(self, recovered: Recovered) -> None:
        pass

    def on_command(self, request: RequestId, operation: Operation) -> None:
        self.append(b"record")
        self.waiting.append((self.sync(), request))
        self.report(Wrote(len(self.waiting)))
        self.send(NodeId(2), Ping(len(self.waiting)))

    def on_message(self, src: NodeId, message: Any) -> None:
        pass

    def on_durable(self, token: int) -> None:
        while self.waiting and self.waiting[0][0] <= token:
            self.reply(self.waiting.pop(0)[1], Outcome("ok"))


class WatchedStorage(DiskStorage):
    """Records, at every sync request, what the mesh had sent and still held unwritten."""

    host: NodeHost | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, int]] = []

    def request_sync(self, token: int) -> None:
        host = WatchedStorage.host
        if host is not None and host.mesh is not None:
            link = host.mesh.links[NodeId(2)]
            unwritten = link.conn.buffered if link.conn is not None else -1
            self.seen.append((link.sent, unwritten))
        super().request_sync(token)


def test_messages_are_written_before_the_sync_round_is_requested(tmp_path: Path) -> None:
    for kind in LOOPS:
        run(_body(tmp_path / kind), kind)


async def _body(base: Path) -> None:
    hosts = await start_hosts(base, Replicator, 2, cluster="order", storage={1: WatchedStorage})
    first = hosts[0]
    WatchedStorage.host = first
    assert first.mesh is not None
    events_at_send: list[int] = []
    send_now = first.mesh.send_now

    def watched_send_now(messages: Any) -> None:
        events_at_send.append(first.events)
        send_now(messages)

    first.mesh.send_now = watched_send_now  # type: ignore[method-assign]
    try:
        assert first.mesh is not None
        async with asyncio.timeout(30):  # bounds a hang only
            await first.mesh.wait_connected()
            for _ in range(3):
                assert (await first.submit(Operation("write"))).type == "ok"
    finally:
        WatchedStorage.host = None
        for host in hosts:
            await host.stop()
    storage = first.storage
    assert isinstance(storage, WatchedStorage)
    # every sync request found its step's Ping already handed to the kernel
    assert storage.seen == [(1, 0), (2, 0), (3, 0)]
    # and each step's event was recorded before its Ping left
    assert events_at_send == [1, 2, 3]
