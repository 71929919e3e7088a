"""One scenario body, two runtimes: the register protocol in the simulator and as real
processes on loopback must read the same values, and both histories must be linearizable.

The scenario: clients write and read keys through different nodes, some concurrently; a
node is killed (SIGKILL, or a simulated power loss) and later restarted; another node is
killed and restarted; every read must see the latest acknowledged write.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from runtime_clusters import Cluster, ProcessCluster, SimCluster

from tejido.check import check_linearizable
from tejido.core.operations import Operation, Outcome
from tejido.sim.registry import get_protocol


def write(key: str, value: int) -> Operation:
    return Operation("write", key, value)


def read(key: str) -> Operation:
    return Operation("read", key)


async def _ok(cluster: Cluster, node: int, op: Operation) -> Outcome:
    (outcome,) = await cluster.call_many([(node, op)])
    assert outcome is not None, f"{op.describe()} on node {node} got no answer"
    assert outcome.type == "ok", f"{op.describe()} on node {node}: {outcome}"
    return outcome


async def register_scenario(cluster: Cluster) -> list[object]:
    """Returns every value read, in order; asserts each read saw the latest write."""
    seen: list[object] = []

    async def check_read(node: int, key: str, expected: int) -> None:
        value = (await _ok(cluster, node, read(key))).value
        seen.append(value)
        assert value == expected, f"read {key} on node {node}: {value!r}, expected {expected}"

    await _ok(cluster, 1, write("x", 1))
    await check_read(2, "x", 1)
    await check_read(3, "x", 1)
    outcomes = await cluster.call_many([(1, write("y", 10)), (2, write("z", 20)), (3, read("x"))])
    assert [o.type if o else None for o in outcomes] == ["ok", "ok", "ok"]
    assert outcomes[2] is not None
    seen.append(outcomes[2].value)

    await cluster.kill(3)  # a minority is down: quorums of two still answer
    await _ok(cluster, 1, write("x", 2))
    await check_read(2, "x", 2)
    await cluster.restart(3)
    await check_read(3, "x", 2)  # node 3 reads through a quorum, not its stale disk
    await _ok(cluster, 3, write("x", 3))

    await cluster.kill(1)
    await check_read(2, "y", 10)
    await check_read(3, "z", 20)
    await cluster.restart(1)
    await check_read(1, "x", 3)
    outcomes = await cluster.call_many([(n, read("x")) for n in cluster.nodes])
    seen.extend(o.value if o else None for o in outcomes)
    return seen


EXPECTED_READS = [1, 1, 1, 2, 2, 10, 20, 3, 3, 3, 3]


def _check_history(cluster: Cluster) -> None:
    history = cluster.history()
    assert sum(e.type == "invoke" for e in history) == 16
    result = check_linearizable(history)
    assert result.linearizable, result.explanation
    assert result.operations == 16


def test_the_scenario_on_the_simulator() -> None:
    cluster = SimCluster(get_protocol("register").factory)
    seen = asyncio.run(register_scenario(cluster))
    assert seen == EXPECTED_READS
    _check_history(cluster)


@pytest.mark.integration
def test_the_scenario_on_real_processes(tmp_path: Path) -> None:
    async def body() -> tuple[list[object], dict[int, int | None], ProcessCluster]:
        cluster = ProcessCluster("register", tmp_path)
        try:
            await cluster.start()
            seen = await register_scenario(cluster)
        except BaseException:
            await cluster.close()
            print(cluster.logs())
            raise
        return seen, await cluster.close(), cluster

    seen, exit_codes, cluster = asyncio.run(body())
    assert seen == EXPECTED_READS
    _check_history(cluster)
    assert exit_codes == {1: 0, 2: 0, 3: 0}, cluster.logs()  # SIGTERM stops every node cleanly


def test_the_scenario_catches_a_protocol_that_reads_stale_local_state() -> None:
    # reads served from the coordinator's own replica: node 3 missed x=2 while it was down
    cluster = SimCluster(get_protocol("register-local-reads").factory)
    with pytest.raises(AssertionError, match="read x on node 3: 1, expected 2"):
        asyncio.run(register_scenario(cluster))
