"""Shared helpers of the WAL tests: open a storage, apply operations, sync, crash, reopen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from tejido.core.storage import Recovered, StorageOp
from tejido.net.storage import DiskStorage
from tejido.net.wal import WalStorage


class Storage(Protocol):
    fsyncs: int

    def open(self) -> Recovered: ...
    def apply(self, op: StorageOp) -> None: ...
    def request_sync(self, token: int) -> None: ...
    async def close(self) -> None: ...
    def abandon(self) -> None: ...


Factory = Callable[..., Storage]


def wal_small(directory: Path, **kwargs: object) -> WalStorage:
    """A WalStorage whose segments roll over every 256 bytes (several records each)."""
    return WalStorage(directory, segment_bytes=256, **kwargs)  # type: ignore[arg-type]


FACTORIES: dict[str, Factory] = {
    "disk": DiskStorage,
    "wal": WalStorage,
    "wal-small-segments": wal_small,
}


async def write_and_sync_async(factory: Factory, directory: Path, ops: Sequence[StorageOp]) -> None:
    done = asyncio.Event()
    storage = factory(directory, on_durable=lambda t: done.set())
    storage.open()
    for op in ops:
        storage.apply(op)
    storage.request_sync(1)
    await asyncio.wait_for(done.wait(), 10)
    storage.abandon()  # like a crash: nothing more is written


def write_and_sync(factory: Factory, directory: Path, ops: Sequence[StorageOp]) -> None:
    asyncio.run(write_and_sync_async(factory, directory, ops))


def reopen(factory: Factory, directory: Path) -> Recovered:
    storage = factory(directory, on_durable=lambda t: None)
    try:
        return storage.open()
    finally:
        storage.abandon()


def segment_files(directory: Path) -> list[Path]:
    return sorted((directory / "wal").glob("*.wal"))
