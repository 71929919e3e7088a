"""A removed member leaves the meshes (`tejido.store.node` rule 9, `tejido.net.mesh` rule 8).

In-process cluster, members 1-3 voters and member 4 a spare. Member 4 joins as a learner;
once the configuration removing it is applied, every remaining member's mesh has closed
its connection and forgotten its address, and messages to it are dropped (not an error);
the cluster keeps serving. Added back by id, it
gets its link again (from the address book) and catches up. At the mesh level: a removed
peer's dials are refused naming the removal, and `add_peer` lets it back in.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from store_fixtures import Cluster, kv_client, run_cluster, wait_for

from net.net_fixtures import Inbox, Ping, start_mesh
from tejido.core.ids import NodeId
from tejido.net.mesh import Mesh
from tejido.raft.messages import TimeoutNow
from tejido.store.node import StoreNode

FOUR = NodeId(4)
SPARE: dict[str, object] = {"voters": (NodeId(1), NodeId(2), NodeId(3))}


def _mesh(node: StoreNode) -> Mesh:
    mesh = node.host.mesh
    assert mesh is not None
    return mesh


def test_a_removed_member_is_forgotten_by_every_mesh_and_can_come_back(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.wait_leader()
        voters = [cluster.nodes[i] for i in (1, 2, 3)]
        fourth = cluster.nodes[4]
        async with kv_client(cluster.endpoints[:3]) as kv:
            await kv.member_add_learner(4)
            await kv.put("with/learner", "1")
            await cluster.wait_applied()
            for node in voters:
                link = _mesh(node).links[FOUR]
                await wait_for(link.up.is_set, 20, f"a link from {node.member_id} to 4")
            old_conn = _mesh(voters[0]).links[FOUR].conn

            removed = await kv.member_remove(4)
            assert {m.id: m.role for m in removed.members}[4] == "spare"
            for node in voters:
                mesh = _mesh(node)
                await wait_for(lambda m=mesh: FOUR not in m.links, 20, "the mesh to forget 4")  # type: ignore[misc]
                assert FOUR in mesh.removed
            assert old_conn is not None
            assert old_conn.is_closing

            mesh = _mesh(voters[0])
            drops = mesh.removed_drops
            mesh.send(FOUR, TimeoutNow(0, voters[0].raft.term))  # dropped, not an error
            assert mesh.removed_drops == drops + 1
            # Member 4 (the largest id) is dialled, never dials: nobody reaches it now.
            await wait_for(
                lambda: all(not link.up.is_set() for link in _mesh(fourth).links.values()),
                20,
                "member 4 to lose every link",
            )

            await kv.put("after/removal", "2")
            got = await kv.get("after/removal")
            assert got is not None
            assert got.value == b"2"

            await kv.member_add_learner(4)  # back, by id: the address book still has it
            for node in voters:
                mesh = _mesh(node)
                assert FOUR not in mesh.removed
                await wait_for(
                    lambda m=mesh: FOUR in m.links and m.links[FOUR].up.is_set(),  # type: ignore[misc]
                    20,
                    "a link to 4 again",
                )
            await kv.put("with/learner/again", "3")
            await cluster.wait_applied()
            async with kv_client([cluster.endpoints[3]]) as at_four:
                again = await at_four.get("with/learner/again", serializable=True)
            assert again is not None
            assert again.value == b"3"  # replicated to member 4 over its new link

    run_cluster(tmp_path, body, n=4, **SPARE)


def test_a_removed_peers_dials_are_refused_until_it_is_added_again() -> None:
    async def body() -> None:
        inbox1, inbox2 = Inbox(), Inbox()
        one, at1 = await start_mesh(1, {}, inbox1)
        two, at2 = await start_mesh(2, {}, inbox2)
        try:
            one.add_peer(NodeId(2), at2)  # 1 dials 2 (the smaller id dials)
            two.add_peer(NodeId(1), at1)
            one.start()
            two.start()
            await one.wait_connected()
            await two.wait_connected()

            two.remove_peer(NodeId(1))  # the accepting side forgets 1
            assert NodeId(1) not in two.links
            link = one.links[NodeId(2)]
            await wait_for(
                lambda: "node 1 was removed" in (link.last_error or ""), 20, "the refusal"
            )
            assert not link.up.is_set()
            assert any("node 1 was removed" in reason for reason in two.refusals)
            two.send(NodeId(1), Ping(1))  # dropped and counted, not an error
            assert two.removed_drops == 1

            two.add_peer(NodeId(1), at1)  # back: 1's next dial is accepted
            await asyncio.wait_for(two.links[NodeId(1)].up.wait(), 20)
            one.send(NodeId(2), Ping(2))
            await inbox2.wait_for(lambda: (1, Ping(2)) in inbox2.got)
        finally:
            await one.close()
            await two.close()

    asyncio.run(body())
