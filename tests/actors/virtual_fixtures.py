"""Helpers for the virtual-actor tests: grain classes and their messages, a one-member
replicated store in this loop, and the persistence providers under test built by name."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from tejido.actors.persistence import FileProvider, MemoryProvider, PersistenceProvider
from tejido.actors.virtual import Grain
from tejido.core.ids import NodeId
from tejido.store.client import Client
from tejido.store.config import MemberAddress, StoreConfig
from tejido.store.node import StoreNode
from tejido.store.ports import PortReservation

PROVIDERS = ["memory", "file", "store"]


class Tally(msgspec.Struct):
    total: int = 0
    adds: int = 0


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Get:
    pass


@dataclass(frozen=True)
class Boom:
    pass


@dataclass(frozen=True)
class Save:
    pass


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Retire:
    pass


Msg = Add | Get | Boom | Save | Reset | Retire


class Counter(Grain[Msg, Tally]):
    state_type = Tally

    async def receive(self, message: Msg) -> Any:
        match message:
            case Add(n):
                self.state.total += n
                self.state.adds += 1
                return self.state.total
            case Get():
                return self.state.total
            case Boom():
                self.state.total += 1000  # a half-done change, then a failure
                raise RuntimeError("boom")
            case Save():
                await self.write_state()
                return True
            case Reset():
                await self.clear_state()
                return self.state.total
            case Retire():
                self.deactivate_on_idle()
                return self.key
        return None


class QuickCounter(Counter):
    grain_type = "QuickCounter"
    idle_after_s: ClassVar[float | None] = 0.05


class LazyCounter(Counter):
    """Saves only when told to (or when deactivated)."""

    grain_type = "LazyCounter"
    save_on_change = False


#: every message type a grain test sends or stores (registered on cluster nodes)
MESSAGES = (Tally, Add, Get, Boom, Save, Reset, Retire)


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
