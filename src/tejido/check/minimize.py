"""Shrinking a failing key's history to a small counterexample that still proves the failure.

Removing operations is not a safe way to shrink: a read of 3 alone "cannot be linearized"
once the write of 3 is removed, which says nothing about the real history. The shrinking
here only ever *weakens* the history, and every weakening preserves linearizability (if the
original history is linearizable, so is the weakened one). So when the weakened history is
still not linearizable, neither is the original, and the operations left at full strength
are a genuine explanation. The weakenings are:

- cutting the history at a completion: operations invoked later are removed, operations in
  flight at the cut lose their outcome (they may or may not have taken effect);
- removing a read (or a failed cas, which only observes);
- making a write, cas or append *optional*: it took effect inside its interval, as
  recorded, or not at all.

`minimize_failure` first finds the earliest cut that still fails (where the failing search
got stuck; else by bisection, as failing is monotone in the cut), then tries keeping only the
last 1, 2, 4, ... operations before the cut at full strength, then weakens the remaining
full-strength operations in chunks of a half, a quarter, ... one. The result is 1-minimal:
weakening any one of its full-strength operations makes the history linearizable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from tejido.check.history import HistoryOp
from tejido.check.models import CAS_FAIL, INFINITY, READ, ModelOp, model_op
from tejido.check.search import SearchStats, search

__all__ = ["CHECK_LIMIT", "TOTAL_LIMIT", "Witness", "minimize_failure", "weaken", "witness_ops"]

CHECK_LIMIT: Final = 100_000
"""Configurations one trial search of the shrinker may explore (at least)."""
TOTAL_LIMIT: Final = 1_000_000
"""Configurations all trial searches of one shrinking may explore together (at least)."""


class Witness(msgspec.Struct, frozen=True, gc=False):
    """A failing sub-history: ``strong`` ops as recorded, ``weak`` ones made optional.

    Both are index lists (ascending) into the operations given to `minimize_failure`.
    ``minimal`` is false when a search budget ran out, so 1-minimality is not established.
    """

    strong: list[int]
    weak: list[int]
    minimal: bool = True


def weaken(op: ModelOp) -> ModelOp | None:
    """The op made optional (it may not have taken effect), or ``None`` for an observation.

    Reads and failed cas operations only observe, so an optional one constrains nothing and
    is dropped. Operations whose outcome is already unknown stay as they are.
    """
    if op.kind in (READ, CAS_FAIL):
        return None
    if op.ret >= INFINITY or op.optional:
        return op
    return msgspec.structs.replace(op, optional=True)


def build(ops: Sequence[ModelOp], strong: Sequence[int], weak: Sequence[int]) -> list[ModelOp]:
    """The history with `strong` ops as recorded and `weak` ops weakened, in call order."""
    chosen = [ops[i] for i in strong]
    for i in weak:
        weakened = weaken(ops[i])
        if weakened is not None:
            chosen.append(weakened)
    chosen.sort(key=lambda op: op.call)
    return chosen


def minimize_failure(
    ops: Sequence[ModelOp],
    *,
    check_limit: int = CHECK_LIMIT,
    total_limit: int = TOTAL_LIMIT,
    hint: int | None = None,
) -> Witness:
    """A failing weakening of `ops` (a key's operations, which must fail), 1-minimal unless
    a budget ran out.

    Each trial search may explore `check_limit` configurations (a trial that runs out
    counts as "not shown to fail", so its weakening is not taken), and all trials together
    `total_limit`; after that the witness so far is returned with ``minimal=False``.
    ``hint`` is where the failing search got stuck (`SearchStats.furthest`), if known.
    """
    spent = 0
    exact = True

    def fails(strong: Sequence[int], weak: Sequence[int]) -> bool:
        nonlocal spent, exact
        if spent >= total_limit:
            exact = False
            return False
        stats = SearchStats()
        verdict = search(build(ops, strong, weak), stats, limit=check_limit)
        spent += stats.configurations
        if verdict is None:
            exact = False
        return verdict is False

    def cut(at: int) -> tuple[list[int], list[int]]:
        strong = [i for i, op in enumerate(ops) if op.ret <= at]
        weak = [i for i, op in enumerate(ops) if op.call < at < op.ret]
        return strong, weak

    # 1. The earliest cut (at a completion) that still fails: where the failing search got
    #    stuck, if it says so, else by bisection (failing is monotone in the cut).
    cuts = sorted({op.ret for op in ops if op.ret < INFINITY})
    strong = [i for i, op in enumerate(ops) if op.ret < INFINITY]
    weak = [i for i, op in enumerate(ops) if op.ret >= INFINITY]
    # (Look-ahead pruning on append-only keys can stop the search a few cuts early.)
    guesses = cuts[cuts.index(hint) : cuts.index(hint) + 4] if hint in cuts else []
    found = next((at for at in guesses if fails(*cut(at))), None)
    if found is not None:
        strong, weak = cut(found)
    elif cuts:
        low, high = -1, len(cuts) - 1
        last = cut(cuts[high])
        if fails(*last):
            strong, weak = last
            while high - low > 1:
                middle = (low + high) // 2
                candidate = cut(cuts[middle])
                if fails(*candidate):
                    high = middle
                    strong, weak = candidate
                else:
                    low = middle

    # 1b. The failure is usually local: keep only the 1, 2, 4, ... ops that completed last
    #     strong, until that alone fails.
    latest = sorted(strong, key=lambda i: ops[i].ret, reverse=True)
    width = 1
    while width < len(latest):
        if fails(latest[:width], weak + latest[width:]):
            strong, weak = latest[:width], weak + latest[width:]
            break
        width *= 2

    # 2. Weaken chunks of strong ops while the history still fails. Weakening is monotone,
    #    so one final pass with single ops leaves a 1-minimal result.
    chunk = max(1, len(strong) // 2)
    while True:
        start = 0
        while start < len(strong):
            keep = strong[:start] + strong[start + chunk :]
            loosen = strong[start : start + chunk]
            if keep and fails(keep, weak + loosen):
                strong = keep
                weak = weak + loosen
            else:
                start += chunk
        if chunk == 1:
            break
        chunk = max(1, chunk // 2)
    useful = sorted(i for i in weak if weaken(ops[i]) is not None)
    return Witness(strong=sorted(strong), weak=useful, minimal=exact)


def witness_ops(
    strong: Sequence[HistoryOp],
    weak: Sequence[HistoryOp],
    *,
    strict_fail_cas: bool = False,
) -> list[ModelOp]:
    """The search operations of a counterexample: `strong` as recorded, `weak` optional.

    For checking a reported counterexample (`LinearizabilityResult.counterexample` with its
    ``context``) again, or a variant of it.
    """
    chosen: list[ModelOp] = []
    for index, op in enumerate(strong):
        converted = model_op(op, index, strict_fail_cas=strict_fail_cas)
        if converted is not None:
            chosen.append(converted)
    for index, op in enumerate(weak, start=len(strong)):
        converted = model_op(op, index, strict_fail_cas=strict_fail_cas)
        weakened = weaken(converted) if converted is not None else None
        if weakened is not None:
            chosen.append(weakened)
    chosen.sort(key=lambda op: op.call)
    return chosen
