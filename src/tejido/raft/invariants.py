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
from tejido.raft.types import NO_INDEX, ConfState, GroupId, Index, Role, Term

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
        _terms_nondecreasing(view, 0)
    for a, b in combinations(views, 2):
        _matching_pair(a, b, 0)


def _terms_nondecreasing(view: NodeView, since: int) -> None:
    """Terms never decrease along `view`'s log, checked from index `since` - 1 on."""
    start = max(since - 1, view.snapshot_index)
    previous = view.term_at(start)
    if previous is None:
        return
    for offset, term in enumerate(view.log_terms[start - view.snapshot_index :]):
        if term < previous:
            raise InvariantViolation(
                "log-matching", f"node {view.node}: term decreases at index {start + offset + 1}"
            )
        previous = term


def _matching_pair(a: NodeView, b: NodeView, since: int) -> None:
    """Log matching between two logs, looking only at indexes >= `since`.

    With `since` > 0 the caller guarantees that both logs passed this check before and
    hold the same terms as then below `since`: then they agree everywhere below `since`
    (in their common window) exactly when they agree at `since` - 1."""
    low = max(a.snapshot_index, b.snapshot_index)
    high = min(a.last_index, b.last_index)
    start = max(low, since)
    if high < start:
        return
    # Terms at indexes start .. high on each node (the entry at `low` is known to both).
    a_terms = (a.term_at(start), *a.log_terms[start - a.snapshot_index : high - a.snapshot_index])
    b_terms = (b.term_at(start), *b.log_terms[start - b.snapshot_index : high - b.snapshot_index])
    top = len(a_terms) - 1
    while top >= 0 and a_terms[top] != b_terms[top]:
        top -= 1
    if top < 0:
        return
    if start > low and a.term_at(start - 1) != b.term_at(start - 1):
        index = start - 1
    elif top > 0 and a_terms[:top] != b_terms[:top]:
        index = start + next(i for i in range(top) if a_terms[i] != b_terms[i])
    else:
        return
    raise InvariantViolation(
        "log-matching",
        f"nodes {a.node} and {b.node} agree at {start + top} but differ at {index}: "
        f"{a.term_at(index)} vs {b.term_at(index)}",
    )


_NO_CHANGE = 1 << 62


def _first_change(old: NodeView | None, new: NodeView) -> int:
    """The lowest index whose term in `new` may differ from `old` (the same node's view at
    the previous check); 0 when everything must be checked again, `_NO_CHANGE` when the
    terms `new` holds are exactly those `old` held there."""
    if old is None or new.snapshot_index < old.snapshot_index:
        return 0
    base = new.snapshot_index
    if base > old.last_index or old.term_at(base) != new.snapshot_term:
        return base
    before = old.log_terms[base - old.snapshot_index :]
    after = new.log_terms
    if after is before or after == before:
        return _NO_CHANGE
    if after[: len(before)] == before:  # appended
        return base + len(before) + 1
    # Binary search for the length of the common prefix (slice comparisons run in C).
    same, differ = 0, min(len(before), len(after))
    if after[:differ] == before[:differ]:
        return base + differ + 1
    while differ - same > 1:
        middle = (same + differ) // 2
        if after[:middle] == before[:middle]:
            same = middle
        else:
            differ = middle
    return base + same + 1


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
    last_views: dict[NodeId, NodeView] = field(default_factory=dict)
    """The views of the previous check: a view passed again (the same object) was fully
    checked then, so per-view checks skip it and log matching starts where it changed."""
    stored_views: dict[NodeId, tuple[Recovered, GroupId, ConfState, NodeView]] = field(
        default_factory=dict
    )
    """`view_from_storage` results by node, reused while the durable image is unchanged."""

    def check(self, views: Sequence[NodeView]) -> None:
        """Check every property over `views` (all nodes, one moment).

        Incremental but as strong as checking everything: properties of one view (bounds,
        terms along a log, what `_observe` compares with the history) are checked once per
        distinct view object; log matching compares each changed log with every other from
        the lowest index that changed; properties across views run every time."""
        previous = self.last_views
        changed = [v for v in views if previous.get(v.node) is not v]
        if not changed and len(views) == len(previous):
            return  # the very views that passed last time (every property is a function of
            # the views and of the history, which only changed views update)
        at_most_one_leader_per_term(views)
        commit_bounds(changed)
        self._log_matching(views, changed)
        state_machine_safety(views)
        for view in changed:
            self._observe(view)
        for view in views:
            if view.up and view.role is Role.LEADER:
                self._leader_complete(view)
        top = self.highest_commit
        if top:
            committed_entries_durable(views, top, self.committed[top], self.commit_conf)
        self.last_views = {v.node: v for v in views}

    def _log_matching(self, views: Sequence[NodeView], changed: Sequence[NodeView]) -> None:
        since: dict[NodeId, int] = {}
        for view in changed:
            first = _first_change(self.last_views.get(view.node), view)
            if first != _NO_CHANGE:
                since[view.node] = first
                _terms_nondecreasing(view, first)
        if not since:
            return
        for position, a in enumerate(views):
            a_since = since.get(a.node)
            for b in views[position + 1 :]:
                b_since = since.get(b.node)
                if a_since is None and b_since is None:
                    continue
                low = min(
                    _NO_CHANGE if a_since is None else a_since,
                    _NO_CHANGE if b_since is None else b_since,
                )
                _matching_pair(a, b, low)

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
                views.append(self._stored_view(node, durable(node), config.group, initial))
        self.check(views)

    def _stored_view(
        self, node: NodeId, recovered: Recovered, group: GroupId, initial: ConfState
    ) -> NodeView:
        cached = self.stored_views.get(node)
        if cached is not None and cached[:3] == (recovered, group, initial):
            return cached[3]
        view = view_from_storage(node, recovered, group, initial)
        self.stored_views[node] = (recovered, group, initial, view)
        return view

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
