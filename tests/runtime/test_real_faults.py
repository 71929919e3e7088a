"""The register on real processes: kill -9 of a minority, the rest keeps answering."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from runtime_clusters import ProcessCluster

from tejido.check import check_linearizable
from tejido.core.operations import Operation


@pytest.mark.integration
def test_five_nodes_survive_kill_9_of_two_and_stay_linearizable(tmp_path: Path) -> None:
    async def body() -> ProcessCluster:
        cluster = ProcessCluster("register", tmp_path, nodes=5)
        try:
            await cluster.start()
            before = await cluster.call_many(
                [(n, Operation("write", f"k{n}", n)) for n in cluster.nodes]
            )
            assert [o.type if o else None for o in before] == ["ok"] * 5
            await asyncio.gather(cluster.kill(1), cluster.kill(5))  # a dialler and an acceptor
            survivors = [2, 3, 4]
            for round_ in range(3):
                calls = [(n, Operation("write", "x", 10 * round_ + n)) for n in survivors]
                calls += [(n, Operation("read", "x")) for n in survivors]
                outcomes = await cluster.call_many(calls)
                assert [o.type if o else None for o in outcomes] == ["ok"] * 6, outcomes
            reads = await cluster.call_many([(n, Operation("read", "k5")) for n in survivors])
            assert [o.value if o else None for o in reads] == [5, 5, 5]  # acked before the kill
        except BaseException:
            await cluster.close()
            print(cluster.logs())
            raise
        codes = await cluster.close()
        assert codes == {2: 0, 3: 0, 4: 0}
        return cluster

    cluster = asyncio.run(body())
    result = check_linearizable(cluster.history())
    assert result.linearizable, result.explanation
    assert result.operations == 5 + 3 * 6 + 3
