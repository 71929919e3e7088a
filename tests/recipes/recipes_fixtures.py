"""Helpers for the recipe tests: a cluster runner with room for slow process start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from store.store_fixtures import Cluster


def run_cluster_long(
    root: Path, body: Callable[[Cluster], Awaitable[None]], timeout_s: float = 180.0
) -> None:
    """`store_fixtures.run_cluster` with a longer deadline: the real-process tests start
    several Python processes, each importing tejido, on a loaded 2-core machine."""

    async def main() -> None:
        cluster = Cluster(root, 3)
        try:
            await cluster.start()
            await asyncio.wait_for(body(cluster), timeout_s)
        finally:
            await cluster.close()

    asyncio.run(main())
