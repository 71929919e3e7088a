"""The invariant functions catch what they claim to (hand-made broken views)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId
from tejido.raft import ConfState, NodeView, SafetyHistory
from tejido.raft.invariants import (
    at_most_one_leader_per_term,
    committed_entries_durable,
    log_matching,
    state_machine_safety,
)
from tejido.raft.types import GroupId, Index, Role, Term

CONF = ConfState((NodeId(1), NodeId(2), NodeId(3)))


def view(node: int, terms: tuple[int, ...], **changes: object) -> NodeView:
    base = NodeView(
        node=NodeId(node),
        group=GroupId(0),
        up=True,
        term=Term(max(terms, default=0)),
        vote=None,
        role=Role.FOLLOWER,
        leader=None,
        commit=Index(0),
        applied=Index(0),
        applied_digest=b"",
        persisted=Index(len(terms)),
        snapshot_index=Index(0),
        snapshot_term=Term(0),
        log_terms=tuple(Term(t) for t in terms),
        conf=CONF,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_two_leaders_in_one_term() -> None:
    views = [view(1, (1,), role=Role.LEADER), view(2, (1,), role=Role.LEADER)]
    with pytest.raises(InvariantViolation) as error:
        at_most_one_leader_per_term(views)
    assert error.value.name == "election-safety"


def test_history_remembers_old_leaders() -> None:
    history = SafetyHistory()
    history.check([view(1, (1,), role=Role.LEADER), view(2, (1,))])
    with pytest.raises(InvariantViolation):
        history.check([view(1, (1,)), view(2, (1,), role=Role.LEADER)])


def test_log_matching() -> None:
    log_matching([view(1, (1, 1, 2)), view(2, (1, 1, 3, 3))])  # diverge after a prefix
    with pytest.raises(InvariantViolation) as error:
        log_matching([view(1, (1, 2, 2)), view(2, (1, 1, 2))])
    assert error.value.name == "log-matching"
    with pytest.raises(InvariantViolation):
        log_matching([view(1, (2, 1))])  # terms decrease


def test_state_machine_safety() -> None:
    a = view(1, (1, 1), applied=Index(2), commit=Index(2), applied_digest=b"a")
    b = view(2, (1, 1), applied=Index(2), commit=Index(2), applied_digest=b"b")
    with pytest.raises(InvariantViolation) as error:
        state_machine_safety([a, b])
    assert error.value.name == "state-machine-safety"


def test_leader_completeness() -> None:
    history = SafetyHistory()
    history.check([view(1, (1, 1), commit=Index(2)), view(2, (1, 1), commit=Index(2))])
    stale = view(3, (1, 2), term=Term(2), role=Role.LEADER)
    with pytest.raises(InvariantViolation) as error:
        history.check([view(1, (1, 1), commit=Index(2)), stale])
    assert error.value.name in ("leader-completeness", "log-matching")


def test_committed_entry_must_be_durable_on_a_quorum() -> None:
    durable = [view(1, (1, 1)), view(2, (1, 1)), view(3, (1,))]
    committed_entries_durable(durable, Index(2), Term(1), CONF)
    lost = [view(1, (1, 1)), view(2, (1, 1), persisted=Index(1)), view(3, (1,))]
    with pytest.raises(InvariantViolation) as error:
        committed_entries_durable(lost, Index(2), Term(1), CONF)
    assert error.value.name == "committed-lost"


def test_a_voter_without_a_view_may_hold_the_entry() -> None:
    partial = [view(1, (1, 1)), view(2, (1,))]  # node 3 unknown (crashed, not inspected)
    committed_entries_durable(partial, Index(2), Term(1), CONF)
    with pytest.raises(InvariantViolation):
        committed_entries_durable(
            [view(1, (1, 1)), view(2, (1,)), view(3, (1,))], Index(2), Term(1), CONF
        )


def test_check_processes_views_live_raft_nodes() -> None:
    from raft_harness import Cluster

    cluster = Cluster(check=False)
    for command in ("add-nodes 3", "campaign 1", "stabilize", "put 1 k v", "stabilize", "crash 3"):
        words = command.split()
        cluster.run(words[0], words[1:])
    history = SafetyHistory()
    processes = {n: slot.node for n, slot in cluster.slots.items()}
    history.check_processes(processes)
    history.check_processes(processes, lambda n: cluster.slots[n].disk.recovered())
    assert history.highest_commit == 2
    assert history.leaders == {1: 1}


# Incremental checking: SafetyHistory only re-checks views that changed since the previous
# call (log matching from the lowest changed index); each case below passes a first check,
# then changes one log so that only the incremental path can see the violation.


def test_incremental_log_matching_sees_a_rewrite_below_the_new_entries() -> None:
    history = SafetyHistory()
    a, b = view(1, (1, 1, 2)), view(2, (1, 1, 2))
    history.check([a, b])
    grown = view(1, (1, 1, 2, 2))
    history.check([grown, b])
    with pytest.raises(InvariantViolation) as error:
        history.check([grown, view(2, (1, 2, 2, 2))])  # agrees at 3..4, differs at 2
    assert error.value.name == "log-matching"


def test_incremental_log_matching_sees_agreement_above_an_old_divergence() -> None:
    history = SafetyHistory()
    a, b = view(1, (1, 2, 2)), view(2, (1, 3, 3))
    history.check([a, b])  # diverge after index 1: fine
    a4 = view(1, (1, 2, 2, 4))
    history.check([a4, b])
    with pytest.raises(InvariantViolation) as error:
        history.check([a4, view(2, (1, 3, 3, 4))])  # both append 4/4 over different logs
    assert error.value.name == "log-matching"


def test_incremental_terms_never_decrease() -> None:
    history = SafetyHistory()
    history.check([view(1, (1, 2)), view(2, (1,))])
    with pytest.raises(InvariantViolation) as error:
        history.check([view(1, (1, 2, 1)), view(2, (1,))])
    assert error.value.name == "log-matching"


def test_incremental_checks_see_changes_in_unchanged_looking_views() -> None:
    history = SafetyHistory()
    leader = view(1, (1,), role=Role.LEADER)
    history.check([leader, view(2, (1,))])
    history.check([leader, view(2, (1,))])  # the same leader object again: skipped
    with pytest.raises(InvariantViolation) as error:
        history.check([leader, view(2, (1,), role=Role.LEADER)])
    assert error.value.name == "election-safety"
    bounds = SafetyHistory()
    bounds.check([view(1, (1,))])
    with pytest.raises(InvariantViolation) as error:
        bounds.check([view(1, (1,), commit=Index(2))])
    assert error.value.name == "commit-bounds"


def test_incremental_log_matching_after_compaction_and_snapshot_install() -> None:
    history = SafetyHistory()
    a, b = view(1, (1, 1, 2, 2)), view(2, (1, 1, 2))
    history.check([a, b])
    snap2 = {"snapshot_index": Index(2), "commit": Index(2), "applied": Index(2)}
    compacted = view(1, (2, 2), snapshot_term=Term(1), **snap2)
    history.check([compacted, b])
    grown = view(1, (2, 2, 3), snapshot_term=Term(1), **snap2)
    snap3 = {"snapshot_index": Index(3), "commit": Index(3), "applied": Index(3)}
    installed = view(2, (3, 3), snapshot_term=Term(3), **snap3)
    with pytest.raises(InvariantViolation) as error:
        history.check([grown, installed])  # agree at 5, differ at 3 and 4
    assert error.value.name == "log-matching"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("atrc"), st.integers(0, 6)), max_size=30))
def test_log_term_tuple_matches_a_naive_rebuild(ops: list[tuple[str, int]]) -> None:
    from tejido.raft.log import RaftLog
    from tejido.raft.types import Entry

    log = RaftLog()
    term = 1
    for op, n in ops:
        if op == "a":
            for _ in range(n):
                log.append(Entry(Term(term), Index(log.last_index + 1)))
            term += n % 2
        elif op == "t" and log.commit < n <= log.last_index:
            log.truncate(n)
        elif op == "c" and log.snapshot_index < n <= log.last_index:
            log.commit_to(n)
            log.applied = Index(n)
            log.compact(n)
        elif op == "r" and n:
            at = Index(log.last_index + n - 3) if log.last_index + n - 3 > log.commit else None
            if at is not None:
                log.restore(at, log.term_at(at) or Term(term))
        assert log.terms() == tuple(e.term for e in log.entries)


def test_node_view_is_cached_until_the_node_changes() -> None:
    from raft_harness import Cluster

    cluster = Cluster(check=False)
    for command in ("add-nodes 3", "campaign 1", "stabilize"):
        words = command.split()
        cluster.run(words[0], words[1:])
    node = cluster.slots[NodeId(1)].node
    assert node is not None
    first = node.view()
    assert node.view() is first
    cluster.run("put", ["1", "k", "v"])
    cluster.run("stabilize", [])
    second = node.view()
    assert second is not first
    assert second.log_terms == tuple(e.term for e in node.log.entries)
    assert second.commit > first.commit
