"""Global snapshot checker: a recorded global state must be complete and conserve money.

For a bank whose processes only move money between each other (Chandy and Lamport, TOCS
1985, §2, the "conservation" example), a *consistent* recorded state has every transfer
either in its sender's balance (not yet sent), in a channel's recorded state (in flight) or
in its receiver's balance — never twice and never nowhere. So the sum of the recorded
balances and recorded channel contents equals the money in the system. An inconsistent
cut (a receive recorded without its send, or a send lost between the records) changes the
sum; a snapshot that omits a process or a channel is incomplete.

Input: per process, its recorded balance and, per incoming channel (by sender), the
amounts recorded in flight on it — the shape `tejido.algorithms.chandy_lamport.Report`
has, and what a real run's snapshot records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["RecordedProcess", "check_snapshot"]


@dataclass(frozen=True, slots=True)
class RecordedProcess:
    balance: int
    channels: Mapping[int, Sequence[int]]
    """Sender -> amounts recorded in flight on the channel from it to this process."""


def check_snapshot(
    recorded: Mapping[int, RecordedProcess], processes: Iterable[int], expected_total: int
) -> list[str]:
    """Problems with one recorded global state (empty when it is complete and conserves
    `expected_total`)."""
    members = sorted(processes)
    problems: list[str] = []
    missing = [p for p in members if p not in recorded]
    if missing:
        problems.append(f"no recorded state for process(es) {missing}")
    for p in members:
        state = recorded.get(p)
        if state is None:
            continue
        channels = sorted(q for q in members if q != p and q not in state.channels)
        if channels:
            problems.append(f"process {p}: channels from {channels} were not recorded")
        negative = [a for v in state.channels.values() for a in v if a <= 0]
        if state.balance < 0 or negative:
            problems.append(f"process {p}: negative balance or transfer recorded")
    in_flight = {p: sum(sum(v) for v in s.channels.values()) for p, s in recorded.items()}
    total = sum(s.balance for s in recorded.values()) + sum(in_flight.values())
    if total != expected_total:
        balances = {p: s.balance for p, s in sorted(recorded.items())}
        problems.append(
            f"recorded total {total} != {expected_total}: balances {balances}, "
            f"in flight {dict(sorted(in_flight.items()))}"
        )
    return problems
