"""The search for one key: Wing & Gong's algorithm with Lowe's memoization.

The operations of one key are laid out as a doubly linked list of call and return entries in
real-time order (as porcupine does; see `tejido.check.layout`). Walking the list from its
head, every call entry met before the first return entry (the *barrier*) belongs to an
operation that could take effect next. The search tries one, applies it to the model state,
removes ("lifts") its two entries from the list and starts again from the head; when no
candidate works it undoes the last choice and tries the one after it. A configuration is the
set of linearized operations (a Python int used as a bitmask) and the model state; every
configuration reached is memoized, so none is explored twice (Lowe 2017). The history is
linearizable when every operation with a known outcome has been linearized.

Refinements, each of which only skips configurations that cannot succeed when others fail:

- *Reads first.* A read that is legal now (or, with the strict reading, a failed cas) is
  linearized at once without trying alternatives: it changes no state and no pending
  operation has to precede it, so any linearization can be rearranged to take it first.
- *Unknown outcomes.* Operations whose outcome is unknown (``info``) never return: they sit
  in a separate list, sorted by call, and are candidates once invoked before the barrier,
  after every ordinary candidate. Among interchangeable ones (same kind and arguments) only
  the earliest-invoked unused one is tried, and one that would not change the state is not
  tried at all. On keys without appends a run of unknown operations is only useful right
  before a known-outcome operation that was illegal before the run (any other run can be
  moved later or left out), so the search only builds such runs ("just in time").
- *Dominance.* The memo keeps, for each (linearized known-outcome set, state), the sets of
  unknown operations used to reach it, and skips a configuration whose used set contains
  one of those: it has the same obligations and fewer options left.
- *Append-only keys.* The value only grows, so an append must leave a prefix of what the
  next pending reads returned.

*Optional* operations (``ModelOp.optional``; only the counterexample shrinker makes them)
take effect inside their interval or not at all: at its return entry an optional operation
that has not been linearized can instead be dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tejido.check.layout import NONE, Layout, reads_allow
from tejido.check.models import APPEND, CAS, CAS_FAIL, ILLEGAL, READ, WRITE, ModelOp
from tejido.check.models import step as slow_step

__all__ = ["SearchStats", "is_linearizable", "search"]

_NO_CHAIN: Final = object()  # not in the middle of a run of unknown-outcome ops

Memo = dict[tuple[int, object] | tuple[int, object, object], list[int]]


class SearchStats:
    """Counters accumulated over searches (for benchmarks and reports).

    ``furthest`` is, for the last search that failed, the return position of the furthest
    operation it could not linearize (no explored configuration got past it), else -1.
    """

    __slots__ = ("configurations", "furthest", "operations", "searches")

    def __init__(self) -> None:
        self.configurations = 0
        self.operations = 0
        self.searches = 0
        self.furthest = -1


class _OverBudget(Exception):
    """The search explored as many configurations as it was allowed to."""


def _dominated(seen: list[int], used: int) -> bool:
    """Whether a memoized used-set is a subset of `used` (then `used` has no more options)."""
    for old in seen:  # noqa: SIM110 (a plain loop is faster than any() on the hot path)
        if old & used == old:
            return True
    return False


def _remember(
    memo: Memo, config: tuple[int, object] | tuple[int, object, object], used: int
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
    return bool(search(ops, stats))


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
        stats.furthest = counter.furthest if verdict is False else -1
        stats.configurations += counter.configurations
        stats.operations += len(ops)
        stats.searches += 1
    return verdict


def _search(ops: Sequence[ModelOp], counter: SearchStats, budget: int) -> bool:
    layout = Layout(ops)
    head = layout.head
    nxt, prv, match = layout.nxt, layout.prv, layout.match
    is_return, entry_op, entry_pos = layout.is_return, layout.entry_op, layout.entry_pos
    kind, arg_a, arg_b = layout.kind, layout.arg_a, layout.arg_b
    optional, bit = layout.optional, layout.bit
    unknown, unknown_call, same_before = layout.unknown, layout.unknown_call, layout.same_before
    n_unknown = len(unknown)
    append_only = APPEND in kind and all(k in (READ, APPEND) for k in kind)
    jit = APPEND not in kind

    memo: Memo = {}
    configurations = 0
    furthest = -1
    state: object = None
    done = 0  # bits of resolved known-outcome ops (linearized, or dropped if optional)
    used = 0  # bits of linearized unknown-outcome ops (by position in `unknown`)
    chain: object = _NO_CHAIN  # the state before the current run of unknown ops
    # A move: a call entry (linearized), a return entry (optional op dropped) or ~j (unknown
    # op j linearized); with the configuration before it and whether it was forced.
    stack: list[tuple[int, object, int, int, object, bool]] = []
    if nxt[head] == NONE:
        return True  # nothing with a known outcome: trivially linearizable
    e = nxt[head]  # where the scan of the current node goes on
    j = -1  # >= 0: the scan reached the barrier `e`; unknown candidates go on from j
    fresh = True  # the node was just entered: look for a read to force

    while True:
        advanced = False
        failed = False
        if fresh:
            fresh = False
            x = nxt[head]
            while not is_return[x]:
                i = entry_op[x]
                k = kind[i]
                if (
                    (k == READ and state == arg_a[i]) or (k == CAS_FAIL and state != arg_a[i])
                ) and (chain is _NO_CHAIN or slow_step(k, arg_a[i], arg_b[i], chain) is ILLEGAL):
                    break
                x = nxt[x]
            if not is_return[x]:
                grown = done | bit[entry_op[x]]
                if _remember(memo, (grown, state), used):
                    configurations += 1
                    if configurations == budget:
                        raise _OverBudget
                    stack.append((x, state, done, used, chain, True))
                    done = grown
                    chain = _NO_CHAIN
                    e = x
                    advanced = True
                else:
                    failed = True  # its only successor is known to fail
        if not advanced and not failed and j < 0:
            # Scan the candidates before the barrier.
            while True:
                if is_return[e]:
                    i = entry_op[e]
                    if (
                        optional[i]
                        and chain is _NO_CHAIN
                        and _remember(memo, (done | bit[i], state), used)
                    ):
                        configurations += 1
                        if configurations == budget:
                            raise _OverBudget
                        stack.append((e, state, done, used, chain, False))
                        done |= bit[i]
                        e = match[e]
                        advanced = True
                    else:
                        j = 0
                        if entry_pos[e] > furthest:
                            furthest = entry_pos[e]
                    break
                i = entry_op[e]
                k = kind[i]
                if k == WRITE:
                    new = arg_a[i]
                elif k == CAS:
                    new = arg_b[i] if state == arg_a[i] else ILLEGAL
                elif k == READ:
                    new = state if state == arg_a[i] else ILLEGAL
                else:
                    new = slow_step(k, arg_a[i], arg_b[i], state)
                    if append_only and isinstance(new, str) and not reads_allow(new, layout):
                        new = ILLEGAL
                if new is ILLEGAL or (
                    chain is not _NO_CHAIN
                    and slow_step(k, arg_a[i], arg_b[i], chain) is not ILLEGAL
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
                configurations += 1
                if configurations == budget:
                    raise _OverBudget
                stack.append((e, state, done, used, chain, False))
                state = new
                done = grown
                chain = _NO_CHAIN
                advanced = True
                break
        if advanced:
            # Lift the call entry `e` and its return entry out of the list.
            p, n = prv[e], nxt[e]
            nxt[p] = n
            prv[n] = p
            r = match[e]
            p, n = prv[r], nxt[r]
            nxt[p] = n
            if n != NONE:
                prv[n] = p
            if nxt[head] == NONE:
                counter.configurations = configurations
                return True
        elif not failed:
            # `e` is the barrier: try unknown-outcome ops invoked before it.
            barrier = entry_pos[e]
            while j < n_unknown and unknown_call[j] < barrier:
                mask = 1 << j
                if used & mask or (used & same_before[j]) != same_before[j]:
                    j += 1
                    continue
                i = unknown[j]
                new = slow_step(kind[i], arg_a[i], arg_b[i], state)
                if append_only and isinstance(new, str) and not reads_allow(new, layout):
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
                    stack.append((~j, state, done, used, chain, False))
                    state = new
                    used |= mask
                    if jit:
                        chain = start
                    advanced = True
                    break
                j += 1
        if advanced:
            e = nxt[head]
            j = -1
            fresh = True
            continue

        # Nothing more to try at this node: undo moves until one has an alternative.
        while True:
            if not stack:
                counter.configurations = configurations
                counter.furthest = furthest
                return False
            top, state, done, used, chain, forced = stack.pop()
            if top < 0:
                # The scan never passes a return entry, so the barrier is the first one.
                j = ~top + 1
                e = nxt[head]
                while not is_return[e]:
                    e = nxt[e]
                break
            c = top if not is_return[top] else match[top]
            r = match[c]
            p, n = prv[r], nxt[r]
            nxt[p] = r
            if n != NONE:
                prv[n] = r
            nxt[prv[c]] = c
            prv[nxt[c]] = c
            if forced:
                continue  # the forced read was as good as any move here: this node fails too
            if is_return[top]:
                e = top  # the optional op's drop is undone: its return entry is the barrier
                j = 0
                if entry_pos[e] > furthest:
                    furthest = entry_pos[e]
            else:
                e = nxt[top]
                j = -1
            break
