"""Helpers for the virtual-actor tests: a one-member replicated store in this loop, and
the persistence providers under test built by name."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tejido.actors.persistence import FileProvider, MemoryProvider, PersistenceProvider
from tejido.core.ids import NodeId
from tejido.store.client import Client
from tejido.store.config import MemberAddress, StoreConfig
from tejido.store.node import StoreNode
from tejido.store.ports import PortReservation

PROVIDERS = ["memory", "file", "store"]


@contextlib.asynccontextmanager
async def one_member_store(root: Path) -> AsyncIterator[Client]:
    """A single-member store (its own leader) and a client of it, on reserved ports."""
    ports = PortReservation()
    try:
        members = {NodeId(1): MemberAddress(ports.address(), ports.address())}
        config = StoreConfig(
            member_id=NodeId(1),
            members=members,
            data_dir=root / "store",
            election_timeout_s=0.3,
            heartbeat_interval_s=0.05,
        )
        node = StoreNode(config)
        await node.start()
        try:
            async with asyncio.timeout(30):
                while not node.is_leader:
                    await asyncio.sleep(0.01)  # polls the condition, does not wait blindly
            async with Client([members[NodeId(1)].client], timeout_s=20.0) as client:
                yield client
        finally:
            await node.stop()
    finally:
        ports.close()


@contextlib.asynccontextmanager
async def provider_named(name: str, root: Path) -> AsyncIterator[PersistenceProvider]:
    if name == "memory":
        yield MemoryProvider()
    elif name == "file":
        yield FileProvider(root / "grains")
    else:
        from tejido.actors.persistence import StoreProvider

        async with one_member_store(root) as client:
            yield StoreProvider(client)
