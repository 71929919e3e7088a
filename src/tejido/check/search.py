"""The search for one key: Wing & Gong's algorithm with Lowe's memoization.

The operations of one key are laid out as a doubly linked list of call and return entries in
real-time order (as porcupine does). Walking the list from its head, every call entry met
before the first return entry (the *barrier*) belongs to an operation that could take effect
next. The search tries one, applies it to the model state, removes ("lifts") its two entries
from the list and starts again from the head; when no candidate works it undoes the last
choice and tries the one after it. A configuration is the set of linearized operations (a
Python int used as a bitmask) and the model state; every configuration reached is memoized,
so no configuration is explored twice (Lowe 2017). The history is linearizable when every
operation with a known outcome has been linearized.

Operations with an unknown outcome (``info``) never return: they sit in a separate list,
sorted by call position, and are candidates whenever they were invoked before the barrier.
They are tried only after every ordinary candidate (an operation that must take effect is a
better first guess than one that may never), and two refinements keep their combinations in
check:

- among unknown operations with the same kind and arguments only the earliest-invoked one
  not yet used is tried (the others are interchangeable with it), and one that would leave
  the state unchanged is not tried at all (not using it is at least as good);
- the memo keeps, for each (linearized known-outcome set, state), the sets of unknown
  operations used to reach it, and skips a configuration whose used set contains one of
  those: it has the same obligations and fewer options left, so it fails too.

*Optional* operations (``ModelOp.optional``; only the counterexample shrinker makes them)
may take effect inside their interval or not at all: at its return entry an optional
operation that has not been linearized can instead be dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tejido.check.models import (
    APPEND,
    CAS,
    CAS_FAIL,
    ILLEGAL,
    INFINITY,
    MAYBE_CAS,
    READ,
    WRITE,
    ModelOp,
)

__all__ = ["SearchStats", "is_linearizable", "search"]

_NONE: Final = -1
_READS_CHECKED: Final = 3  # reads whose values an append must be a prefix of
_NO_CHAIN: Final = object()  # not in the middle of a run of unknown-outcome ops


class SearchStats:
    """Counters accumulated over searches (for benchmarks and reports)."""

    __slots__ = ("configurations", "operations", "searches")

    def __init__(self) -> None:
        self.configurations = 0
        self.operations = 0
        self.searches = 0


class _OverBudget(Exception):
    """The search explored as many configurations as it was allowed to."""


def _dominated(seen: list[int], used: int) -> bool:
    """Whether a memoized used-set is a subset of `used` (then `used` has no more options)."""
    for old in seen:  # noqa: SIM110 (a plain loop is faster than any() on the hot path)
        if old & used == old:
            return True
    return False


def _remember(
    memo: dict[tuple[int, object] | tuple[int, object, object], list[int]],
    config: tuple[int, object] | tuple[int, object, object],
    used: int,
) -> bool:
    """Record a configuration; False if it (or one that dominates it) was seen before."""
    seen = memo.get(config)
    if seen is None:
        memo[config] = [used]
        return True
    if _dominated(seen, used):
        return False
    seen.append(used)
    return True


def is_linearizable(ops: Sequence[ModelOp], stats: SearchStats | None = None) -> bool:
    """Whether the operations (all on one key) have a linearization from the absent state."""
    verdict = search(ops, stats)
    return bool(verdict)


def search(
    ops: Sequence[ModelOp], stats: SearchStats | None = None, limit: int | None = None
) -> bool | None:
    """`is_linearizable`, or ``None`` once `limit` configurations were explored."""
    counter = SearchStats()
    try:
        verdict: bool | None = _search(ops, counter, limit if limit is not None else -1)
    except _OverBudget:
        verdict = None
        counter.configurations = limit or 0
    if stats is not None:
        stats.configurations += counter.configurations
        stats.operations += len(ops)
        stats.searches += 1
    return verdict


def _search(ops: Sequence[ModelOp], counter: SearchStats, budget: int) -> bool:
    finite = [i for i, op in enumerate(ops) if op.ret < INFINITY]
    unknown = sorted(
        (i for i, op in enumerate(ops) if op.ret >= INFINITY), key=lambda i: ops[i].call
    )

    # Entries 0..count-1: calls and returns of the finite ops in time order; head = count.
    timeline = sorted([(ops[i].call, 0, i) for i in finite] + [(ops[i].ret, 1, i) for i in finite])
    count = len(timeline)
    head = count
    entry_op = [i for _pos, _is_ret, i in timeline]
    entry_pos = [pos for pos, _is_ret, _i in timeline]
    is_return = [is_ret == 1 for _pos, is_ret, _i in timeline]
    match = [_NONE] * count  # call entry -> its return entry, and return entry -> its call
    return_of: dict[int, int] = {}
    for e in range(count - 1, -1, -1):
        if is_return[e]:
            return_of[entry_op[e]] = e
        else:
            match[e] = return_of[entry_op[e]]
            match[match[e]] = e
    nxt = [*range(1, count + 1), _NONE]
    prv = [head, *range(count)]
    if count:
        nxt[count - 1] = _NONE
        nxt[head] = 0
    else:
        nxt[head] = _NONE

    kind = [op.kind for op in ops]
    arg_a = [op.a for op in ops]
    arg_b = [op.b for op in ops]
    optional = [op.optional for op in ops]
    # Known-outcome ops and unknown ones are numbered apart: `done` is the bitmask of
    # resolved (linearized, or dropped if optional) finite ops by position in `finite`,
    # `used` the bitmask of linearized unknown ops by position in `unknown`.
    bit = [0] * len(ops)
    for position, i in enumerate(finite):
        bit[i] = 1 << position

    n_unknown = len(unknown)
    unknown_call = [ops[i].call for i in unknown]
    same_before: list[int] = []  # for unknown op j: bits of earlier interchangeable ones
    classes: dict[tuple[int, object, object], int] = {}
    for j, i in enumerate(unknown):
        cls = (kind[i], arg_a[i], arg_b[i])
        same_before.append(classes.get(cls, 0))
        classes[cls] = classes.get(cls, 0) | (1 << j)

    # On a key with appends only, the state only grows, so it must stay a prefix of what
    # every read still to be linearized returned; the next few are checked on each append.
    append_only = all(k in (READ, APPEND) for k in kind) and APPEND in kind
    # Without appends, a run of unknown ops only matters if it enables the known-outcome op
    # that follows it: one that was illegal in the state before the run (see the module
    # docstring). `chain` is that state while such a run is being built.
    jit = APPEND not in kind
    chain: object = _NO_CHAIN

    memo: dict[tuple[int, object] | tuple[int, object, object], list[int]] = {}
    configurations = 0
    state: object = None
    done = 0
    used = 0
    # A choice: a call entry (linearized), a return entry (optional op dropped) or ~j
    # (unknown op j linearized), with the configuration before it.
    stack: list[tuple[int, object, int, int, object]] = []
    e = nxt[head]
    next_unknown = -1  # >= 0: e is the barrier; resume unknown candidates from here
    result: bool = e == _NONE  # nothing with a known outcome: trivially linearizable

    while e != _NONE:
        if next_unknown < 0:
            # Scan the candidates before the barrier.
            while True:
                if is_return[e]:
                    i = entry_op[e]
                    if not optional[i] or chain is not _NO_CHAIN:
                        break
                    grown = done | bit[i]
                    if not _remember(memo, (grown, state), used):
                        break
                    new = state
                    c = match[e]
                else:
                    i = entry_op[e]
                    k = kind[i]
                    if k == READ:
                        new = state if state == arg_a[i] else ILLEGAL
                    elif k == WRITE:
                        new = arg_a[i]
                    elif k == CAS:
                        new = arg_b[i] if state == arg_a[i] else ILLEGAL
                    elif k == CAS_FAIL:
                        new = state if state != arg_a[i] else ILLEGAL
                    else:
                        new = _slow_step(k, arg_a[i], arg_b[i], state)
                        if (
                            append_only
                            and isinstance(new, str)
                            and not _reads_allow(
                                new, nxt[head], nxt, is_return, entry_op, arg_a, kind
                            )
                        ):
                            new = ILLEGAL
                    if new is ILLEGAL or (
                        chain is not _NO_CHAIN
                        and _slow_step(k, arg_a[i], arg_b[i], chain) is not ILLEGAL
                    ):
                        e = nxt[e]
                        continue
                    grown = done | bit[i]
                    config = (grown, new)
                    seen = memo.get(config)
                    if seen is None:
                        memo[config] = [used]
                    elif seen[0] & used == seen[0] or _dominated(seen, used):
                        e = nxt[e]
                        continue
                    else:
                        seen.append(used)
                    c = e
                configurations += 1
                if configurations == budget:
                    raise _OverBudget
                stack.append((e, state, done, used, chain))
                state = new
                done = grown
                chain = _NO_CHAIN
                # lift the call entry c and its return entry
                p, n = prv[c], nxt[c]
                nxt[p] = n
                prv[n] = p
                r = match[c]
                p, n = prv[r], nxt[r]
                nxt[p] = n
                if n != _NONE:
                    prv[n] = p
                e = nxt[head]
                if e == _NONE:
                    break
            if e == _NONE:
                result = True
                break
            next_unknown = 0
        # e is the barrier: try unknown-outcome ops invoked before it.
        barrier = entry_pos[e]
        j = next_unknown
        next_unknown = -1
        advanced = False
        while j < n_unknown and unknown_call[j] < barrier:
            mask = 1 << j
            if used & mask or (used & same_before[j]) != same_before[j]:
                j += 1
                continue
            i = unknown[j]
            new = _slow_step(kind[i], arg_a[i], arg_b[i], state)
            if (
                append_only
                and isinstance(new, str)
                and not _reads_allow(new, nxt[head], nxt, is_return, entry_op, arg_a, kind)
            ):
                new = ILLEGAL
            start = state if chain is _NO_CHAIN else chain
            if (
                new is not ILLEGAL
                and new != state
                and new != start
                and _remember(memo, (done, new, start) if jit else (done, new), used | mask)
            ):
                configurations += 1
                if configurations == budget:
                    raise _OverBudget
                stack.append((~j, state, done, used, chain))
                state = new
                used |= mask
                if jit:
                    chain = start
                advanced = True
                break
            j += 1
        if advanced:
            e = nxt[head]
            continue
        # Nothing more to try here: undo the last choice and try the one after it.
        if not stack:
            break
        top, state, done, used, chain = stack.pop()
        if top < 0:
            # The scan never passes a return entry, so the barrier is the first one.
            next_unknown = ~top + 1
            e = nxt[head]
            while not is_return[e]:
                e = nxt[e]
            continue
        c = top if not is_return[top] else match[top]
        r = match[c]
        p, n = prv[r], nxt[r]
        nxt[p] = r
        if n != _NONE:
            prv[n] = r
        nxt[prv[c]] = c
        prv[nxt[c]] = c
        if is_return[top]:
            # the drop of an optional op is undone: its return entry is now the barrier
            e = top
            next_unknown = 0
        else:
            e = nxt[top]

    counter.configurations = configurations
    return result


def _slow_step(k: int, a: object, b: object, state: object) -> object:
    """The model step for kinds the hot loop does not inline (same rules as `models.step`)."""
    if k == MAYBE_CAS:
        return b if state == a else state
    if k == APPEND:
        if state is None:
            return a if a != "" else None
        if isinstance(state, str) and isinstance(a, str):
            return state + a
        return ILLEGAL
    if k == WRITE:
        return a
    if k == CAS:
        return b if state == a else ILLEGAL
    if k == READ:
        return state if state == a else ILLEGAL
    if k == CAS_FAIL:
        return state if state != a else ILLEGAL
    return ILLEGAL


def _reads_allow(
    state: str,
    first: int,
    nxt: list[int],
    is_return: list[bool],
    entry_op: list[int],
    arg_a: list[object],
    kind: list[int],
) -> bool:
    """Whether the next few reads still to be linearized (in return order) extend `state`."""
    e = first
    found = 0
    while e != _NONE:
        if is_return[e]:
            i = entry_op[e]
            if kind[i] == READ:
                value = arg_a[i]
                if not isinstance(value, str) or not value.startswith(state):
                    return False
                found += 1
                if found == _READS_CHECKED:
                    return True
        e = nxt[e]
    return True
