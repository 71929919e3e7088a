"""Linearizability checking of key-value and register histories.

`check_linearizable` splits a history by key (linearizability is compositional: a history
is linearizable exactly when each key's sub-history is; Herlihy & Wing 1990, and Horn &
Kroening 2015 for P-compositionality), runs the memoized Wing & Gong search of
`tejido.check.search` on each key, and, for the first key that fails, shrinks the key's
history with `tejido.check.minimize` to a 1-minimal counterexample.

A counterexample is a list of operations kept exactly as recorded, plus a *context*: other
write, cas and append operations of the key that are treated as optional (each took effect
inside its interval, as recorded, or not at all; an ``info`` one at any moment after its
invocation, or never). No linearization explains the counterexample together with its
context, and weakening any one operation of the counterexample (dropping a read, or making
a write optional) makes one exist.

See ``docs/checker.md`` for the semantics of ``fail`` and ``info`` outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tejido.check.history import HistoryEvent, HistoryOp, pair_operations
from tejido.check.minimize import CHECK_LIMIT, TOTAL_LIMIT, minimize_failure
from tejido.check.models import ModelOp, model_op
from tejido.check.search import SearchStats, search
from tejido.core.errors import TejidoError

__all__ = [
    "CheckGaveUp",
    "LinearizabilityResult",
    "check_linearizable",
    "check_operations",
    "split_by_key",
]


class CheckGaveUp(TejidoError):
    """The search for one key explored its allowed number of configurations: no verdict.

    Only raised when `check_linearizable` is given ``max_configurations``.
    """

    def __init__(self, key: str | None, configurations: int) -> None:
        where = f"key {key!r}" if key is not None else "the register"
        super().__init__(
            f"gave up on {where} after {configurations} search configurations "
            "(too many operations with unknown outcome overlap to decide quickly)"
        )
        self.key = key
        self.configurations = configurations


@dataclass
class LinearizabilityResult:
    """The verdict on a history, with a minimal counterexample when it is not linearizable.

    ``key`` is the key whose sub-history failed (``None`` for a history without keys, or
    when linearizable). ``counterexample`` lists, in invocation order, operations of that
    key that cannot be linearized together, even treating each operation of ``context``
    (writes, cas and appends of the key) as optional. ``minimal`` is false when the
    shrinking ran out of budget (the counterexample is then genuine but maybe not
    1-minimal). ``operations`` counts the operations checked and ``configurations`` the
    search configurations explored (the shrinking's trial searches excluded).
    """

    linearizable: bool
    checked_keys: int
    counterexample: list[HistoryOp] = field(default_factory=list)
    key: str | None = None
    explanation: str = ""
    context: list[HistoryOp] = field(default_factory=list)
    operations: int = 0
    configurations: int = 0
    minimal: bool = True

    def describe(self) -> str:
        """A human-readable report: the verdict and, on failure, the counterexample."""
        keys = f"{self.checked_keys} key{'s' if self.checked_keys != 1 else ''}"
        if self.linearizable:
            return f"linearizable ({self.operations} operations on {keys})"
        where = f"key {self.key!r}" if self.key is not None else "the register"
        count = len(self.counterexample)
        lines = [
            f"NOT linearizable: {where} fails ({self.operations} operations in the history, "
            f"{keys} checked).",
            f"{'These' if count != 1 else 'This'} {count} operation{'s' if count != 1 else ''} "
            f"on {where} cannot be linearized:",
        ]
        lines.extend(f"  {op.describe()}" for op in self.counterexample)
        if self.explanation:
            lines.append(self.explanation)
        return "\n".join(lines)


def split_by_key(ops: Sequence[HistoryOp]) -> dict[str | None, list[HistoryOp]]:
    """Operations grouped by key, keys in order of first invocation, ops in call order."""
    groups: dict[str | None, list[HistoryOp]] = {}
    for op in ops:
        groups.setdefault(op.key, []).append(op)
    return groups


def check_linearizable(
    events: Sequence[HistoryEvent],
    *,
    minimize: bool = True,
    strict_fail_cas: bool = False,
    max_configurations: int | None = None,
) -> LinearizabilityResult:
    """Check a history (events in real-time order) for linearizability, key by key.

    Raises `BadInput` if the events do not pair up (see `pair_operations`). With
    ``minimize`` (the default) a failure comes with a 1-minimal counterexample; without it,
    the counterexample is every operation of the failing key. ``strict_fail_cas`` keeps
    each failed cas as an observation that the register did not hold the expected value at
    some moment of its interval (porcupine's reading); by default a failed cas is dropped
    like every failed operation (Knossos' reading).

    Deciding linearizability is NP-complete, and operations with an unknown outcome are
    what makes a history hard; ``max_configurations`` bounds the search per key, raising
    `CheckGaveUp` when it runs out (by default the search runs to the end).
    """
    return check_operations(
        pair_operations(events),
        minimize=minimize,
        strict_fail_cas=strict_fail_cas,
        max_configurations=max_configurations,
    )


def check_operations(
    ops: Sequence[HistoryOp],
    *,
    minimize: bool = True,
    strict_fail_cas: bool = False,
    max_configurations: int | None = None,
) -> LinearizabilityResult:
    """`check_linearizable` for operations already paired (e.g. by a simulator)."""
    groups = split_by_key(ops)
    stats = SearchStats()
    checked = 0
    for key, key_ops in groups.items():
        checked += 1
        model_ops = _model_ops(key_ops, strict_fail_cas)
        before = stats.configurations
        verdict = search(model_ops, stats, limit=max_configurations)
        if verdict is None:
            raise CheckGaveUp(key, stats.configurations - before)
        if verdict:
            continue
        minimal = False
        if minimize:
            # The shrinker's trial searches may each explore a few times what the failing
            # search needed (they run on weaker, so larger, histories).
            spent = stats.configurations - before
            witness = minimize_failure(
                model_ops,
                check_limit=max(CHECK_LIMIT, 2 * spent),
                total_limit=max(TOTAL_LIMIT, 4 * spent),
                hint=stats.furthest,
            )
            strong, weak, minimal = witness.strong, witness.weak, witness.minimal
        else:
            strong, weak = list(range(len(model_ops))), []
        counterexample = [key_ops[model_ops[i].source] for i in strong]
        context = [key_ops[model_ops[i].source] for i in weak]
        return LinearizabilityResult(
            linearizable=False,
            checked_keys=checked,
            counterexample=counterexample,
            key=key,
            explanation=_explain(counterexample, context, len(key_ops), minimize, minimal),
            context=context,
            operations=len(ops),
            configurations=stats.configurations,
            minimal=minimal,
        )
    return LinearizabilityResult(
        linearizable=True,
        checked_keys=checked,
        operations=len(ops),
        configurations=stats.configurations,
    )


def _model_ops(key_ops: Sequence[HistoryOp], strict_fail_cas: bool) -> list[ModelOp]:
    result: list[ModelOp] = []
    for index, op in enumerate(key_ops):
        converted = model_op(op, index, strict_fail_cas=strict_fail_cas)
        if converted is not None:
            result.append(converted)
    return result


def _explain(
    counterexample: Sequence[HistoryOp],
    context: Sequence[HistoryOp],
    key_total: int,
    minimized: bool,
    minimal: bool,
) -> str:
    if not minimized:
        return f"(All {key_total} operations of the key are shown; shrinking was off.)"
    text = (
        "No order of them respects both real time (an operation that completed before "
        "another was invoked comes first) and the semantics of a register"
    )
    if context:
        text += (
            f", whichever of the {len(context)} other write/cas/append operations of the key "
            "up to that point took effect (each inside its interval, an [info] one at any "
            "moment after its invocation) and whichever did not"
        )
    if minimal:
        text += (
            ". Weakening any one of them (dropping a read, or letting a write not take "
            "effect) removes the contradiction."
        )
    else:
        text += ". (Shrinking ran out of budget: a smaller counterexample may exist.)"
    if any(op.outcome == "fail" for op in counterexample):
        text += " A [fail] cas had no effect: its comparison did not hold."
    return text
