"""The store's pure state machine: an MVCC key space with etcd's semantics, watches,
leases and exactly-once client sessions (see docs/store.md)."""
