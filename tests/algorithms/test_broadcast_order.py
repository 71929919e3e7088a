"""Causal and total-order broadcast: the checkers on hand-made histories, the FIFO layer,
seed sweeps under the faults the algorithms allow, and deliberately broken variants that
the checkers must catch."""

from __future__ import annotations

import pytest
from algorithms_support import make_env, sweep, sweep_chunks

from tejido.algorithms.causal import CausalBroadcast, CausalMessage
from tejido.algorithms.fifo_a1 import FifoLinks, Sequenced
from tejido.check.order import (
    CausalOrderChecker,
    OrderEvent,
    check_causal_order,
    check_total_order,
    undelivered,
)
from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation
from tejido.sim.options import FAULT_KINDS
from tejido.sim.registry import get_protocol
from tejido.sim.runner import run_seed

A, B, C = 1, 2, 3
M1, M2, M3 = "m1", "m2", "m3"


# The checkers --------------------------------------------------------------------------------


def test_causal_checker_accepts_a_causal_history() -> None:
    events: list[OrderEvent] = [
        (A, "broadcast", M1),
        (A, "deliver", M1),
        (B, "deliver", M1),
        (B, "broadcast", M2),  # after delivering m1: m1 -> m2
        (B, "deliver", M2),
        (C, "deliver", M1),
        (C, "deliver", M2),
        (A, "deliver", M2),
    ]
    assert check_causal_order(events) is None


def test_causal_checker_rejects_a_reply_delivered_before_its_cause() -> None:
    events: list[OrderEvent] = [
        (A, "broadcast", M1),
        (B, "deliver", M1),
        (B, "broadcast", M2),
        (C, "deliver", M2),  # C has not delivered m1
    ]
    violation = check_causal_order(events)
    assert violation is not None
    assert violation.name == "causal-order"
    assert "before message 1 of node 1" in violation.detail


def test_causal_checker_rejects_fifo_violations_and_duplicates() -> None:
    fifo: list[OrderEvent] = [(A, "broadcast", M1), (A, "broadcast", M2), (B, "deliver", M2)]
    violation = check_causal_order(fifo)
    assert violation is not None
    assert violation.name == "causal-order"
    twice: list[OrderEvent] = [(A, "broadcast", M1), (B, "deliver", M1), (B, "deliver", M1)]
    violation = check_causal_order(twice)
    assert violation is not None
    assert violation.name == "integrity"
    ghost: list[OrderEvent] = [(B, "deliver", M3)]
    violation = check_causal_order(ghost)
    assert violation is not None
    assert "never broadcast" in violation.detail


def test_causal_dependencies_are_transitive() -> None:
    checker = CausalOrderChecker()
    checker.feed(
        [
            (A, "broadcast", M1),
            (B, "deliver", M1),
            (B, "broadcast", M2),
            (C, "deliver", M1),
            (C, "deliver", M2),
            (C, "broadcast", M3),  # depends on m2 and, through it, on m1
        ]
    )
    assert checker.dep[M3] == {A: 1, B: 1}
    violation = check_causal_order(
        [
            (A, "broadcast", M1),
            (B, "deliver", M1),
            (B, "broadcast", M2),
            (C, "deliver", M1),
            (C, "deliver", M2),
            (C, "broadcast", M3),
            (A, "deliver", M1),
            (A, "deliver", M3),  # A never delivered m2, which m3 depends on through C
        ]
    )
    assert violation is not None
    assert "before message 1 of node 2" in violation.detail


def test_concurrent_messages_may_be_delivered_in_any_order_causally_but_not_totally() -> None:
    events: list[OrderEvent] = [
        (A, "broadcast", M1),
        (B, "broadcast", M2),
        (A, "deliver", M1),
        (A, "deliver", M2),
        (B, "deliver", M2),
        (B, "deliver", M1),
    ]
    assert check_causal_order(events) is None
    violation = check_total_order(events)
    assert violation is not None
    assert violation.name == "total-order"


def test_total_order_accepts_prefixes_of_one_sequence() -> None:
    events: list[OrderEvent] = [
        (A, "broadcast", M1),
        (B, "broadcast", M2),
        (A, "deliver", M2),
        (B, "deliver", M2),
        (A, "deliver", M1),
        (C, "deliver", M2),
    ]
    assert check_total_order(events) is None


def test_undelivered_lists_what_each_node_lacks() -> None:
    assert undelivered([M1, M2], {A: [M1, M2], B: [M2]}) == {B: [M1]}


# The FIFO layer -----------------------------------------------------------------------------


class _Probe(Sequenced, frozen=True):
    tag: str


def test_fifo_links_restore_order_and_drop_duplicates() -> None:
    sender, receiver = FifoLinks(), FifoLinks()
    first, second, third = (_Probe(sender.stamp(NodeId(2)), t) for t in "abc")
    src = NodeId(1)
    assert receiver.receive(src, third) == []
    assert receiver.held_back() == 1
    assert receiver.receive(src, first) == [first]
    assert receiver.receive(src, third) == []  # duplicate of one held back
    assert receiver.receive(src, second) == [second, third]
    assert receiver.receive(src, first) == []  # duplicate of one delivered
    assert receiver.held_back() == 0


# The algorithm, driven by hand --------------------------------------------------------------


def test_causal_broadcast_holds_back_until_the_cause_arrives() -> None:
    a, b, c = (CausalBroadcast(make_env(i, 3)) for i in (1, 2, 3))
    a.on_command(RequestId(1), Operation("broadcast", None, "question"))
    to_b = [m for dst, m in a.ready().messages if dst == 2]
    assert len(to_b) == 1
    b.on_message(NodeId(1), to_b[0])
    b.on_command(RequestId(2), Operation("broadcast", None, "answer"))
    answer = [m for dst, m in b.ready().messages if dst == 3]
    assert isinstance(answer[0], CausalMessage)
    c.on_message(NodeId(2), answer[0])  # the answer overtakes the question
    assert [e for e in c.log if e[0] == "deliver"] == []
    assert len(c.pending) == 1
    question = to_b[0]
    c.on_message(NodeId(1), question)
    assert [bid for kind, bid in c.log if kind == "deliver"] == [(1, 1), (2, 1)]
    c.on_message(NodeId(1), question)  # a duplicate changes nothing
    assert len(c.log) == 2


# Seed sweeps --------------------------------------------------------------------------------

ALGORITHMS = ["causal-broadcast", "total-order-broadcast", "sequencer-broadcast"]


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("seeds", sweep_chunks(60, 30), ids=str)
def test_broadcast_seed_sweep(name: str, seeds: range) -> None:
    results = sweep(name, seeds, duration_s=6.0)
    assert all(set(r.options.faults) <= set(get_protocol(name).faults or ()) for r in results)
    assert sum(r.operations for r in results) > 100 * len(results)


def test_broadcast_with_five_nodes() -> None:
    for name in ALGORITHMS:
        sweep(name, range(1, 4), duration_s=6.0, nodes=5)


@pytest.mark.parametrize(
    ("name", "property_"),
    [("causal-broadcast-no-holdback", "causal-order"), ("total-order-no-acks", "total-order")],
)
def test_checkers_catch_the_broken_variants(name: str, property_: str) -> None:
    spec = get_protocol(name)
    assert spec.broken
    found = []
    for seed in range(1, 6):
        result = run_seed(spec, seed, faults=FAULT_KINDS, duration_s=3.0)
        if result.violation is not None:
            found.append(result.violation.property)
    assert property_ in found, found
