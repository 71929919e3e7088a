"""Two-phase commit: message counts, the blocking case, atomicity checker, recovery."""

from __future__ import annotations

import pytest

from tejido.algorithms.two_phase_commit import TwoPhaseCommitNode
from tejido.check.commit import AtomicityChecker, check_atomicity
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.sim.specs.commit import blocking_scenario, measure_commit_messages, timeline


@pytest.mark.parametrize("participants", [1, 2, 3, 5, 8])
def test_one_transaction_costs_4n_messages(participants: int) -> None:
    total, kinds = measure_commit_messages(participants)
    assert total == 4 * participants
    assert kinds == dict.fromkeys(("Prepare", "Vote", "Decision", "Ack"), participants)


def test_coordinator_crash_after_prepare_blocks_participants_until_it_returns() -> None:
    scenario = blocking_scenario()
    # During the outage both participants are prepared for t1 and hold its lock on x.
    assert scenario.blocked_during_outage == {2: ("prepared", 1), 3: ("prepared", 1)}
    # t1's client never heard back (its coordinator crashed); t2 was refused because x was
    # locked; t3, after the coordinator returned and aborted t1, committed.
    assert scenario.outcomes == {2: "fail", 3: "ok"}
    nodes = {n: scenario.sim.nodes[NodeId(n)].process for n in (1, 2, 3)}
    for n, process in nodes.items():
        assert isinstance(process, TwoPhaseCommitNode)
        assert process.locks == {}, f"node {n} still holds a lock"
        if n != 3:
            assert process.data == {"x": 3}, f"node {n} did not apply t3"
        if n != 1:
            assert process.participating[1].state == "abort"
    coordinator = nodes[1]
    assert isinstance(coordinator, TwoPhaseCommitNode)
    assert coordinator.coord_outcomes[1] == "abort"
    trace = scenario.sim.trace
    assert trace is not None
    lines = timeline(trace.records)
    assert any("node 1 CRASH" in line for line in lines)
    assert any("DecisionRequest t1" in line for line in lines)  # the blocked participants ask


def test_blocking_scenario_renders_a_diagram(tmp_path: object) -> None:
    from tejido.viz.html import render_html

    scenario = blocking_scenario()
    assert scenario.sim.trace is not None
    page = render_html(scenario.sim.trace.records, title="2PC blocking")
    assert "2PC blocking" in page
    assert "DecisionRequest t1" in page


def test_atomicity_checker_flags_mixed_outcomes_and_reversals() -> None:
    assert check_atomicity([(1, "a", "commit"), (1, "b", "commit"), (2, "a", "abort")]) == []
    problems = check_atomicity([(1, "a", "commit"), (1, "b", "abort")])
    assert len(problems) == 1
    assert "AC1" in problems[0]
    checker = AtomicityChecker()
    checker.observe(7, "a", "abort")
    with pytest.raises(InvariantViolation, match="AC2"):
        checker.observe(7, "a", "commit")
    with pytest.raises(ValueError, match="not commit/abort"):
        checker.observe(8, "a", "maybe")
