"""Paxos: the synod's chosen value is final; Multi-Paxos fills gaps with no-ops, keeps
chosen slots across leader changes, runs phase 1 once per leadership, and the invariant
catches a broken acceptor."""

from __future__ import annotations

from paxos_harness import Cluster

from tejido.core.ids import NodeId, RequestId
from tejido.core.messages import Message
from tejido.core.operations import Operation, Outcome
from tejido.paxos.messages import NOOP, Accept, Prepare
from tejido.paxos.multi import MultiPaxosNode
from tejido.paxos.synod import SynodNode
from tejido.raft.kv import KeyValueStateMachine, encode_operation

N1, N2, N3 = NodeId(1), NodeId(2), NodeId(3)


def multi(cluster: Cluster, n: NodeId) -> MultiPaxosNode:
    node = cluster.nodes[n]
    assert isinstance(node, MultiPaxosNode)
    return node


def synod(cluster: Cluster, n: NodeId) -> SynodNode:
    node = cluster.nodes[n]
    assert isinstance(node, SynodNode)
    return node


def command(cluster: Cluster, n: NodeId, request: int, op: Operation) -> None:
    cluster.nodes[n].on_command(RequestId(request), op)
    cluster.flush(n)


def test_synod_value_once_chosen_survives_a_competing_proposer() -> None:
    c = Cluster(lambda env: SynodNode(env))
    command(c, N1, 1, Operation("cas", "x", (None, 10)))
    # Node 1's Accepts reach only node 2: 10 is chosen by {1, 2} but node 3 never hears.
    c.deliver(keep=lambda s, d, m: not (d == N3 and not isinstance(m, Prepare)))
    assert c.replies[RequestId(1)] == Outcome("ok", (None, 10))
    c.crash(N1)
    # Node 3 proposes 20 with a higher ballot; node 2's promise reports 10, so 3 proposes 10.
    command(c, N3, 2, Operation("cas", "x", (None, 20)))
    c.deliver(keep=lambda s, d, m: d != N1)
    assert c.replies[RequestId(2)] == Outcome("fail", (None, 20))
    command(c, N3, 3, Operation("read", "x"))
    assert c.replies[RequestId(3)] == Outcome("ok", 10)
    assert synod(c, N3).accepted["x"][1] == 10


def test_synod_read_of_an_undecided_key_returns_none_without_phase_2() -> None:
    c = Cluster(lambda env: SynodNode(env))
    command(c, N2, 1, Operation("read", "y"))
    delivered = c.deliver()
    assert c.replies[RequestId(1)] == Outcome("ok", None)
    assert delivered == 4  # Prepare and Promise with both peers; no Accept
    assert synod(c, N1).accepted == {}


def test_multi_paxos_runs_phase_1_once_for_many_commands() -> None:
    c = Cluster(lambda env: MultiPaxosNode(env, KeyValueStateMachine))
    c.timer(N1, "election")
    c.deliver()
    assert multi(c, N1).role == "leader"
    prepares: list[Message] = []
    for i in range(1, 6):
        command(c, N1, i, Operation("write", "x", i))
        c.deliver(keep=lambda s, d, m: prepares.append(m) is None or True)
    assert not any(isinstance(m, Prepare) for m in prepares)
    assert all(c.replies[RequestId(i)].type == "ok" for i in range(1, 6))
    assert [multi(c, n).next_apply for n in c.ids] == [5, 5, 5]


def test_new_leader_fills_gaps_with_noops_and_keeps_the_accepted_slot() -> None:
    c = Cluster(lambda env: MultiPaxosNode(env, KeyValueStateMachine))
    c.timer(N1, "election")
    c.deliver()
    for i in range(3):
        command(c, N1, 10 + i, Operation("write", "x", i))
    # Only slot 2's Accept reaches node 2; slots 0 and 1 reach nobody; node 1 then crashes.
    c.deliver(keep=lambda s, d, m: not isinstance(m, Accept) or (d == N2 and m.slots[0][0] == 2))
    c.crash(N1)
    c.timer(N2, "election")  # the first timeout only notes that the leader went quiet
    c.timer(N2, "election")
    c.deliver(keep=lambda s, d, m: d != N1)
    leader = multi(c, N2)
    assert leader.role == "leader"
    log = [leader.chosen[s] for s in range(3)]
    assert log[:2] == [NOOP, NOOP]
    assert log[2].data == encode_operation(Operation("write", "x", 2))
    assert multi(c, N3).chosen == leader.chosen
    # Node 1 comes back with its own acceptances of slots 0 and 1 (ballot 1.1): they were
    # never chosen, and it learns the no-ops from the leader.
    c.boot(N1)
    c.timer(N2, "heartbeat")
    c.deliver()
    assert multi(c, N1).chosen == leader.chosen


def test_leader_steps_down_when_a_majority_promised_a_higher_ballot() -> None:
    c = Cluster(lambda env: MultiPaxosNode(env, KeyValueStateMachine))
    c.timer(N1, "election")
    c.deliver()
    c.timer(N3, "election")
    c.timer(N3, "election")
    c.deliver(keep=lambda s, d, m: d != N1 and s != N1)  # node 1 does not hear of it
    assert multi(c, N3).role == "leader"
    command(c, N1, 1, Operation("write", "x", 7))  # node 1 still thinks it leads
    c.deliver()
    assert multi(c, N1).role == "follower"
    c.timer(N1, "retry")  # node 1 re-submits through the new leader
    c.deliver()
    assert c.replies[RequestId(1)] == Outcome("ok", 7)
