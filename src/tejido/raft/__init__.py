"""Raft consensus: a pure core (no I/O), driven by the simulator or the real runtime.

Start with `RaftNode` (node.py: the persistence contract), `RaftConfig`, the application
interface `StateMachine` with the key-value machine `KeyValueStateMachine`, and the safety
checker `SafetyHistory` over `NodeView`s. docs/raft.md maps each feature to its test.
"""

from tejido.raft.config import RaftConfig
from tejido.raft.errors import NotLeader, ProposalRefused
from tejido.raft.inspect import NodeView, view_from_storage
from tejido.raft.invariants import SafetyHistory
from tejido.raft.kv import KeyValueStateMachine, StateMachine
from tejido.raft.node import RaftNode
from tejido.raft.types import ConfState, Entry, EntryKind, GroupId, Index, Role, Term

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
