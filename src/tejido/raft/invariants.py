"""Raft's safety properties as functions over node views, checkable after every event.

Properties (paper §5.2-5.4, Figure 3; thesis §3.6.3):

1. Election Safety: at most one leader per term. `at_most_one_leader_per_term` checks the
   views of one moment; `SafetyHistory` remembers every (term, leader) seen, so a second
   leader of an old term is caught even after the first stepped down.
2. Log Matching: if two logs hold an entry with the same index and term, they are identical
   up to it (`log_matching`); terms never decrease along a log.
3. Leader Completeness: an entry committed by term t is in the log (or snapshot) of every
   leader of a term after t (`SafetyHistory`, which records the commit index each node
   reported in each term).
4. State Machine Safety: replicas that applied the same number of entries applied the same
   sequence: the applied digests (a hash chain over the applied entries) agree index by
   index, across time (`state_machine_safety`, and `SafetyHistory` across restarts).
5. Committed entries are never lost: the highest committed entry is durable on a quorum of
   the configuration (`committed_entries_durable`; pass views of crashed nodes built with
   `view_from_storage`, since what they hold on disk counts).

Every function raises `tejido.core.errors.InvariantViolation(name, detail)`; the names are
``election-safety``, ``log-matching``, ``leader-completeness``, ``state-machine-safety``,
``committed-lost`` and ``commit-bounds``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.core.protocol import Process
from tejido.core.storage import Recovered
from tejido.raft.config import RaftConfig
from tejido.raft.inspect import NodeView, view_from_storage
from tejido.raft.types import NO_INDEX, ConfState, Index, Role, Term

__all__ = [
    "SafetyHistory",
    "at_most_one_leader_per_term",
    "commit_bounds",
    "committed_entries_durable",
    "log_matching",
    "state_machine_safety",
]


def at_most_one_leader_per_term(views: Sequence[NodeView]) -> None:
    leaders: dict[Term, NodeId] = {}
    for view in views:
        if view.up and view.role is Role.LEADER:
            other = leaders.setdefault(view.term, view.node)
            if other != view.node:
                raise InvariantViolation(
                    "election-safety", f"nodes {other} and {view.node} lead term {view.term}"
                )


def commit_bounds(views: Sequence[NodeView]) -> None:
    for view in views:
        if not view.snapshot_index <= view.applied <= view.commit <= view.last_index:
            raise InvariantViolation(
                "commit-bounds",
                f"node {view.node}: snapshot={view.snapshot_index} applied={view.applied} "
                f"commit={view.commit} last={view.last_index}",
            )


def log_matching(views: Sequence[NodeView]) -> None:
    for view in views:
        terms = view.log_terms
        previous = view.snapshot_term
        for offset, term in enumerate(terms):
            if term < previous:
                raise InvariantViolation(
                    "log-matching",
                    f"node {view.node}: term decreases at index {view.snapshot_index + offset + 1}",
                )
            previous = term
    for a, b in combinations(views, 2):
        _matching_pair(a, b)


def _matching_pair(a: NodeView, b: NodeView) -> None:
    low = max(a.snapshot_index, b.snapshot_index)
    high = min(a.last_index, b.last_index)
    if high < low:
        return
    # Terms at indexes low .. high on each node (the entry at `low` is known to both).
    a_terms = (a.term_at(low), *a.log_terms[low - a.snapshot_index : high - a.snapshot_index])
    b_terms = (b.term_at(low), *b.log_terms[low - b.snapshot_index : high - b.snapshot_index])
    top = len(a_terms) - 1
    while top >= 0 and a_terms[top] != b_terms[top]:
        top -= 1
    if top > 0 and a_terms[:top] != b_terms[:top]:
        index = low + next(i for i in range(top) if a_terms[i] != b_terms[i])
        raise InvariantViolation(
            "log-matching",
            f"nodes {a.node} and {b.node} agree at {low + top} but differ at {index}: "
            f"{a.term_at(index)} vs {b.term_at(index)}",
        )


def state_machine_safety(views: Sequence[NodeView]) -> None:
    by_index: dict[Index, tuple[NodeId, bytes]] = {}
    for view in views:
        seen = by_index.setdefault(view.applied, (view.node, view.applied_digest))
        if seen[1] != view.applied_digest:
            raise InvariantViolation(
                "state-machine-safety",
                f"nodes {seen[0]} and {view.node} applied different entries up to {view.applied}",
            )


def committed_entries_durable(
    views: Sequence[NodeView], index: Index, term: Term, conf: ConfState
) -> None:
    """Entry (index, term) is committed: a quorum of `conf` must hold it durably.

    A voter without a view (say, a crashed node the caller cannot inspect) counts as a
    possible holder, so passing only live nodes gives a weaker but still sound check."""
    if index == 0:
        return
    seen = {v.node for v in views}
    holders = {
        v.node
        for v in views
        if v.snapshot_index >= index or (index <= v.persisted and v.term_at(index) == term)
    }
    for half in (conf.voters, conf.outgoing):
        possible = sum(1 for n in half if n in holders or n not in seen)
        if half and possible <= len(half) // 2:
            raise InvariantViolation(
                "committed-lost",
                f"committed entry {term}/{index} is durable only on {sorted(holders)}",
            )


@dataclass(slots=True)
class SafetyHistory:
    """What the checker remembers between events; `check` runs every property.

    Feed it the views of every node after every event: live nodes' `RaftNode.view()` and,
    for crashed nodes, `view_from_storage` (or use `check_processes` with live nodes only:
    crashed voters then count as possible holders of committed entries).
    """

    leaders: dict[Term, NodeId] = field(default_factory=dict)
    committed: dict[Index, Term] = field(default_factory=dict)
    commit_marks: dict[Term, Index] = field(default_factory=dict)
    digests: dict[Index, bytes] = field(default_factory=dict)
    highest_commit: Index = NO_INDEX
    commit_conf: ConfState = field(default_factory=ConfState)

    def check(self, views: Sequence[NodeView]) -> None:
        at_most_one_leader_per_term(views)
        commit_bounds(views)
        log_matching(views)
        state_machine_safety(views)
        for view in views:
            self._observe(view)
        for view in views:
            if view.up and view.role is Role.LEADER:
                self._leader_complete(view)
        top = self.highest_commit
        if top:
            committed_entries_durable(views, top, self.committed[top], self.commit_conf)

    def check_processes(
        self,
        processes: Mapping[NodeId, Process | None],
        durable: Callable[[NodeId], Recovered] | None = None,
        config: RaftConfig | None = None,
    ) -> None:
        """`check` over a runtime's processes (None = crashed). A crashed node is viewed
        through `durable(node)`, what its disk would give back, when the runtime can tell;
        otherwise it is left out (and then counts as a possible holder of committed
        entries). `config` names the group and its initial voters (default: all nodes)."""
        from tejido.raft.node import RaftNode

        config = config or RaftConfig()
        voters = config.initial_voters
        initial = ConfState(tuple(sorted(processes)) if voters is None else voters)
        views = []
        for node, process in processes.items():
            if isinstance(process, RaftNode):
                views.append(process.view())
            elif process is None and durable is not None:
                views.append(view_from_storage(node, durable(node), config.group, initial))
        self.check(views)

    def _observe(self, view: NodeView) -> None:
        if view.up and view.role is Role.LEADER:
            other = self.leaders.setdefault(view.term, view.node)
            if other != view.node:
                raise InvariantViolation(
                    "election-safety", f"nodes {other} and {view.node} both led term {view.term}"
                )
        if view.applied:
            digest = self.digests.setdefault(view.applied, view.applied_digest)
            if digest != view.applied_digest:
                raise InvariantViolation(
                    "state-machine-safety",
                    f"node {view.node} applied a different sequence up to {view.applied}",
                )
        if not view.up or view.commit == 0:
            return
        term = view.term_at(view.commit)
        if term is None:
            return
        known = self.committed.setdefault(view.commit, term)
        if known != term:
            raise InvariantViolation(
                "state-machine-safety",
                f"index {view.commit} committed with term {known} and with term {term}",
            )
        if view.commit > self.commit_marks.get(view.term, 0):
            self.commit_marks[view.term] = view.commit
        if view.commit > self.highest_commit:
            self.highest_commit = view.commit
            self.commit_conf = view.conf

    def _leader_complete(self, leader: NodeView) -> None:
        marks = [index for term, index in self.commit_marks.items() if term < leader.term]
        if not marks:
            return
        index = max(marks)
        if leader.snapshot_index >= index:
            return
        if leader.term_at(index) != self.committed[index]:
            raise InvariantViolation(
                "leader-completeness",
                f"leader {leader.node} of term {leader.term} lacks committed entry "
                f"{self.committed[index]}/{index}",
            )
