"""The peer mesh: one connection per pair, handshake checks, reconnect with backoff, bounded
queues when a peer is slow or gone, undecodable frames dropped and counted."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from net_fixtures import CODEC, LOOPS, Inbox, Ping, Pong, run, start_mesh

from tejido.core.ids import NodeId
from tejido.net.connection import FramedConnection, connect, serve
from tejido.net.handshake import Hello
from tejido.net.mesh import Backoff, Mesh, PeerLink


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _three() -> tuple[list[Mesh], list[Inbox]]:
    """Three meshes on ephemeral ports: listen first, then learn each other's addresses."""
    inboxes = [Inbox() for _ in range(3)]
    meshes, addresses = [], []
    for i in range(3):
        mesh, address = await start_mesh(i + 1, {}, inboxes[i])
        meshes.append(mesh)
        addresses.append(address)
    for i, mesh in enumerate(meshes):
        for j in range(3):
            if i != j:
                mesh.links[NodeId(j + 1)] = PeerLink(NodeId(j + 1), addresses[j], dials=i < j)
        mesh.start()
    return meshes, inboxes


def test_every_pair_shares_one_connection_and_messages_flow_both_ways(loop: str) -> None:
    async def body() -> None:
        meshes, inboxes = await _three()
        try:
            for mesh in meshes:
                await mesh.wait_connected()
            for i, mesh in enumerate(meshes):
                for j in range(3):
                    if i != j:
                        mesh.send(NodeId(j + 1), Ping(10 * (i + 1) + j + 1))
            for inbox in inboxes:
                await inbox.wait_for(lambda inbox=inbox: len(inbox.got) == 2)
            assert sorted(inboxes[0].got) == [(2, Ping(21)), (3, Ping(31))]
            assert sorted(inboxes[2].got) == [(1, Ping(13)), (2, Ping(23))]
            for mesh in meshes:
                assert all(link["connects"] == 1 for link in mesh.stats())
            # the two ends of each pair hold the two ends of the same TCP connection
            conn12 = meshes[0].links[NodeId(2)].conn
            conn21 = meshes[1].links[NodeId(1)].conn
            assert conn12 is not None
            assert conn21 is not None
            assert conn12.peername == conn21._transport.get_extra_info("sockname")  # type: ignore[union-attr]
        finally:
            for mesh in meshes:
                await mesh.close()

    run(body(), loop)


def test_messages_to_ourselves_are_delivered_locally(loop: str) -> None:
    async def body() -> None:
        inbox = Inbox()
        mesh, _ = await start_mesh(1, {}, inbox)
        mesh.send(NodeId(1), Pong(7))
        await inbox.wait_for(lambda: inbox.got == [(1, Pong(7))])
        await mesh.close()

    run(body(), loop)


