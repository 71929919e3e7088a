"""Chandy-Lamport: one marker per directed channel, conservation checked, broken variant
caught, concurrent snapshots independent."""

from __future__ import annotations

import pytest

from tejido.check.snapshot import RecordedProcess, check_snapshot
from tejido.sim.options import FAULT_KINDS
from tejido.sim.registry import get_protocol
from tejido.sim.runner import run_seed
from tejido.sim.specs.snapshot import COUNTS, measure_markers


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_one_snapshot_sends_one_marker_per_directed_channel(n: int) -> None:
    assert measure_markers(n) == n * (n - 1)
    (case,) = COUNTS
    assert case.expected(n) == n * (n - 1)


def test_checker_accepts_a_consistent_cut_and_rejects_a_lost_transfer() -> None:
    good = {
        1: RecordedProcess(90, {2: [], 3: [10]}),
        2: RecordedProcess(100, {1: [], 3: []}),
        3: RecordedProcess(100, {1: [], 2: []}),
    }
    assert check_snapshot(good, [1, 2, 3], 300) == []
    lost = dict(good)
    lost[1] = RecordedProcess(90, {2: [], 3: []})
    (problem,) = check_snapshot(lost, [1, 2, 3], 300)
    assert "recorded total 290 != 300" in problem
    incomplete = {1: good[1], 2: RecordedProcess(100, {1: []})}
    problems = check_snapshot(incomplete, [1, 2, 3], 300)
    assert any("no recorded state for process(es) [3]" in p for p in problems)
    assert any("process 2: channels from [3]" in p for p in problems)


def test_snapshots_conserve_money_under_reordering_and_duplication() -> None:
    result = run_seed(get_protocol("chandy-lamport"), 7, faults=("duplicate", "reorder"), nodes=4)
    assert result.ok, result.violation
    totals = [e["value"] for e in result.history if e["type"] == "ok"]
    assert len(totals) > 50
    assert set(totals) == {4000}


def test_spec_leaves_out_the_faults_the_algorithm_does_not_tolerate() -> None:
    result = run_seed(get_protocol("chandy-lamport"), 3, faults=FAULT_KINDS)
    assert not {"drop", "partition", "crash"} & set(result.options.faults)


def test_a_snapshot_without_channel_states_is_caught() -> None:
    result = run_seed(get_protocol("chandy-lamport-no-channels"), 1, faults=())
    assert result.violation is not None
    assert result.violation.property == "snapshot-conservation"
