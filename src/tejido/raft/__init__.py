"""Raft consensus: a pure core (no I/O), driven by the simulator or the real runtime."""
