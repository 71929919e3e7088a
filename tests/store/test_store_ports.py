"""Reserved ports: a stopped member gets its ports back however busy the machine is.

Regression for a flake of ``test_restarted_cluster_recovers_its_data``: the fixture used
to pick ports by binding port 0 and closing the socket, so between a member's stop and
its restart (and between picking a port and the first start) any other process could
bind the port, and the restart failed with EADDRINUSE. Two picks could also return the
same port. The fixture now keeps every port reserved (`tejido.store.ports`).
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from store_fixtures import Cluster, kv_client, run_cluster

from tejido.core.ids import NodeId
from tejido.store.ports import PortReservation


def _plain_bind(port: int) -> None:
    """Bind the way another test's `free_port()` or server without SO_REUSEADDR would."""
    with socket.socket() as thief:
        thief.bind(("127.0.0.1", port))


def test_reserved_ports_are_distinct_and_nobody_else_can_bind_them() -> None:
    with PortReservation() as ports:
        taken = [ports.take() for _ in range(8)]
        assert len(set(taken)) == len(taken)
        for port in taken:
            with pytest.raises(OSError, match="in use") as refused:
                _plain_bind(port)
            assert refused.value.errno == errno.EADDRINUSE
        handed_out = set()
        for _ in range(500):  # port-0 binds never get a reserved port
            with socket.socket() as other:
                other.bind(("127.0.0.1", 0))
                handed_out.add(other.getsockname()[1])
        assert not handed_out & set(taken)
    _plain_bind(taken[0])  # released by close


def test_a_stopped_member_restarts_on_its_reserved_ports(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        async with kv_client(cluster.endpoints) as client:
            await client.put("before", "1")
        await cluster.stop(1)
        member = cluster.members[NodeId(1)]
        for address in (member.peer, member.client):
            with pytest.raises(
                OSError, match="in use"
            ) as refused:  # what a parallel test would try
                _plain_bind(int(address.rsplit(":", 1)[1]))
            assert refused.value.errno == errno.EADDRINUSE
        await cluster.start(1)
        await cluster.wait_applied()
        async with kv_client([member.client]) as one:
            got = await one.get("before", serializable=True)
        assert got is not None
        assert got.value == b"1"

    run_cluster(tmp_path, body)
