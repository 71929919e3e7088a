"""Asyncio-native actors with supervision, location transparency and virtual actors
(see docs/actors.md)."""
