"""The in-memory log (tejido/raft/log.py)."""

from __future__ import annotations

import pytest

from tejido.core.errors import InvariantViolation, LocalProtocolError
from tejido.raft.log import RaftLog
from tejido.raft.types import Entry, Index, Term


def entries(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(Term(t), Index(start + i), data=b"x") for i, t in enumerate(terms)]


def log_with(*terms: int) -> RaftLog:
    log = RaftLog()
    for entry in entries(*terms):
        log.append(entry)
    return log


def test_terms_and_bounds() -> None:
    log = log_with(1, 1, 2, 3)
    assert (log.first_index, log.last_index, log.last_term) == (1, 4, 3)
    assert log.term_at(0) == 0
    assert log.term_at(3) == 2
    assert log.term_at(5) is None


def test_append_must_be_contiguous() -> None:
    log = log_with(1)
    with pytest.raises(LocalProtocolError):
        log.append(Entry(Term(1), Index(3)))


def test_first_new_finds_the_first_conflict() -> None:
    log = log_with(1, 1, 2)
    assert log.first_new(entries(1, 1, 2)) == 3  # all held
    assert log.first_new(entries(1, 3, start=2)) == 1  # conflict at index 3
    assert log.first_new(entries(2, 2, start=3)) == 1  # beyond the end at index 4


def test_truncate_never_removes_committed_entries() -> None:
    log = log_with(1, 1, 2)
    log.commit_to(2)
    with pytest.raises(InvariantViolation):
        log.truncate(2)
    log.persisted = Index(3)
    log.truncate(3)
    assert log.last_index == 2
    assert log.persisted == 2


def test_slice_is_bounded_in_bytes_but_returns_one_entry() -> None:
    log = log_with(1, 1, 1, 1)
    size = log.entry(1).size_bytes
    assert len(log.slice(1, max_bytes=2 * size)) == 2
    assert len(log.slice(1, max_bytes=1)) == 1
    assert [e.index for e in log.slice(2, 10_000, end=3)] == [2, 3]


def test_up_to_date_rule() -> None:
    log = log_with(1, 2, 2)
    assert log.is_up_to_date(3, 2)
    assert log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(5, 1)
    assert not log.is_up_to_date(2, 2)


def test_conflict_hint() -> None:
    log = log_with(1, 2, 2, 2)
    assert log.conflict_hint(9) == (0, 5)  # too short
    assert log.conflict_hint(4) == (2, 2)  # first index of term 2
    log.commit_to(2)
    assert log.conflict_hint(4) == (2, 3)  # not below commit + 1
    assert log.last_index_of_term(2, 4) == 4
    assert log.last_index_of_term(1, 4) == 1
    assert log.last_index_of_term(3, 4) is None


def test_compact_and_restore() -> None:
    log = log_with(1, 1, 2, 2)
    log.commit_to(3)
    log.applied = Index(3)
    log.compact(3)
    assert (log.snapshot_index, log.snapshot_term, log.first_index) == (3, 2, 4)
    assert log.term_at(3) == 2
    assert log.term_at(2) is None
    with pytest.raises(LocalProtocolError):
        log.slice(3, 100)
    log.restore(Index(4), Term(2))  # matching entry: keeps nothing after 4 here
    assert (log.snapshot_index, log.last_index, log.commit, log.applied) == (4, 4, 4, 4)
    log.restore(Index(9), Term(5))  # beyond the log: everything is replaced
    assert (log.last_index, log.last_term) == (9, 5)
