"""Verdicts of the linearizability checker: semantics, recorded data, counterexamples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tejido.check import HistoryEvent, LinearizabilityResult, check_linearizable, read_history
from tejido.check.generate import generate_history, history_text, mutate_history
from tejido.check.history import HistoryOp, parse_history
from tejido.check.linearizability import check_operations
from tejido.check.minimize import witness_ops
from tejido.check.search import is_linearizable, search

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "histories"

Row = tuple[int, str, str, object] | tuple[int, str, str, object, str]


def h(*rows: Row) -> list[HistoryEvent]:
    """Events from (process, type, f, value[, key]) rows, in real-time order."""
    events = []
    for row in rows:
        key = row[4] if len(row) == 5 else None
        events.append(HistoryEvent(row[0], row[1], row[2], key, row[3]))
    return events


def lin(*rows: Row, strict: bool = False) -> bool:
    return check_linearizable(h(*rows), strict_fail_cas=strict).linearizable


# ----------------------------------------------------------------- register semantics


def test_sequential_read_sees_the_last_write() -> None:
    write = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]
    assert lin(*write, (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert not lin(*write, (1, "invoke", "read", None), (1, "ok", "read", 2))
    assert not lin(*write, (1, "invoke", "read", None), (1, "ok", "read", None))


def test_an_absent_key_reads_null() -> None:
    assert lin((0, "invoke", "read", None), (0, "ok", "read", None))
    assert not lin((0, "invoke", "read", None), (0, "ok", "read", 0))
    assert lin((0, "invoke", "read", None, "k"), (0, "ok", "read", None, "k"))


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in (None, 5):
        assert lin(
            (0, "invoke", "write", 5),
            (1, "invoke", "read", None),
            (1, "ok", "read", seen),
            (0, "ok", "write", 5),
        )


def test_once_a_read_saw_the_new_value_a_later_read_cannot_see_the_old() -> None:
    assert not lin(
        (0, "invoke", "write", 5),
        (1, "invoke", "read", None),
        (1, "ok", "read", 5),
        (2, "invoke", "read", None),
        (2, "ok", "read", None),
        (0, "ok", "write", 5),
    )


def test_concurrent_writes_may_take_effect_in_either_order() -> None:
    both = [(0, "invoke", "write", 1), (1, "invoke", "write", 2)]
    done = [(0, "ok", "write", 1), (1, "ok", "write", 2)]
    for last in (1, 2):
        assert lin(*both, *done, (2, "invoke", "read", None), (2, "ok", "read", last))
    # ... but the value later reads agree on is one of them, and stays
    assert not lin(
        *both,
        *done,
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
    )


def test_an_info_write_may_take_effect_late_or_never() -> None:
    write = [(0, "invoke", "write", 7), (0, "info", "write", 7)]
    read = (1, "invoke", "read", None)
    assert lin(*write, read, (1, "ok", "read", None))  # never happened
    assert lin(*write, read, (1, "ok", "read", 7))  # happened
    # happened after a later read: still fine (it may take effect any time after invocation)
    assert lin(*write, read, (1, "ok", "read", None), read, (1, "ok", "read", 7))
    # but once seen it cannot be undone
    assert not lin(*write, read, (1, "ok", "read", 7), read, (1, "ok", "read", None))


def test_an_invocation_without_completion_counts_as_info() -> None:
    assert lin((0, "invoke", "write", 7), (1, "invoke", "read", None), (1, "ok", "read", 7))
    assert lin((0, "invoke", "write", 7), (1, "invoke", "read", None), (1, "ok", "read", None))


def test_an_info_write_cannot_take_effect_before_its_invocation() -> None:
    assert not lin(
        (1, "invoke", "read", None),
        (1, "ok", "read", 7),
        (0, "invoke", "write", 7),
        (0, "info", "write", 7),
    )


def test_a_failed_write_had_no_effect() -> None:
    write = [(0, "invoke", "write", 1), (0, "fail", "write", 1)]
    assert not lin(*write, (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert lin(*write, (1, "invoke", "read", None), (1, "ok", "read", None))


def test_reads_with_unknown_outcome_constrain_nothing() -> None:
    assert lin((0, "invoke", "read", None), (0, "info", "read", 3))
    assert lin((0, "invoke", "read", None), (0, "fail", "read", 3))


def test_cas_ok_swaps_only_when_the_value_was_expected() -> None:
    write = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]
    cas = [(1, "invoke", "cas", [1, 2]), (1, "ok", "cas", [1, 2])]
    read = (2, "invoke", "read", None)
    assert lin(*write, *cas, read, (2, "ok", "read", 2))
    assert not lin(*write, *cas, read, (2, "ok", "read", 1))
    wrong = [(1, "invoke", "cas", [3, 2]), (1, "ok", "cas", [3, 2])]
    assert not lin(*write, *wrong)


def test_a_failed_cas_had_no_effect() -> None:
    write = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]
    cas = [(1, "invoke", "cas", [1, 2]), (1, "fail", "cas", [1, 2])]
    read = (2, "invoke", "read", None)
    assert not lin(*write, *cas, read, (2, "ok", "read", 2))
    assert lin(*write, *cas, read, (2, "ok", "read", 1))


def test_strict_mode_reads_a_failed_cas_as_an_observation() -> None:
    write = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]
    cas = [(1, "invoke", "cas", [1, 2]), (1, "fail", "cas", [1, 2])]
    # the register held 1 throughout, so the comparison could not have failed
    assert lin(*write, *cas)
    assert not lin(*write, *cas, strict=True)
    other = [(1, "invoke", "cas", [3, 2]), (1, "fail", "cas", [3, 2])]
    assert lin(*write, *other, strict=True)


def test_an_info_cas_may_or_may_not_swap() -> None:
    write = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]
    cas = [(1, "invoke", "cas", [1, 2]), (1, "info", "cas", [1, 2])]
    read = (2, "invoke", "read", None)
    assert lin(*write, *cas, read, (2, "ok", "read", 2))
    assert lin(*write, *cas, read, (2, "ok", "read", 1))
    assert not lin(*write, *cas, read, (2, "ok", "read", 3))


def test_appends_concatenate_in_linearization_order() -> None:
    a = [(0, "invoke", "append", "a", "k"), (0, "ok", "append", "a", "k")]
    b = [(1, "invoke", "append", "b", "k"), (1, "ok", "append", "b", "k")]
    read = (2, "invoke", "read", None, "k")
    assert lin(*a, *b, read, (2, "ok", "read", "ab", "k"))
    assert not lin(*a, *b, read, (2, "ok", "read", "ba", "k"))
    assert not lin(*a, *b, read, (2, "ok", "read", "a", "k"))
    concurrent = [a[0], b[0], a[1], b[1]]
    assert lin(*concurrent, read, (2, "ok", "read", "ba", "k"))
    assert lin(*concurrent, read, (2, "ok", "read", "ab", "k"))


def test_nothing_appended_reads_as_null_or_empty() -> None:
    for empty in (None, ""):
        assert lin((0, "invoke", "read", None, "k"), (0, "ok", "read", empty, "k"))
    a = [(0, "invoke", "append", "a", "k"), (0, "ok", "append", "a", "k")]
    assert not lin(*a, (1, "invoke", "read", None, "k"), (1, "ok", "read", "", "k"))


def test_keys_are_checked_independently_and_the_failing_key_is_named() -> None:
    events = h(
        (0, "invoke", "write", 1, "a"),
        (0, "ok", "write", 1, "a"),
        (1, "invoke", "read", None, "b"),
        (1, "ok", "read", None, "b"),
        (1, "invoke", "read", None, "a"),
        (1, "ok", "read", 1, "a"),
        (2, "invoke", "read", None, "b"),
        (2, "ok", "read", 1, "b"),
    )
    result = check_linearizable(events)
    assert not result.linearizable
    assert result.key == "b"
    assert result.checked_keys == 2
    assert check_linearizable(events[:6]).linearizable


def test_json_values_compare_structurally_and_booleans_are_not_integers() -> None:
    write = [(0, "invoke", "write", {"x": [1, 2]}), (0, "ok", "write", {"x": [1, 2]})]
    assert lin(*write, (1, "invoke", "read", None), (1, "ok", "read", {"x": [1, 2]}))
    assert not lin(*write, (1, "invoke", "read", None), (1, "ok", "read", {"x": [2, 1]}))
    flag = [(0, "invoke", "write", True), (0, "ok", "write", True)]
    assert not lin(*flag, (1, "invoke", "read", None), (1, "ok", "read", 1))


def test_an_empty_history_is_linearizable() -> None:
    result = check_linearizable([])
    assert result.linearizable
    assert result.checked_keys == 0
    assert result.counterexample == []


# ----------------------------------------------------------------- counterexamples


def assert_one_minimal(result: LinearizabilityResult) -> None:
    """The counterexample fails with its context, and weakening any one op fixes it."""
    assert not result.linearizable
    cex, context = result.counterexample, result.context
    assert cex, "a failure must come with a counterexample"
    assert result.minimal
    assert not is_linearizable(witness_ops(cex, context))
    for k, op in enumerate(cex):
        rest = cex[:k] + cex[k + 1 :]
        assert is_linearizable(witness_ops(rest, [*context, op])), op.describe()


def test_a_stale_read_is_explained_by_the_write_it_missed() -> None:
    result = check_linearizable(
        parse_history(
            [
                '{"process": 0, "type": "invoke", "f": "write", "value": 1}',
                '{"process": 0, "type": "ok", "f": "write", "value": 1}',
                '{"process": 0, "type": "invoke", "f": "write", "value": 2}',
                '{"process": 0, "type": "ok", "f": "write", "value": 2}',
                '{"process": 1, "type": "invoke", "f": "read", "value": null}',
                '{"process": 1, "type": "ok", "f": "read", "value": 2}',
                '{"process": 1, "type": "invoke", "f": "read", "value": null}',
                '{"process": 1, "type": "ok", "f": "read", "value": 1}',
            ]
        )
    )
    assert_one_minimal(result)
    # Two 1-minimal explanations exist: {write 2, read 1} and {read 2, read 1} (the writes
    # are ordered, so once 2 was read, 1 cannot be). Shrinking finds the latter first.
    assert [(op.f, op.call_line) for op in result.counterexample] == [("read", 5), ("read", 7)]
    assert [op.call_line for op in result.context] == [1, 3]
    text = result.describe()
    assert "NOT linearizable" in text
    assert "process 1: read -> 2  [ok]  (lines 5-6)" in text
    assert "process 1: read -> 1  [ok]  (lines 7-8)" in text
    assert "2 other write/cas/append" in text


def test_a_read_of_a_value_nobody_wrote_is_its_own_counterexample() -> None:
    events = h(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 9),
    )
    result = check_linearizable(events)
    assert_one_minimal(result)
    assert [op.f for op in result.counterexample] == ["read"]


def test_without_shrinking_the_whole_failing_key_is_reported() -> None:
    events = mutate_history(generate_history(5, operations=60, clients=4, keys=2), 5)
    result = check_linearizable(events, minimize=False)
    assert not result.linearizable
    key_ops = [op for op in _ops(events) if op.key == result.key]
    assert {op.id for op in result.counterexample} <= {op.id for op in key_ops}
    assert len(result.counterexample) >= len([op for op in key_ops if op.outcome == "ok"])
    assert "shrinking was off" in result.explanation


def _ops(events: Sequence[HistoryEvent]) -> list[HistoryOp]:
    from tejido.check.history import pair_operations

    return pair_operations(events)


@pytest.mark.parametrize("seed", range(8))
def test_counterexamples_of_broken_generated_histories_are_one_minimal(seed: int) -> None:
    history = generate_history(seed, operations=300, clients=6, keys=3, info_rate=0.05)
    assert check_linearizable(history).linearizable
    result = check_linearizable(mutate_history(history, seed))
    assert_one_minimal(result)


# ----------------------------------------------------------------- recorded histories


def _expected_verdicts() -> list[object]:
    listing = DATA / "expected.txt"
    if not listing.is_file():
        return [pytest.param("", "", id="shared-histories-missing")]
    rows = [line.split() for line in listing.read_text().splitlines() if line.strip()]
    return [pytest.param(name, verdict, id=name) for name, verdict in rows]


def _require_data() -> None:
    if not (DATA / "expected.txt").is_file():
        pytest.fail(
            f"the shared histories are missing: expected {DATA.resolve()}/expected.txt "
            "(the shared folder must sit beside the repository clone)"
        )


@pytest.mark.parametrize(("name", "verdict"), _expected_verdicts())
def test_agrees_with_every_recorded_verdict(name: str, verdict: str) -> None:
    _require_data()
    assert verdict in ("linearizable", "not-linearizable"), verdict
    result = check_linearizable(read_history(DATA / name))
    assert result.linearizable == (verdict == "linearizable"), result.describe()
    if not result.linearizable:
        assert_one_minimal(result)


def test_strict_failed_cas_reading_gives_the_same_verdicts_on_the_recorded_data() -> None:
    _require_data()
    rows = [line.split() for line in (DATA / "expected.txt").read_text().splitlines()]
    assert len(rows) >= 50
    for name, verdict in rows:
        strict = check_linearizable(read_history(DATA / name), strict_fail_cas=True, minimize=False)
        assert strict.linearizable == (verdict == "linearizable"), name


# ----------------------------------------------------------------- generator and search


def test_generated_histories_are_deterministic_and_linearizable() -> None:
    first = generate_history(11, operations=500, clients=10, keys=4, info_rate=0.05)
    assert history_text(first) == history_text(
        generate_history(11, operations=500, clients=10, keys=4, info_rate=0.05)
    )
    assert history_text(first) != history_text(generate_history(12, operations=500, clients=10))
    ops = _ops(first)
    assert len(ops) == 500
    assert {op.outcome for op in ops} == {"ok", "fail", "info"}
    assert {op.f for op in ops} == {"read", "write", "cas", "append"}
    assert check_linearizable(first).linearizable
    assert check_linearizable(parse_history(history_text(first).splitlines())).linearizable


def test_generated_register_history_without_keys() -> None:
    events = generate_history(4, operations=200, clients=5, keys=0)
    assert all(event.key is None for event in events)
    result = check_operations(_ops(events))
    assert result.linearizable
    assert result.checked_keys == 1
    assert not check_linearizable(mutate_history(events, 1)).linearizable


def test_the_mutator_needs_a_read() -> None:
    with pytest.raises(ValueError, match="no ok read"):
        mutate_history(h((0, "invoke", "write", 1), (0, "ok", "write", 1)), 0)


def test_a_search_budget_gives_up_with_no_verdict() -> None:
    from tejido.check.linearizability import _model_ops

    events = generate_history(2, operations=300, clients=12, keys=0)
    model = _model_ops(_ops(events), strict_fail_cas=False)
    assert search(model) is True
    assert search(model, limit=5) is None


def test_a_configuration_budget_raises_instead_of_guessing() -> None:
    from tejido.check import CheckGaveUp

    events = mutate_history(generate_history(0, operations=400, clients=5, keys=0), 0)
    with pytest.raises(CheckGaveUp, match=r"gave up on the register after 10 search"):
        check_linearizable(events, max_configurations=10)
    assert not check_linearizable(events, max_configurations=10**6).linearizable
