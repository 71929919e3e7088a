"""Membership on real processes: a 4th member the cluster has never seen joins with
`tejido member add 4 --peer ... --client ...` (the configuration change carries its
addresses to every member: `tejido.raft.membership` rule 5, `tejido.store.node` rule 7),
catches up as a learner, is promoted, serves reads, and is removed again while the
cluster keeps working."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_fixtures import Cluster, address_book, free_port, kv_client, run_cluster, wait_for

from tejido.core.ids import NodeId
from tejido.kv import BlockingClient
from tejido.store.errors import NotApplied, OutcomeUnknown, StoreError
from tejido.store.local import LocalCluster, LocalMember
from tejido.store.node import StoreNode

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]


def _tejido(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEJIDO, *args], capture_output=True, text=True, timeout=90, check=False)


def _roles(kv: BlockingClient) -> dict[int, str]:
    return {m.id: m.role for m in kv.member_list().members}


def _until(condition: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s: {what}"
        time.sleep(0.05)  # polling another process's state through the client


@pytest.mark.integration
def test_a_new_member_joins_catches_up_is_promoted_serves_and_leaves(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, nodes=3, election_timeout_s=0.5, heartbeat_interval_s=0.05)
    cluster.start(60)
    peer, client = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    book = "\n".join(
        f'{m.id} = {{ peer = "{m.peer}", client = "{m.client}" }}' for m in cluster.members
    )
    config = tmp_path / "n4.toml"
    config.write_text(
        'id = 4\ncluster = "tejido"\ndata_dir = "n4"\nvoters = [1, 2, 3]\n\n'
        f'[members]\n{book}\n4 = {{ peer = "{peer}", client = "{client}" }}\n\n'
        "[raft]\nelection_timeout_s = 0.5\nheartbeat_interval_s = 0.05\n"
    )
    fourth = LocalMember(4, peer, client, config, tmp_path / "n4", tmp_path / "n4.log")
    endpoints = ",".join(m.client for m in cluster.members)
    at = ["--endpoints", endpoints, "--timeout", "30"]
    try:
        with BlockingClient([m.client for m in cluster.members], timeout_s=30) as kv:
            for i in range(20):
                kv.put(f"before/{i}", str(i))

            with pytest.raises(StoreError, match="give its peer and client addresses"):
                kv.call(lambda c: c.member_add_learner(4))  # never seen, no addresses

            added = _tejido("member", "add", "4", "--peer", peer, "--client", client, *at)
            assert added.returncode == 0, added.stderr
            records = [json.loads(line) for line in added.stdout.splitlines()]
            assert {r["id"]: r["role"] for r in records}[4] == "learner"
            assert _roles(kv)[4] == "learner"
            listed = {m.id: m for m in kv.member_list().members}
            assert (listed[4].peer_address, listed[4].client_address) == (peer, client)

            cluster.members.append(fourth)  # so cluster.stop() stops it too
            cluster.start_member(fourth)
            cluster.wait_listening(fourth, time.monotonic() + 60)
            with BlockingClient([client], timeout_s=30) as at_four:

                def caught_up() -> bool:
                    leader = kv.status()
                    mine = at_four.status(client)
                    return mine.applied >= leader.commit and mine.leader == leader.leader

                _until(caught_up, "the learner to catch up")
                promoted = kv.call(lambda c: c.member_promote(4))
                assert {m.id: m.role for m in promoted.members}[4] == "voter"
                assert _roles(kv)[4] == "voter"

                kv.put("with/four", "yes")
                got = at_four.get("with/four")  # linearizable, through the new member
                assert got is not None
                assert got.value == b"yes"
                old = at_four.get("before/7", serializable=True)  # from its own state
                assert old is not None
                assert old.value == b"7"
                assert at_four.status(client).role in ("follower", "leader")

            if kv.status().leader == 4:  # a removed leader steps down; keep it simple
                moved = kv.call(lambda c: c.leader_transfer(1))
                assert moved.leader == 1  # answered once member 1 leads
            removed = kv.call(lambda c: c.member_remove(4))
            assert {m.id: m.role for m in removed.members}[4] == "spare"
            kv.put("after/removal", "ok")
            after = kv.get("after/removal")
            assert after is not None
            assert after.value == b"ok"
            for i in range(20):
                value = kv.get(f"before/{i}")
                assert value is not None
                assert value.value == str(i).encode()
            with pytest.raises(StoreError, match="not in the configuration"):
                kv.call(lambda c: c.member_remove(4))
    finally:
        codes = cluster.stop()
    assert codes[1] == 0
    assert codes[4] == 0


def test_a_transfer_right_after_promotion_makes_the_new_voter_leader(tmp_path: Path) -> None:
    """Issue 5, gap 6: add a never-seen member, promote it and at once transfer leadership
    to it, under a write load: the target leads after exactly one election. A member
    restarted afterwards learns the new member's address from its own log."""

    async def body(cluster: Cluster) -> None:
        leader = await cluster.wait_leader()
        new = address_book(1, cluster.ports)[NodeId(1)]
        config = dataclasses.replace(
            cluster.config(1),
            member_id=NodeId(4),
            members={**cluster.members, NodeId(4): new},
            data_dir=tmp_path / "n4",
            voters=(NodeId(1), NodeId(2), NodeId(3)),
        )
        stop = asyncio.Event()

        async def writer(index: int) -> None:
            async with kv_client(cluster.endpoints) as kv:
                n = 0
                while not stop.is_set():
                    with contextlib.suppress(NotApplied, OutcomeUnknown):  # busy: transferring
                        await kv.put(f"load/{index}/{n % 50}", "x" * 100)
                    n += 1

        writers = [asyncio.ensure_future(writer(i)) for i in range(4)]
        try:
            async with kv_client(cluster.endpoints) as kv:
                await kv.member_add_learner(4, new.peer, new.client)
                fourth = StoreNode(config)
                await fourth.start()
                cluster.nodes[4] = fourth
                await kv.member_promote(4)
                term = leader.raft.term
                reply = await kv.leader_transfer(4)
                assert reply.leader == 4  # answered once member 4 leads
                assert fourth.is_leader
                assert fourth.raft.term == reply.term == term + 1  # one election: the transfer's
        finally:
            stop.set()
            await asyncio.gather(*writers, return_exceptions=True)
        await cluster.restart(2)  # its config file does not list member 4
        second = cluster.nodes[2]
        assert second.config.members[NodeId(4)] == new
        mesh = second.host.mesh
        assert mesh is not None
        await wait_for(lambda: mesh.links[NodeId(4)].up.is_set(), 20, "a link from 2 to 4")
        async with kv_client([new.client]) as kv:
            await kv.put("after/restart", "ok")
            await wait_for(
                lambda: second.raft.log.applied >= fourth.raft.log.commit, 20, "2 to catch up"
            )

    run_cluster(tmp_path, body)
