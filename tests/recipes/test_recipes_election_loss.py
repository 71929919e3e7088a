"""A leader whose session is lost hears it at once (`tejido.recipes.election` rule 5).

Two real lease losses on an in-process 3-member cluster: the store revokes the leader's
lease (as when it expired there), and the whole cluster goes away so no keep-alive gets
through for a TTL. Either way the leader's `observe` raises `LeadershipLost` with the term
that ended while it waits for the next change, long before any leadership change could
tell it. On real processes, `tejido elect` prints the loss and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
from recipes_fixtures import run_cluster_long

from store.store_fixtures import Cluster, kv_client, run_cluster
from tejido.recipes import Election, LeadershipLost, Session, SessionExpired


def test_a_revoked_lease_ends_the_leaders_observe_at_once(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints) as client:
            session = await Session(client, ttl=30).open()
            election = Election(session, "jobs/leader")
            term = await election.campaign("me")
            stream = election.observe()
            leader = await asyncio.wait_for(anext(stream), 30)
            assert leader is not None
            assert (leader.value, leader.term) == (b"me", term)
            waiting = asyncio.ensure_future(anext(stream))  # waits for the next change
            done, _ = await asyncio.wait({waiting}, timeout=0.3)
            assert not done  # nothing changed yet
            revoked_at = time.monotonic()
            await client.lease_revoke(session.lease)  # the store drops our lease
            with pytest.raises(LeadershipLost) as lost:
                await asyncio.wait_for(waiting, 30)
            # From the watch (our key's deletion), before the next renewal (TTL/3 = 10 s).
            assert time.monotonic() - revoked_at < 10
            assert lost.value.term == term
            assert "lease" in lost.value.reason
            assert f"leadership in term {term} ended" in str(lost.value)
            assert isinstance(lost.value, SessionExpired)
            assert not election.is_leader
            assert election.term == 0
            await session.close()

    run_cluster(tmp_path, body)


def test_keepalives_failing_for_a_ttl_end_the_leaders_observe(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async with kv_client(cluster.endpoints, timeout_s=1.0) as client:
            session = await Session(client, ttl=2).open()
            election = Election(session, "jobs/leader")
            term = await election.campaign("me")
            stream = election.observe()
            first = await asyncio.wait_for(anext(stream), 30)
            assert first is not None
            assert first.term == term
            waiting = asyncio.ensure_future(anext(stream))
            for ident in list(cluster.nodes):  # the whole cluster goes away
                await cluster.stop(ident)
            with pytest.raises(LeadershipLost) as lost:  # no leader change can ever come
                await asyncio.wait_for(waiting, 30)
            assert lost.value.term == term
            assert "not renewed" in lost.value.reason
            assert session.expired
            await session.close()

    run_cluster(tmp_path, body)


@pytest.mark.integration
def test_the_elect_command_reports_a_lost_lease_and_exits_1(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        options = ["--endpoints", ",".join(cluster.endpoints), "--ttl", "3", "--timeout", "20"]
        elect = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "tejido.cli.main", "elect", "boss", "node-a", *options],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert elect.stdout is not None
        assert elect.stderr is not None
        try:
            while True:
                line = await asyncio.wait_for(elect.stdout.readline(), 60)
                if not line:
                    err = await elect.stderr.read()
                    raise AssertionError(f"elect ended before it led: {err.decode()}")
                record = json.loads(line)
                if record.get("us"):
                    break
            term = record["term"]
            async with kv_client(cluster.endpoints) as client:
                leases = (await client.leases()).leases
                assert len(leases) == 1
                await client.lease_revoke(leases[0].id)
            line = await asyncio.wait_for(elect.stdout.readline(), 30)
            lost = json.loads(line)
            assert lost["lost"] is True
            assert lost["term"] == term
            assert "gone" in lost["reason"]
            code = await asyncio.wait_for(elect.wait(), 30)
            assert code == 1
            err = await elect.stderr.read()
            assert f"leadership in term {term} ended" in err.decode()
        finally:
            if elect.returncode is None:
                elect.kill()
                await elect.wait()

    run_cluster_long(tmp_path / "cluster", body)
