"""Partial-order laws of Lamport and vector clocks, over random executions.

An execution is a random sequence of local events, sends and receives among a few nodes.
We compute the true happens-before relation from the execution itself (transitive closure
of program order and send->receive edges) and check the clocks against it:

- Lamport: a -> b implies L(a) < L(b) (the clock condition; the converse need not hold).
- Vector: a -> b if and only if V(a) < V(b); a and b are concurrent iff neither is below.
- <= on vector clocks is a partial order: reflexive, antisymmetric, transitive.
- merge is commutative, associative, idempotent (a join semilattice).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tejido.core.clocks import Causality, LamportClock, VectorClock
from tejido.core.ids import NodeId

Step = tuple[str, int, int]  # (kind, node, other): kind in local/send/receive


@st.composite
def executions(draw: st.DrawFn) -> list[Step]:
    nodes = draw(st.integers(2, 4))
    steps: list[Step] = []
    in_flight: list[int] = []  # indexes of send steps not yet received
    for _ in range(draw(st.integers(1, 30))):
        choice = draw(st.sampled_from(["local", "send", "receive"]))
        node = draw(st.integers(0, nodes - 1))
        if choice == "receive" and in_flight:
            send_index = in_flight.pop(draw(st.integers(0, len(in_flight) - 1)))
            steps.append(("receive", node, send_index))
        elif choice == "send":
            in_flight.append(len(steps))
            steps.append(("send", node, -1))
        else:
            steps.append(("local", node, -1))
    return steps


def run(steps: list[Step]) -> tuple[list[LamportClock], list[VectorClock], list[set[int]]]:
    """Clocks of every event, and for each event the set of events that happen before it."""
    lamport: dict[int, LamportClock] = {}
    vector: dict[int, VectorClock] = {}
    last_on_node: dict[int, int] = {}
    ls: list[LamportClock] = []
    vs: list[VectorClock] = []
    before: list[set[int]] = []
    for i, (kind, node, other) in enumerate(steps):
        lc = lamport.get(node, LamportClock())
        vc = vector.get(node, VectorClock())
        preds: set[int] = set()
        if node in last_on_node:
            prev = last_on_node[node]
            preds |= before[prev] | {prev}
        if kind == "receive":
            lc = lc.merge(ls[other])
            vc = vc.receive(NodeId(node), vs[other])
            preds |= before[other] | {other}
        else:
            lc = lc.tick()
            vc = vc.tick(NodeId(node))
        lamport[node], vector[node] = lc, vc
        last_on_node[node] = i
        ls.append(lc)
        vs.append(vc)
        before.append(preds)
    return ls, vs, before


@settings(max_examples=300)
@given(executions())
def test_lamport_clock_condition(steps: list[Step]) -> None:
    ls, _, before = run(steps)
    for b, preds in enumerate(before):
        for a in preds:
            assert ls[a] < ls[b]


@settings(max_examples=300)
@given(executions())
def test_vector_clocks_characterise_happens_before(steps: list[Step]) -> None:
    _, vs, before = run(steps)
    for a in range(len(steps)):
        for b in range(len(steps)):
            if a == b:
                continue
            hb = a in before[b]
            assert vs[a].happens_before(vs[b]) == hb
            concurrent = a not in before[b] and b not in before[a]
            assert vs[a].concurrent_with(vs[b]) == concurrent


vectors = st.dictionaries(st.integers(1, 4).map(NodeId), st.integers(0, 5)).map(VectorClock)


@given(vectors, vectors, vectors)
def test_vector_order_is_a_partial_order(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    assert a <= a
    if a <= b and b <= a:
        assert a == b
    if a <= b and b <= c:
        assert a <= c
    assert (a.compare(b) is Causality.BEFORE) == (b.compare(a) is Causality.AFTER)


@given(vectors, vectors, vectors)
def test_merge_is_a_join(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    joined = a.merge(b)
    assert a <= joined
    assert b <= joined


def test_zero_entries_are_absent_entries() -> None:
    assert VectorClock({NodeId(1): 0, NodeId(2): 3}) == VectorClock({NodeId(2): 3})
    assert VectorClock()[NodeId(9)] == 0
    assert VectorClock({NodeId(2): 1, NodeId(1): 2}).to_dict() == {"1": 2, "2": 1}
