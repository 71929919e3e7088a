"""Checkers that judge histories: linearizability of key-value and register histories.

`check_linearizable` takes the events of a history (see `parse_history` / `read_history`
for the JSON-lines format) and returns a `LinearizabilityResult`; ``docs/checker.md``
describes the algorithm and the semantics of ``fail`` and ``info`` outcomes.
"""

from tejido.check.history import (
    HistoryEvent,
    HistoryOp,
    format_event,
    pair_operations,
    parse_history,
    read_history,
)
from tejido.check.linearizability import (
    CheckGaveUp,
    LinearizabilityResult,
    check_linearizable,
    check_operations,
)

__all__ = [
    "CheckGaveUp",
    "HistoryEvent",
    "HistoryOp",
    "LinearizabilityResult",
    "check_linearizable",
    "check_operations",
    "format_event",
    "pair_operations",
    "parse_history",
    "read_history",
]
