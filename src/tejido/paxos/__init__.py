"""Paxos: single-decree (synod) and Multi-Paxos replicated log, pure state machines."""
