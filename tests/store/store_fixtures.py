"""Helpers for the store tests: in-process clusters of `StoreNode`s on loopback.

A cluster's ports are reserved (`tejido.store.ports.PortReservation`) from its creation to
its `close`, so a member stopped and started again always gets its ports back: nothing
else (a test running in parallel, an outgoing connection) can take them in between.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tejido.core.ids import NodeId
from tejido.store.client import Client
from tejido.store.config import MemberAddress, StoreConfig
from tejido.store.node import StoreNode
from tejido.store.ports import PortReservation

FAST = {"election_timeout_s": 0.3, "heartbeat_interval_s": 0.05}


def kv_client(endpoints: list[str], **options: Any) -> Client:
    """A client with a deadline for a loaded machine (2 cores, many test processes)."""
    options.setdefault("timeout_s", 20.0)
    return Client(endpoints, **options)


def free_port() -> int:
    """An ephemeral port the kernel picked (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def address_book(n: int, ports: PortReservation) -> dict[NodeId, MemberAddress]:
    """Peer and client addresses for members 1..n, on ports `ports` holds."""
    return {NodeId(i): MemberAddress(ports.address(), ports.address()) for i in range(1, n + 1)}


async def wait_for(
    condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Wait until `condition()` holds, polling the loop; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """`wait_for` with an async condition (e.g. a read through a client)."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Cluster:
    """N members in this event loop; `start`, `stop(i)`, `restart(i)`, `close`."""

    def __init__(self, root: Path, n: int = 3, **options: object) -> None:
        self.root = root
        self.ports = PortReservation()
        self.members = address_book(n, self.ports)
        self.options = {**FAST, **options}
        self.nodes: dict[int, StoreNode] = {}

    def config(self, ident: int) -> StoreConfig:
        return StoreConfig(
            member_id=NodeId(ident),
            members=self.members,
            data_dir=self.root / f"n{ident}",
            **self.options,  # type: ignore[arg-type]
        )

    async def start(self, ident: int | None = None) -> None:
        for i in [ident] if ident is not None else sorted(self.members):
            node = StoreNode(self.config(i))
            await node.start()
            self.nodes[i] = node

    async def stop(self, ident: int) -> None:
        node = self.nodes.pop(ident)
        await node.stop()

    async def restart(self, ident: int) -> None:
        await self.stop(ident)
        await self.start(ident)

    async def close(self) -> None:
        try:
            for ident in list(self.nodes):
                await self.stop(ident)
        finally:
            self.ports.close()

    @property
    def endpoints(self) -> list[str]:
        return [self.members[NodeId(i)].client for i in sorted(self.members)]

    def leader(self) -> StoreNode | None:
        leaders = [n for n in self.nodes.values() if n.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    async def wait_leader(self, timeout_s: float = 30.0) -> StoreNode:
        await wait_for(lambda: self.leader() is not None, timeout_s, "a single leader")
        leader = self.leader()
        assert leader is not None
        return leader

    async def wait_applied(self, timeout_s: float = 30.0) -> None:
        """Until every running member has applied what the leader committed."""
        leader = await self.wait_leader(timeout_s)
        commit = leader.raft.log.commit
        await wait_for(
            lambda: all(n.raft.log.applied >= commit for n in self.nodes.values()),
            timeout_s,
            f"every member applied index {commit}",
        )


def run_cluster(
    root: Path, body: Callable[[Cluster], Awaitable[None]], n: int = 3, **options: object
) -> None:
    """Start an n-member cluster, run `body` on it, stop it (in a fresh event loop)."""

    async def main() -> None:
        cluster = Cluster(root, n, **options)
        try:
            await cluster.start()
            await asyncio.wait_for(body(cluster), 60)
        finally:
            await cluster.close()

    asyncio.run(main())
