"""Every example in docs/recipes.md runs against a 3-member cluster and its assertions hold."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

from store.store_fixtures import Cluster, run_cluster

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"


def _examples() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    return {name: fn for name, fn in namespace.items() if name.startswith("example_")}


def test_docs_examples_run(tmp_path: Path) -> None:
    examples = _examples()
    assert len(examples) >= 4, sorted(examples)
    ran: list[str] = []

    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        for name, example in sorted(examples.items()):
            if inspect.iscoroutinefunction(example):
                await asyncio.wait_for(example(cluster.endpoints), 40)
            else:  # a blocking example: off the loop that runs the cluster
                await asyncio.wait_for(asyncio.to_thread(example, cluster.endpoints), 40)
            ran.append(name)

    run_cluster(tmp_path, body)
    assert ran == sorted(examples)
