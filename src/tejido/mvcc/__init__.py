"""The store's pure state machine: an MVCC key space with etcd's semantics, watches,
leases and exactly-once client sessions (see docs/store-machine.md).

`tejido.mvcc.api` is the vocabulary (commands, queries, results, limits) and the contract
for wrapping them in Raft `Operation`s; `StoreStateMachine` is what Raft runs.

The names below load on first use (module ``__getattr__``, PEP 562), so that importing
one submodule does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tejido.mvcc.keyspace import StoreErrorRaised
    from tejido.mvcc.machine import StoreStateMachine

_WHERE = {
    "StoreErrorRaised": "tejido.mvcc.keyspace",
    "StoreStateMachine": "tejido.mvcc.machine",
}

__all__ = ["StoreErrorRaised", "StoreStateMachine"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tejido.mvcc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
