"""The writer that tests/wal/test_wal_crash.py kills with SIGKILL.

``python wal_crash_child.py DIR SEED WRITERS``: opens a WalStorage on DIR (small segments),
cuts trailing ``junk`` records a previous life left, prints ``start FIRST NEXT``, then runs
WRITERS concurrent writers forever. The record at index i is ``str(i)``. A writer appends
one record (sometimes after appending junk and truncating it away again, sometimes followed
by a compaction), asks for a sync, and once it is durable prints ``durable N``: every index
below N is durable.
"""

from __future__ import annotations

import asyncio
import random
import sys

from tejido.core.storage import LogAppend, LogCompact, LogTruncate
from tejido.net.wal import WalStorage


async def main(directory: str, seed: int, writers: int) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    waiting: dict[int, asyncio.Future[None]] = {}
    storage = WalStorage(
        directory,
        on_durable=lambda token: waiting.pop(token).set_result(None),
        on_error=lambda exc: sys.exit(f"storage failed: {exc!r}"),
        segment_bytes=1024,
    )
    recovered = storage.open()
    first, next_index = recovered.first_index, recovered.next_index
    junk = 0
    while junk < len(recovered.records) and recovered.records[-1 - junk] == b"junk":
        junk += 1
    if junk:
        next_index -= junk
        storage.apply(LogTruncate(next_index))
    print(f"start {first} {next_index}", flush=True)
    token = 0

    async def writer() -> None:
        nonlocal first, next_index, token
        while True:
            if rng.random() < 0.05:
                storage.apply(LogAppend((b"junk",) * rng.randint(1, 3)))
                storage.apply(LogTruncate(next_index))
            storage.apply(LogAppend((str(next_index).encode(),)))
            next_index += 1
            if rng.random() < 0.01 and next_index - first > 200:
                first = next_index - 100
                storage.apply(LogCompact(first))
            covered = next_index
            token += 1
            done: asyncio.Future[None] = loop.create_future()
            waiting[token] = done
            storage.request_sync(token)
            await done
            print(f"durable {covered}", flush=True)

    await asyncio.gather(*(writer() for _ in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
