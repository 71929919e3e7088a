"""The sequential specification the checker linearizes against: one register per key.

A key's state is its current value, held as a hashable "frozen" JSON value (lists become
tuples, objects sorted tuples of pairs) so that a search configuration (linearized set,
state) can be memoized. Every key starts absent (``None``).

Each operation the search considers is a `ModelOp`: a kind and up to two arguments, derived
from a `HistoryOp` and its outcome by `model_op`:

=============  ===================================  ====================================
kind           legal in state ``s`` when            next state
=============  ===================================  ====================================
``READ x``     ``s == x``                           ``s``
``WRITE v``    always                               ``v``
``CAS a b``    ``s == a`` (an ``ok`` cas)           ``b``
``CAS_FAIL a`` ``s != a`` (a ``fail`` cas, strict)  ``s``
``MAYBE_CAS``  always (an ``info`` cas)             ``b`` if ``s == a`` else ``s``
``APPEND t``   ``s`` is absent or a string          ``s + t`` (absent counts as ``""``)
=============  ===================================  ====================================

Absent (``null``) and the empty string are the same value here, so that a read of ``""``
and a read of ``null`` both mean "nothing appended yet".
"""

from __future__ import annotations

from typing import Final

import msgspec

from tejido.check.history import HistoryOp

__all__ = [
    "APPEND",
    "CAS",
    "CAS_FAIL",
    "ILLEGAL",
    "INFINITY",
    "KIND_NAMES",
    "MAYBE_CAS",
    "READ",
    "WRITE",
    "ModelOp",
    "freeze",
    "model_op",
    "step",
]

READ: Final = 0
WRITE: Final = 1
CAS: Final = 2
CAS_FAIL: Final = 3
MAYBE_CAS: Final = 4
APPEND: Final = 5
KIND_NAMES: Final = ("read", "write", "cas", "cas-fail", "maybe-cas", "append")

INFINITY: Final = 1 << 62
"""The return position of an operation whose outcome is unknown (``info``)."""


class _Illegal:
    """The result of a step that the specification forbids."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ILLEGAL"


ILLEGAL: Final = _Illegal()


class _BoolValue(msgspec.Struct, frozen=True, gc=False):
    """A JSON boolean, kept apart from the integers 0 and 1 (``True == 1`` in Python)."""

    value: bool


def freeze(value: object) -> object:
    """A hashable value equal to another frozen value exactly when the JSON values are equal.

    ``""`` freezes to ``None`` (absent and empty are the same value in the model).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return _BoolValue(value)
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    if isinstance(value, dict):
        return ("{}", tuple(sorted((str(k), freeze(v)) for k, v in value.items())))
    return value


class ModelOp(msgspec.Struct, frozen=True, gc=False):
    """An operation as the search sees it: positions in real time, kind, arguments.

    ``ret`` is `INFINITY` for operations whose outcome is unknown: they may take effect at
    any moment after ``call``, or never. An ``optional`` operation with a finite ``ret``
    takes effect inside its interval or not at all (the counterexample shrinker weakens
    operations this way). ``source`` is the index of the `HistoryOp` it came from in the
    list given to the search (for reporting).
    """

    call: int
    ret: int
    kind: int
    a: object = None
    b: object = None
    source: int = -1
    optional: bool = False


def model_op(op: HistoryOp, source: int, *, strict_fail_cas: bool = True) -> ModelOp | None:
    """The search operation for a history operation, or ``None`` if it cannot matter.

    Dropped: every ``fail`` (it had no effect) except, with ``strict_fail_cas``, a failed
    cas, which still says the register did not hold ``expected`` at some moment inside its
    interval; and reads whose outcome is unknown (they change nothing and returned nothing).
    """
    outcome = op.outcome
    if outcome == "fail":
        if op.f != "cas" or not strict_fail_cas:
            return None
        expected, _new = _pair(op.value)
        return ModelOp(op.call, _ret(op), CAS_FAIL, freeze(expected), None, source)
    unknown = outcome != "ok"
    ret = INFINITY if unknown else _ret(op)
    if op.f == "read":
        if unknown:
            return None
        return ModelOp(op.call, ret, READ, freeze(op.result), None, source)
    if op.f == "write":
        return ModelOp(op.call, ret, WRITE, freeze(op.value), None, source)
    if op.f == "cas":
        expected, new = _pair(op.value)
        kind = MAYBE_CAS if unknown else CAS
        return ModelOp(op.call, ret, kind, freeze(expected), freeze(new), source)
    # append: the history parser guarantees a string argument
    return ModelOp(
        op.call, ret, APPEND, op.value if isinstance(op.value, str) else "", None, source
    )


def _ret(op: HistoryOp) -> int:
    return op.ret if op.ret is not None else INFINITY


def _pair(value: object) -> tuple[object, object]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return None, None  # unreachable for parsed histories: the parser checks cas values


def step(kind: int, a: object, b: object, state: object) -> object:
    """The state after applying one operation, or `ILLEGAL` (the search inlines the common
    cases of the same rules and calls this for the rest)."""
    if kind == READ:
        return state if state == a else ILLEGAL
    if kind == WRITE:
        return a
    if kind == CAS:
        return b if state == a else ILLEGAL
    if kind == CAS_FAIL:
        return state if state != a else ILLEGAL
    if kind == MAYBE_CAS:
        return b if state == a else state
    if kind == APPEND:
        if state is None:
            return a if a != "" else None
        if isinstance(state, str) and isinstance(a, str):
            return state + a
        return ILLEGAL
    return ILLEGAL  # no other kinds exist
