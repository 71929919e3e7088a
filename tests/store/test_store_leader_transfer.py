"""`leader_transfer` waits for the new leader, like etcd's MoveLeader
(`tejido.store.service` rule 8).

On an in-process cluster (members 1-3 voters, member 4 a spare): a transfer answers only
once the target leads, and its reply names it; a transfer to the leader itself, to an id
nobody knows, to a spare and to a learner is refused with ``bad_request`` saying which;
a transfer to a member that is down ends with ``leader_transfer_timeout`` naming the
target and the term, and the old leader keeps serving. `tejido leader transfer` prints
the outcome (or the refusal, exit code 1).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from store_fixtures import Cluster, kv_client, run_cluster

from tejido.core.ids import NodeId
from tejido.store.errors import StoreError

SPARE: dict[str, object] = {"voters": (NodeId(1), NodeId(2), NodeId(3))}


def test_the_reply_comes_once_the_target_leads_and_names_it(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        old = await cluster.wait_leader()
        term = old.raft.term
        async with kv_client(cluster.endpoints[:3]) as kv:
            await kv.put("k", "v")
            for _ in range(2):  # there and back again
                current = cluster.leader()
                assert current is not None
                target = next(i for i in (1, 2, 3) if i != current.member_id)
                reply = await kv.leader_transfer(target)
                assert reply.leader == target
                assert reply.member == current.member_id  # the old leader answered
                assert reply.term > term
                assert cluster.nodes[target].is_leader  # no polling: it leads already
                assert cluster.nodes[target].raft.term == reply.term
                term = reply.term
            got = await kv.get("k")
            assert got is not None
            assert got.value == b"v"

    run_cluster(tmp_path, body)


def test_self_unknown_spare_and_learner_targets_are_refused(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        term = leader.raft.term
        async with kv_client(cluster.endpoints[:3]) as kv:
            cases = [
                (int(leader.member_id), "already the leader"),
                (9, "member 9 is unknown"),
                (4, "member 4 is not in the configuration"),  # a spare
            ]
            for target, says in cases:
                with pytest.raises(StoreError, match=says) as refused:
                    await kv.leader_transfer(target)
                assert refused.value.code == "bad_request"
            await kv.member_add_learner(4)
            with pytest.raises(StoreError, match="member 4 is a learner") as learner:
                await kv.leader_transfer(4)
            assert learner.value.code == "bad_request"
            assert leader.is_leader  # nothing moved
            assert leader.raft.term == term

    run_cluster(tmp_path, body, n=4, **SPARE)


def test_a_transfer_to_a_member_that_is_down_times_out_with_a_typed_error(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        target = next(i for i in (1, 2, 3) if i != leader.member_id)
        await cluster.stop(target)
        term = leader.raft.term
        async with kv_client(cluster.endpoints, timeout_s=3.0) as kv:
            with pytest.raises(StoreError, match=f"to member {target} did not complete") as late:
                await kv.leader_transfer(target)
            assert late.value.code == "leader_transfer_timeout"
            assert f"term {term}" in str(late.value)
        assert leader.is_leader
        async with kv_client(cluster.endpoints) as kv:
            await kv.put("still", "serving")  # Raft gave up the transfer: proposals flow
            got = await kv.get("still")
            assert got is not None
            assert got.value == b"serving"

    run_cluster(tmp_path, body)


@pytest.mark.integration
def test_the_command_prints_the_new_leader_or_the_refusal(tmp_path: Path) -> None:
    async def tejido(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "tejido.cli.main", "leader", "transfer", *args],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        at = ["--endpoints", ",".join(cluster.endpoints), "--timeout", "20"]
        target = next(i for i in (1, 2, 3) if i != leader.member_id)
        code, out, err = await tejido(str(target), *at)
        assert code == 0, err
        record = json.loads(out)
        assert record["from"] == leader.member_id
        assert record["to"] == target
        assert record["term"] > 0
        assert cluster.nodes[target].is_leader
        code, out, err = await tejido("7", *at)
        assert code == 1
        assert "member 7 is unknown" in err
        assert out == ""

    run_cluster(tmp_path, body)
