"""Deadlock detection and prevention: the checkers, a two-transaction cycle found and
resolved by aborting the youngest, prevention policies, and the broken policy caught."""

from __future__ import annotations

import pytest

from tejido.algorithms.deadlock import DeadlockConfig, LockNode, Policy, manager_of
from tejido.check.deadlock import CyclePersistence, cycles, missing_edges
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.operations import Operation
from tejido.sim.counts import CountRun
from tejido.sim.registry import get_protocol
from tejido.sim.runner import run_seed


def test_cycles_and_missing_edges_on_a_functional_graph() -> None:
    edges = {1: 2, 2: 3, 3: 1, 4: 1, 5: 6, 6: 5, 7: 8}
    assert sorted(cycles(edges)) == [(1, 2, 3), (5, 6)]
    assert missing_edges([2, 3, 1], edges) == []
    assert missing_edges([1, 3], edges) == [(1, 3)]  # 3 -> 1 exists
    assert cycles({1: 2, 2: 3}) == []


def test_cycle_persistence_raises_only_past_the_bound() -> None:
    tracker = CyclePersistence(bound_s=1.0)
    tracker.observe(0.0, [(1, 2)])
    tracker.observe(0.9, [(1, 2)])
    tracker.observe(1.0, [])  # resolved: the clock starts again
    tracker.observe(1.5, [(1, 2)])
    with pytest.raises(InvariantViolation, match="deadlock-undetected"):
        tracker.observe(2.6, [(1, 2)])


def two_crossed_transactions(policy: Policy) -> tuple[CountRun, dict[str, str]]:
    """T1 at node 1 takes L0 then L1; T2 at node 2 takes L1 then L0: a cycle unless a
    policy prevents it (node 1 manages L0... per `manager_of`, locks on both nodes)."""
    config = DeadlockConfig(policy=policy, work_s=0.05)
    run = CountRun(lambda env: LockNode(env, config), 2).start()
    outcomes: dict[str, str] = {}
    names = {1: "T1", 2: "T2"}
    run.sim.reply_handler = lambda request, outcome: outcomes.__setitem__(
        names[request], outcome.type
    )
    run.submit(1, Operation("txn", None, "L0 L1"))
    run.sim.run_until(0.0001)
    run.submit(2, Operation("txn", None, "L1 L0"))  # T2 is younger
    run.run_for(1.0)
    return run, outcomes


def test_detection_aborts_the_youngest_of_a_cycle_and_the_other_commits() -> None:
    assert manager_of("L0", (NodeId(1), NodeId(2))) == NodeId(1)
    run, outcomes = two_crossed_transactions("detect")
    assert outcomes == {"T1": "ok", "T2": "fail"}
    detected = [r for r in run.trace.records if str(r.get("event", "")).startswith("Deadlock")]
    assert len(detected) == 1
    assert "victim=T2.1" in str(detected[0]["event"])
    assert run.sent(["Probe"]) >= 1


@pytest.mark.parametrize("policy", ["wait-die", "wound-wait"])
def test_prevention_policies_abort_the_younger_without_probes(policy: Policy) -> None:
    run, outcomes = two_crossed_transactions(policy)
    assert outcomes == {"T1": "ok", "T2": "fail"}
    assert run.sent(["Probe"]) == 0


def test_without_detection_the_cycle_persists() -> None:
    run, outcomes = two_crossed_transactions("none")
    assert outcomes == {}
    edges: dict[object, object] = {}
    for n in run.ids:
        process = run.sim.nodes[n].process
        assert isinstance(process, LockNode)
        edges.update(process.wait_for_edges())
    assert len(cycles(edges)) == 1


def test_the_persistence_check_catches_the_broken_policy() -> None:
    result = run_seed(get_protocol("deadlock-ignored"), 1, faults=())
    assert result.violation is not None
    assert result.violation.property == "deadlock-undetected"


def test_bad_transactions_are_refused_with_a_reason() -> None:
    run = CountRun(lambda env: LockNode(env), 2).start()
    replies: list[str | None] = []
    run.sim.reply_handler = lambda request, outcome: replies.append(outcome.error)
    run.submit(1, Operation("txn", None, "L0 L0"))
    run.submit(1, Operation("txn", None, "X9"))
    run.run_for(0.1)
    assert "distinct" in str(replies[0])
    assert "bad lock name" in str(replies[1])
