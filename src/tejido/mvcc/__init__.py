"""The store's pure state machine: an MVCC key space with etcd's semantics, watches,
leases and exactly-once client sessions (see docs/store-machine.md).

`tejido.mvcc.api` is the vocabulary (commands, queries, results, limits) and the contract
for wrapping them in Raft `Operation`s; `StoreStateMachine` is what Raft runs.
"""

from tejido.mvcc.keyspace import StoreErrorRaised
from tejido.mvcc.machine import StoreStateMachine

__all__ = ["StoreErrorRaised", "StoreStateMachine"]
