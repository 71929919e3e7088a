"""Classical distributed algorithms as pure state machines.

Election, ordering (causal and total-order broadcast), mutual exclusion, deadlock detection,
atomic commit and global snapshots.
"""
