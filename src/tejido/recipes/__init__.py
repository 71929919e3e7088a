"""Coordination recipes built on the replicated store's client.

Fenced locks, semaphores, leader election, barriers, queues and counters,
written against :mod:`tejido.kv` (docs/recipes.md).
"""
