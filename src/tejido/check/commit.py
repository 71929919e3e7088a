"""Atomic commitment checker: never some sites committed and some aborted one transaction.

The properties of an atomic commitment protocol (Bernstein, Hadzilacos and Goodman,
"Concurrency Control and Recovery in Database Systems", 1987, §7.2):

- AC1: all processes that reach a decision reach the same one;
- AC2: a process cannot reverse its decision after it has reached one;
- AC3: commit is decided only if all processes voted yes (a participant's durable no vote
  counts as its abort, so AC3 reduces to AC1 here).

Input: decisions as ``(transaction, site, outcome)`` triples with outcome ``commit`` or
``abort``, in the order they were observed (from live processes, durable logs, or a history
recorded on real processes). The checker is incremental so the simulator can feed it after
every event, and also usable offline with `check_atomicity`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from tejido.core.errors import InvariantViolation

__all__ = ["AtomicityChecker", "check_atomicity"]


class AtomicityChecker:
    """Accumulates decisions; raises `InvariantViolation("atomicity", ...)` on a conflict."""

    name = "atomicity"

    def __init__(self) -> None:
        self.outcome: dict[Hashable, str] = {}
        """The outcome each transaction was first decided with."""
        self.first_site: dict[Hashable, Hashable] = {}
        self.by_site: dict[tuple[Hashable, Hashable], str] = {}

    def observe(self, txn: Hashable, site: Hashable, outcome: str) -> None:
        if outcome not in ("commit", "abort"):
            raise ValueError(
                f"transaction {txn!r} at {site!r}: outcome {outcome!r} is not commit/abort"
            )
        earlier = self.by_site.setdefault((txn, site), outcome)
        if earlier != outcome:
            raise InvariantViolation(
                self.name,
                f"transaction {txn!r}: {site!r} decided {earlier} and later {outcome} (AC2)",
            )
        first = self.outcome.setdefault(txn, outcome)
        self.first_site.setdefault(txn, site)
        if first != outcome:
            raise InvariantViolation(
                self.name,
                f"transaction {txn!r}: {self.first_site[txn]!r} decided {first} but {site!r} "
                f"decided {outcome} (AC1)",
            )

    def counts(self) -> dict[str, int]:
        """How many transactions were decided each way (for reports)."""
        out = {"commit": 0, "abort": 0}
        for outcome in self.outcome.values():
            out[outcome] += 1
        return out


def check_atomicity(decisions: Iterable[tuple[Hashable, Hashable, str]]) -> list[str]:
    """Every violation in a finished list of decisions (empty when atomicity holds)."""
    checker = AtomicityChecker()
    problems: list[str] = []
    for txn, site, outcome in decisions:
        try:
            checker.observe(txn, site, outcome)
        except InvariantViolation as exc:
            problems.append(exc.detail)
    return problems
