"""The optimized checker against a brute-force oracle on small random histories.

The oracle knows nothing of the search: it tries every order of the operations that
respects real time (and, for operations whose outcome is unknown, every choice of whether
they happened), applying the register rules directly. It checks the whole history at once,
so it also tests the per-key decomposition.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tejido.check import HistoryEvent, check_linearizable
from tejido.check.history import HistoryOp, pair_operations
from tejido.check.minimize import witness_ops
from tejido.check.search import is_linearizable

INFINITE = 10**9
ILLEGAL = object()


class Op:
    """One operation as the oracle sees it."""

    def __init__(self, op: HistoryOp, *, optional: bool) -> None:
        self.op = op
        unknown = op.outcome == "info" or op.ret is None
        self.call = op.call
        self.ret = INFINITE if unknown or op.ret is None else op.ret
        # optional: may be left out; if placed it must respect its return time
        self.optional = optional or unknown
        self.maybe_cas_fails = unknown  # an info cas may take effect as a failed comparison


def _norm(value: object) -> object:
    if value == "":
        return None
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value


def _apply(item: Op, state: dict[object, object], strict: bool) -> object:
    """The key's new value, or ILLEGAL."""
    op = item.op
    current = state.get(op.key)
    if op.f == "read":
        return current if current == _norm(op.result) else ILLEGAL
    if op.f == "write":
        return _norm(op.value)
    if op.f == "append":
        text = current if isinstance(current, str) else ""
        if current is not None and not isinstance(current, str):
            return ILLEGAL
        return _norm(text + str(op.value))
    assert isinstance(op.value, list)
    expected, new = _norm(op.value[0]), _norm(op.value[1])
    if op.outcome == "fail":  # only present in strict mode
        return current if current != expected else ILLEGAL
    if current == expected:
        return new
    return current if item.maybe_cas_fails else ILLEGAL


def oracle(
    ops: Sequence[HistoryOp],
    *,
    strict: bool = False,
    optional: Sequence[HistoryOp] = (),
) -> bool:
    items = []
    for op in ops:
        if op.outcome == "fail" and not (strict and op.f == "cas"):
            continue
        if op.f == "read" and op.outcome != "ok":
            continue
        items.append(Op(op, optional=False))
    for op in optional:
        if op.f == "read" or op.outcome == "fail":
            continue
        items.append(Op(op, optional=True))

    def search(state: dict[object, object], left: list[Op]) -> bool:
        if all(item.optional for item in left):
            return True
        for item in left:
            # every operation that returned before `item` was invoked must come first
            if any(o is not item and not o.optional and o.ret < item.call for o in left):
                continue
            new = _apply(item, state, strict)
            if new is ILLEGAL:
                continue
            # optional operations that returned before `item` was invoked can no longer
            # be placed after it: they did not happen
            rest = [o for o in left if o is not item and not (o.optional and o.ret < item.call)]
            if search({**state, item.op.key: new}, rest):
                return True
        return False

    return search({}, items)


REGISTER_VALUES = st.sampled_from([None, 0, 1, 2])
APPEND_VALUES = st.sampled_from(["a", "b"])
APPEND_READS = st.sampled_from([None, "", "a", "b", "ab", "ba", "aa"])


@st.composite
def histories(draw: st.DrawFn) -> list[HistoryEvent]:
    """Up to 7 ops by up to 3 processes over one or two keys (key "y" takes appends)."""
    n_ops = draw(st.integers(1, 7))
    processes = draw(st.integers(1, 3))
    key_sets: list[list[str | None]] = [[None], ["x"], ["x", "y"], ["y"]]
    keys = draw(st.sampled_from(key_sets))
    events: list[HistoryEvent] = []
    outstanding: dict[int, HistoryEvent] = {}
    invoked = 0
    while invoked < n_ops or outstanding:
        if invoked >= n_ops and draw(st.integers(0, 5)) == 0:
            break  # leave the rest without completion
        choices = range(processes) if invoked < n_ops else sorted(outstanding)
        process = draw(st.sampled_from(list(choices)))
        call = outstanding.pop(process, None)
        if call is None:
            key = draw(st.sampled_from(keys))
            if key == "y":
                f = draw(st.sampled_from(["read", "append"]))
                value: object = draw(APPEND_VALUES) if f == "append" else None
            else:
                f = draw(st.sampled_from(["read", "write", "cas"]))
                if f == "write":
                    value = draw(REGISTER_VALUES.filter(lambda v: v is not None))
                elif f == "cas":
                    value = [draw(REGISTER_VALUES), draw(st.sampled_from([0, 1, 2]))]
                else:
                    value = None
            call = HistoryEvent(process, "invoke", f, key, value)
            outstanding[process] = call
            invoked += 1
            events.append(call)
            continue
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
        result = call.value
        if call.f == "read":
            result = draw(APPEND_READS if call.key == "y" else REGISTER_VALUES)
        events.append(HistoryEvent(process, outcome, call.f, call.key, result))
    return events


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(histories(), st.booleans())
def test_checker_agrees_with_brute_force(events: list[HistoryEvent], strict: bool) -> None:
    ops = pair_operations(events)
    expected = oracle(ops, strict=strict)
    result = check_linearizable(events, strict_fail_cas=strict)
    assert result.linearizable == expected, [op.describe() for op in ops]


@SETTINGS
@given(histories())
def test_counterexamples_are_genuine_and_one_minimal_by_the_oracle(
    events: list[HistoryEvent],
) -> None:
    result = check_linearizable(events)
    if result.linearizable:
        assert result.counterexample == []
        return
    cex, context = result.counterexample, result.context
    assert cex
    assert {op.key for op in cex} == {result.key}
    assert not oracle(cex, optional=context)
    assert not is_linearizable(witness_ops(cex, context))
    for k, op in enumerate(cex):
        rest = cex[:k] + cex[k + 1 :]
        assert oracle(rest, optional=[*context, op]), op.describe()
