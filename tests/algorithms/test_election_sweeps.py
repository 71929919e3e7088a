"""Seed sweeps of Bully and ring election under crashes, recoveries and clock drift, plus
scenario tests: coordinator crash, recovery of the highest id, and the invariants' teeth."""

from __future__ import annotations

import pytest
from algorithms_support import sweep, sweep_chunks

from tejido.algorithms.bully import BullyConfig, BullyNode
from tejido.algorithms.ring import RingConfig, RingElection
from tejido.core.ids import NodeId
from tejido.core.protocol import Env, Process
from tejido.sim.counts import CountRun
from tejido.sim.registry import get_protocol
from tejido.sim.specs.election import ElectionInvariant

FACTORIES = {
    "bully": lambda env: BullyNode(env, BullyConfig()),
    "ring": lambda env: RingElection(env, RingConfig()),
}


def leaders(run: CountRun) -> dict[int, object]:
    return {n: getattr(run.sim.nodes[n].process, "leader", None) for n in run.ids}


@pytest.mark.parametrize("name", ["bully", "ring"])
@pytest.mark.parametrize("seeds", sweep_chunks(100, 50), ids=str)
def test_election_seed_sweep(name: str, seeds: range) -> None:
    results = sweep(name, seeds, duration_s=10.0)
    assert {r.options.faults for r in results} <= {("crash",), ("clock",), ("crash", "clock")}
    crashed = [r for r in results if "crash" in r.options.faults]
    assert len(crashed) > len(results) // 4  # the sweep really kills coordinators


@pytest.mark.parametrize("name", ["bully", "ring"])
def test_spec_allows_only_the_faults_the_assumptions_allow(name: str) -> None:
    assert get_protocol(name).faults == ("crash", "clock")


@pytest.mark.parametrize("name", ["bully", "ring"])
def test_coordinator_crash_then_the_highest_id_takes_over_again(name: str) -> None:
    run = CountRun(FACTORIES[name], 5).start().run_for(1.0)
    assert leaders(run) == dict.fromkeys(range(1, 6), 5)
    run.sim.crash(NodeId(5), power_loss=False, torn_probability=0.0)
    run.run_for(2.0)  # the failure detectors notice; a new election runs
    after_crash = leaders(run)
    assert after_crash == {1: 4, 2: 4, 3: 4, 4: 4, 5: None}
    run.sim.restart(NodeId(5))
    run.run_for(2.0)
    assert leaders(run) == dict.fromkeys(range(1, 6), 5)


@pytest.mark.parametrize("name", ["bully", "ring"])
def test_two_crashes_leave_the_third_highest_in_charge(name: str) -> None:
    run = CountRun(FACTORIES[name], 5).start().run_for(1.0)
    run.sim.crash(NodeId(5), power_loss=False, torn_probability=0.0)
    run.sim.crash(NodeId(4), power_loss=False, torn_probability=0.0)
    run.run_for(3.0)
    assert leaders(run) == {1: 3, 2: 3, 3: 3, 4: None, 5: None}


@pytest.mark.parametrize("name", ["bully", "ring"])
def test_a_single_node_elects_itself(name: str) -> None:
    run = CountRun(FACTORIES[name], 1).start().run_for(0.5)
    assert leaders(run) == {1: 1}


class _FollowsLower(Process):
    """A node that claims a lower coordinator than itself: the invariant must object."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.leader = NodeId(1)


def test_invariant_rejects_following_a_lower_id() -> None:
    from tejido.core.errors import InvariantViolation

    run = CountRun(lambda env: BullyNode(env), 3).start().run_for(1.0)
    ElectionInvariant().check(run.sim)  # a correct run passes
    node = run.sim.nodes[NodeId(3)]
    assert isinstance(node.process, BullyNode)
    node.process.leader = NodeId(2)
    with pytest.raises(InvariantViolation, match="coordinator-not-lower"):
        ElectionInvariant().check(run.sim)


def test_end_check_reports_disagreement() -> None:
    from tejido.core.errors import InvariantViolation

    run = CountRun(lambda env: BullyNode(env), 3).start().run_for(1.0)
    ElectionInvariant().finish(run.sim, 0.0)
    run.sim.crash(NodeId(3), power_loss=False, torn_probability=0.0)
    run.run_for(1.0)
    with pytest.raises(InvariantViolation, match="election-liveness"):
        ElectionInvariant().finish(run.sim, 0.0)
