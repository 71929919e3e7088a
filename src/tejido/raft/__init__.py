"""Raft consensus: a pure core (no I/O), driven by the simulator or the real runtime.

Start with `RaftNode` (node.py: the persistence contract), `RaftConfig`, the application
interface `StateMachine` with the key-value machine `KeyValueStateMachine`, and the safety
checker `SafetyHistory` over `NodeView`s. docs/raft.md maps each feature to its test.

The names below load on first use (module ``__getattr__``, PEP 562), so that importing
one submodule does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tejido.raft.config import RaftConfig
    from tejido.raft.errors import NotLeader, ProposalRefused
    from tejido.raft.inspect import NodeView, view_from_storage
    from tejido.raft.invariants import SafetyHistory
    from tejido.raft.kv import KeyValueStateMachine, StateMachine
    from tejido.raft.node import RaftNode
    from tejido.raft.types import ConfState, Entry, EntryKind, GroupId, Index, Role, Term

_WHERE = {
    "ConfState": "tejido.raft.types",
    "Entry": "tejido.raft.types",
    "EntryKind": "tejido.raft.types",
    "GroupId": "tejido.raft.types",
    "Index": "tejido.raft.types",
    "KeyValueStateMachine": "tejido.raft.kv",
    "NodeView": "tejido.raft.inspect",
    "NotLeader": "tejido.raft.errors",
    "ProposalRefused": "tejido.raft.errors",
    "RaftConfig": "tejido.raft.config",
    "RaftNode": "tejido.raft.node",
    "Role": "tejido.raft.types",
    "SafetyHistory": "tejido.raft.invariants",
    "StateMachine": "tejido.raft.kv",
    "Term": "tejido.raft.types",
    "view_from_storage": "tejido.raft.inspect",
}

__all__ = [
    "RaftNode",
    "RaftConfig",
    "StateMachine",
    "KeyValueStateMachine",
    "NotLeader",
    "ProposalRefused",
    "NodeView",
    "view_from_storage",
    "SafetyHistory",
    "ConfState",
    "Entry",
    "EntryKind",
    "GroupId",
    "Index",
    "Role",
    "Term",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tejido.raft' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
