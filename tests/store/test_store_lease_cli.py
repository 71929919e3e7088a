"""`tejido lease keepalive` on a real member process: one stream renews several leases
(one JSON line per renewal; the leader's remaining TTL shows the renewal), and the
command exits 1 naming ``lease_not_found`` once one of its leases is revoked. (Leases
outliving their TTL through the stream, across a leader change, are tested in-process
in test_store_lease.py.)"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from store_processes import TEJIDO, next_line, single_member

from tejido.kv import BlockingClient

TTL = 30  # seconds: far longer than starting a command-line process on a loaded machine


@pytest.mark.integration
def test_lease_keepalive_streams_until_a_lease_is_gone(tmp_path: Path) -> None:
    with single_member(tmp_path) as member, BlockingClient([member.client], timeout_s=20) as kv:
        at = ["--endpoints", member.client, "--timeout", "20"]
        granted_at = time.monotonic()
        leases = [kv.lease_grant(TTL).id for _ in range(2)]
        kv.put("svc/a", "up", lease=leases[0])
        blocking = kv.keepalive(*leases, interval_s=0.2)  # the blocking client's iterator
        first = [next(blocking) for _ in range(4)]
        blocking.close()
        assert sorted({reply.id for reply in first}) == sorted(leases)
        assert {reply.ttl for reply in first} == {TTL}
        keeper = subprocess.Popen(
            [*TEJIDO, "lease", "keepalive", *map(str, leases), "--interval", "0.5", *at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert keeper.stdout is not None
            renewals = dict.fromkeys(leases, 0)
            while min(renewals.values()) < 2 or time.monotonic() < granted_at + 2.5:
                line = next_line(keeper)
                assert line, f"keepalive ended early: {keeper.communicate()}"
                record = json.loads(line)
                assert record["ttl"] == TTL
                renewals[record["id"]] += 1
            for lease in leases:  # renewed lately: more left than the grant alone allows
                left = kv.lease_ttl(lease).ttl
                assert left > TTL - (time.monotonic() - granted_at) + 1
            assert kv.get("svc/a") is not None
            kv.lease_revoke(leases[1])
            _, errors = keeper.communicate(timeout=30)
        finally:
            if keeper.poll() is None:
                keeper.kill()
                keeper.communicate()
        assert keeper.returncode == 1
        assert "lease_not_found" in errors
        assert str(leases[1]) in errors