@pytest.mark.parametrize(
    ("dialler", "cluster", "reason"),
    [
        (9, "test", "unknown node id 9: this node's peers are 1"),
        (1, "other", "cluster id mismatch: peer 1 belongs to cluster 'other', this node to"),
        (3, "test", "node 3 must not dial node 2: the smaller id dials"),
    ],
)
def test_the_acceptor_refuses_unknown_nodes_wrong_clusters_and_wrong_dialers(
    dialler: int, cluster: str, reason: str, loop: str
) -> None:
    async def body() -> None:
        inbox2 = Inbox()
        mesh2, address2 = await start_mesh(2, {1: "127.0.0.1:1", 3: "127.0.0.1:1"}, inbox2)
        bad, _ = await start_mesh(dialler, {2: address2}, Inbox(), cluster=cluster)
        bad.links[NodeId(2)].dials = True  # dial even when the rules say not to
        bad.start()
        link = bad.links[NodeId(2)]
        try:
            await asyncio.wait_for(link.failed.wait(), 10)
            assert reason in (link.last_error or "")
            assert any(reason in r for r in mesh2.refusals)
            assert all(not s["up"] for s in mesh2.stats())
        finally:
            await bad.close()
            await mesh2.close()

    run(body(), loop)


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.6, rng=random.Random(3))
    for failures, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (4, 1.6), (9, 1.6), (500, 1.6)]:
        draws = [backoff.delay(failures) for _ in range(2000)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.9 * ceiling  # spread over the whole range: full jitter
        assert min(draws) < 0.1 * ceiling


def test_a_peer_that_starts_late_is_reached_by_retrying_and_queued_messages_arrive(
    loop: str,
) -> None:
    async def body() -> None:
        # reserve a port for node 2 by listening, and stop listening before node 1 dials
        inbox2 = Inbox()
        mesh2, address2 = await start_mesh(2, {1: "127.0.0.1:1"}, inbox2)
        await mesh2.close()
        inbox1 = Inbox()
        mesh1, _ = await start_mesh(1, {2: address2}, inbox1)
        mesh1.start()
        for n in range(5):
            mesh1.send(NodeId(2), Ping(n))
        link = mesh1.links[NodeId(2)]
        await asyncio.wait_for(link.failed.wait(), 10)
        assert "cannot connect to node 2" in (link.last_error or "")
        assert len(link.queue) == 5
        mesh2, _ = await start_mesh(2, {1: "127.0.0.1:1"}, inbox2, address=address2)
        await inbox2.wait_for(lambda: len(inbox2.got) == 5)
        assert [m for _, m in inbox2.got] == [Ping(n) for n in range(5)]
        assert link.failures >= 1
        assert link.connects == 1
        # node 2 restarts: node 1 redials, and the link carries messages again
        await mesh2.close()
        await asyncio.wait_for(_until(lambda: link.conn is None), 10)
        inbox2b = Inbox()
        mesh2, _ = await start_mesh(2, {1: "127.0.0.1:1"}, inbox2b, address=address2)
        await asyncio.wait_for(link.up.wait(), 10)
        mesh1.send(NodeId(2), Ping(99))
        await inbox2b.wait_for(lambda: inbox2b.got == [(1, Ping(99))])
        await mesh1.close()
        await mesh2.close()

    run(body(), loop)


async def _until(predicate: Callable[[], bool]) -> None:
    """Poll a condition nothing signals (the caller bounds it with a timeout)."""
    while not predicate():
        await asyncio.sleep(0.01)


def test_a_peer_that_never_reads_cannot_make_memory_grow(loop: str) -> None:
    """The peer accepts, handshakes, then stops reading: kernel buffers fill, the connection
    reaches its high-water mark, the queue fills, and everything beyond is dropped."""

    async def body() -> None:
        class Deaf:
            def frame_received(self, payload: bytes) -> None:
                pass

            def connection_lost(self, exc: BaseException | None) -> None:
                pass

        def accept(conn: FramedConnection, hello: Hello) -> Deaf:
            conn.pause_reading()
            return Deaf()

        server = await serve(
            "127.0.0.1:0", cluster="test", node="2", purposes=("peer",), accept=accept
        )
        port = server.sockets[0].getsockname()[1]
        high_water, limit_messages, pad = 64 * 1024, 50, b"x" * 1000
        mesh, _ = await start_mesh(
            1,
            {2: f"127.0.0.1:{port}"},
            Inbox(),
            high_water=high_water,
            queue_limit_messages=limit_messages,
        )
        mesh.start()
        link = mesh.links[NodeId(2)]
        await asyncio.wait_for(link.up.wait(), 10)
        async with asyncio.timeout(20):
            while link.dropped == 0:  # until the socket, connection and queue are all full
                for n in range(200):
                    mesh.send(NodeId(2), Ping(n, pad))
                await asyncio.sleep(0)
        conn = link.conn
        assert conn is not None
        bound = high_water + len(pad) + 64
        for _ in range(20):  # keep sending: drops grow, memory does not
            dropped = link.dropped
            for n in range(500):
                mesh.send(NodeId(2), Ping(n, pad))
            await asyncio.sleep(0)
            assert link.dropped >= dropped + 400
            assert len(link.queue) <= limit_messages
            assert conn.buffered <= bound
        assert link.sent > 0
        await mesh.close()
        server.close()

    run(body(), loop)


def test_an_undecodable_frame_is_dropped_and_counted_and_the_link_keeps_working(loop: str) -> None:
    async def body() -> None:
        inbox2 = Inbox()
        mesh2, address2 = await start_mesh(2, {1: "127.0.0.1:1"}, inbox2)
        conn = await connect(address2, Hello("test", "1", "peer"), expect_node="2")
        conn.send(b"\x93not a message")
        conn.send(CODEC.encode(Ping(1)))
        await inbox2.wait_for(lambda: len(inbox2.got) == 1)
        assert inbox2.got == [(1, Ping(1))]
        assert mesh2.links[NodeId(1)].bad_frames == 1
        conn.close()
        await mesh2.close()

    run(body(), loop)
