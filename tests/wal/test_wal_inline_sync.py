"""`WalStorage.inline_sync` (tejido.net.wal rule 2b): on an idle disk a round that only
needs the fsync runs it on the event loop and delivers the tokens in the next callback,
with no worker round; a round with queued work, a busy disk or the option off go to the
worker. Either way the tokens come in order and what they cover survives a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tejido.core.storage import LogAppend, LogTruncate, Put
from tejido.net.wal import WalStorage


def _life(
    directory: Path, inline: bool | Callable[[], bool], setup: str
) -> tuple[list[int], int, int]:
    """Apply and sync, then again 10 s later (a fake clock, which also makes every fsync
    take no time), crash; returns (tokens delivered, worker rounds, fsyncs)."""

    async def body() -> tuple[list[int], int, int]:
        durable: list[int] = []
        arrived = asyncio.Event()

        def on_durable(token: int) -> None:
            durable.append(token)
            arrived.set()

        storage = WalStorage(directory, on_durable=on_durable)
        storage.open()
        storage.inline_sync = inline
        now = [10.0]
        storage.clock = lambda: now[0]
        worker_rounds = 0
        round_on_worker = storage._round

        def counted(*args: object) -> int:
            nonlocal worker_rounds
            worker_rounds += 1
            return round_on_worker(*args)  # type: ignore[arg-type]

        storage._round = counted  # type: ignore[method-assign]
        if setup == "busy":
            storage._last_fsync_s = 3600.0  # the last fsync ended "just now" and took long
        storage.apply(LogAppend((b"one", b"two")))
        if setup == "queued":
            storage.apply(LogTruncate(1))  # queued: only the worker truncates
        if setup == "dirty":
            storage.apply(Put("raft/hard", b"term 3"))
        storage.request_sync(1)
        async with asyncio.timeout(30):  # bounds a hang only
            await arrived.wait()
        arrived.clear()
        now[0] += 10.0
        storage.apply(LogAppend((b"three",)))
        storage.request_sync(2)
        async with asyncio.timeout(30):
            await arrived.wait()
        fsyncs = storage.fsyncs
        storage.abandon()  # a crash: nothing more is written
        return durable, worker_rounds, fsyncs

    return asyncio.run(body())


@pytest.mark.parametrize(
    ("inline", "setup", "worker_rounds"),
    [
        (True, "idle", 0),
        (True, "busy", 1),  # the second sync finds the disk idle for longer than an fsync
        (True, "queued", 1),
        (True, "dirty", 1),
        (False, "idle", 2),
        (lambda: True, "idle", 0),  # a predicate (the store's leader: few requests wait)
        (lambda: False, "idle", 2),
    ],
)
def test_which_rounds_run_on_the_loop(
    tmp_path: Path, inline: bool | Callable[[], bool], setup: str, worker_rounds: int
) -> None:
    durable, rounds, fsyncs = _life(tmp_path, inline, setup)
    assert durable == [1, 2]
    assert fsyncs == 2
    assert rounds == worker_rounds
    storage = WalStorage(tmp_path, on_durable=lambda token: None)
    recovered = storage.open()
    storage.abandon()
    expected = (b"one", b"three") if setup == "queued" else (b"one", b"two", b"three")
    assert recovered.records == expected
    if setup == "dirty":
        assert recovered.state == {"raft/hard": b"term 3"}
