"""The data layout the search walks: a linked list of call and return entries, and helpers.

`Layout` turns the operations of one key into flat lists indexed by entry or operation
number (fast to index from the search loop). Operations with a known outcome get a call
entry and a return entry in a doubly linked list in real-time order, headed by a sentinel;
operations with an unknown outcome (return at `INFINITY`) are kept apart, sorted by call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tejido.check.models import INFINITY, READ, ModelOp

__all__ = ["NONE", "Layout", "reads_allow"]

NONE: Final = -1
"""The end of the linked list."""
READS_CHECKED: Final = 3
"""How many pending reads an append on an append-only key is checked against."""


class Layout:
    """Flat arrays describing one key's operations for the search.

    Entries ``0 .. count-1`` are the calls and returns of the known-outcome ops in time
    order; ``head`` (= ``count``) is the sentinel before the first. ``match`` maps a call
    entry to its return entry and back. ``bit[i]`` is op ``i``'s bit in the set of resolved
    known-outcome ops. ``unknown`` lists the unknown-outcome ops by call; for the ``j``-th,
    ``same_before[j]`` holds the bits (in the used set) of earlier ones with the same kind
    and arguments, which are interchangeable with it.
    """

    __slots__ = (
        "arg_a",
        "arg_b",
        "bit",
        "count",
        "entry_op",
        "entry_pos",
        "head",
        "is_return",
        "kind",
        "match",
        "nxt",
        "optional",
        "prv",
        "same_before",
        "unknown",
        "unknown_call",
    )

    def __init__(self, ops: Sequence[ModelOp]) -> None:
        finite = [i for i, op in enumerate(ops) if op.ret < INFINITY]
        self.unknown = sorted(
            (i for i, op in enumerate(ops) if op.ret >= INFINITY), key=lambda i: ops[i].call
        )
        timeline = sorted(
            [(ops[i].call, 0, i) for i in finite] + [(ops[i].ret, 1, i) for i in finite]
        )
        count = len(timeline)
        self.count = count
        self.head = count
        self.entry_op = [i for _pos, _is_ret, i in timeline]
        self.entry_pos = [pos for pos, _is_ret, _i in timeline]
        self.is_return = [is_ret == 1 for _pos, is_ret, _i in timeline]
        self.match = [NONE] * count
        return_of: dict[int, int] = {}
        for e in range(count - 1, -1, -1):
            if self.is_return[e]:
                return_of[self.entry_op[e]] = e
            else:
                self.match[e] = return_of[self.entry_op[e]]
                self.match[self.match[e]] = e
        self.nxt = [*range(1, count + 1), NONE]
        self.prv = [count, *range(count)]
        if count:
            self.nxt[count - 1] = NONE
            self.nxt[count] = 0
        else:
            self.nxt[count] = NONE

        self.kind = [op.kind for op in ops]
        self.arg_a = [op.a for op in ops]
        self.arg_b = [op.b for op in ops]
        self.optional = [op.optional for op in ops]
        self.bit = [0] * len(ops)
        for position, i in enumerate(finite):
            self.bit[i] = 1 << position

        self.unknown_call = [ops[i].call for i in self.unknown]
        self.same_before: list[int] = []
        classes: dict[tuple[int, object, object], int] = {}
        for j, i in enumerate(self.unknown):
            cls = (self.kind[i], self.arg_a[i], self.arg_b[i])
            self.same_before.append(classes.get(cls, 0))
            classes[cls] = classes.get(cls, 0) | (1 << j)


def reads_allow(state: str, layout: Layout) -> bool:
    """On an append-only key: whether the next pending reads (in return order) extend
    `state` (appends only make the value longer, so a read still to come must see a value
    that starts with the current one)."""
    nxt, is_return, entry_op, kind, arg_a = (
        layout.nxt,
        layout.is_return,
        layout.entry_op,
        layout.kind,
        layout.arg_a,
    )
    e = nxt[layout.head]
    found = 0
    while e != NONE:
        if is_return[e]:
            i = entry_op[e]
            if kind[i] == READ:
                value = arg_a[i]
                if not isinstance(value, str) or not value.startswith(state):
                    return False
                found += 1
                if found == READS_CHECKED:
                    return True
        e = nxt[e]
    return True
