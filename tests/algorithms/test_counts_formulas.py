"""Message counts in the simulator equal the textbook formulas, for every registered case.

The cases come from ``COUNTS`` in every module of `tejido.sim.specs` (`discover_counts`),
so a family that states its counts is tested here without further wiring. The table in
docs/algorithms.md is generated from the same cases; this file also checks that the rows
of the algorithms documented there are the ones the code produces today.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tejido.sim.counts import CountCase, count_rows, count_table, discover_counts

CASES = discover_counts()
DOC = Path(__file__).resolve().parents[2] / "docs" / "algorithms.md"


ELECTION_ORDERING_MUTEX = {
    "bully",
    "ring",
    "causal-broadcast",
    "total-order-broadcast",
    "sequencer-broadcast",
    "central-mutex",
    "ricart-agrawala",
    "lamport-mutex",
}


def _id(case: CountCase) -> str:
    return f"{case.algorithm}: {case.scenario}"


def test_every_family_of_this_issue_states_its_counts() -> None:
    names = {case.algorithm for case in CASES}
    assert {"bully", "ring", "central-mutex", "ricart-agrawala", "lamport-mutex"} <= names


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_measured_count_equals_the_formula(case: CountCase) -> None:
    for row in count_rows([case]):
        assert row.measured == row.expected, (
            f"{case.algorithm} ({case.scenario}), n={row.n}: formula {case.formula} = "
            f"{row.expected}, measured {row.measured} ({case.counted})"
        )


def test_the_documented_table_is_current() -> None:
    mine = [c for c in CASES if c.algorithm in ELECTION_ORDERING_MUTEX]
    text = DOC.read_text(encoding="utf-8")
    for line in count_table(count_rows(mine)).splitlines()[2:]:
        assert line in text, f"docs/algorithms.md lacks (regenerate the table): {line}"


def test_the_table_marks_a_mismatch() -> None:
    wrong = CountCase(
        algorithm="demo",
        scenario="a formula that is off by one",
        counted="nothing",
        formula="n+1",
        expected=lambda n: n + 1,
        measure=lambda n: n,
        sizes=(3,),
    )
    assert "3: 4 / 3 **MISMATCH**" in count_table(count_rows([wrong]))
