"""Progress state transitions (tejido/raft/progress.py, the table at the top)."""

from __future__ import annotations

import pytest

from tejido.core.errors import InvariantViolation
from tejido.raft.progress import Progress, ProgressState
from tejido.raft.types import Index

WINDOW, BYTES = 3, 1000


def replicating(match: int) -> Progress:
    progress = Progress(Index(match + 1))
    progress.on_accepted(Index(match))
    if match == 0:
        progress.become_replicate()
    return progress


def test_probe_sends_one_append_then_pauses() -> None:
    progress = Progress(Index(5))
    assert not progress.paused(WINDOW, BYTES)
    progress.on_sent(Index(6), 10)
    assert progress.paused(WINDOW, BYTES)
    assert progress.next == 5  # a probe does not move next optimistically


def test_accept_moves_probe_to_replicate() -> None:
    progress = Progress(Index(5))
    progress.on_sent(Index(6), 10)
    assert progress.on_accepted(Index(6))
    assert progress.state is ProgressState.REPLICATE
    assert (progress.match, progress.next) == (6, 7)


def test_replicate_pipelines_up_to_the_window() -> None:
    progress = replicating(4)
    for last in (5, 6, 7):
        assert not progress.paused(WINDOW, BYTES)
        progress.on_sent(Index(last), 10)
    assert progress.next == 8
    assert progress.paused(WINDOW, BYTES)
    progress.on_accepted(Index(6))  # frees the first two in-flight appends
    assert list(progress.inflights) == [(7, 10)]
    assert not progress.paused(WINDOW, BYTES)


def test_replicate_is_bounded_in_bytes() -> None:
    progress = replicating(4)
    progress.on_sent(Index(5), 600)
    assert not progress.paused(WINDOW, BYTES)
    progress.on_sent(Index(6), 600)
    assert progress.paused(WINDOW, BYTES)


def test_heartbeat_response_frees_one_slot_of_a_full_window() -> None:
    progress = replicating(4)
    for last in (5, 6, 7):
        progress.on_sent(Index(last), 10)
    progress.on_heartbeat_response(WINDOW, BYTES)
    assert len(progress.inflights) == 2
    assert progress.recent_active


def test_rejection_in_replicate_falls_back_to_probe_at_the_hint() -> None:
    progress = replicating(4)
    progress.on_sent(Index(8), 10)
    assert progress.on_rejected(Index(4 + 4), Index(6))
    assert progress.state is ProgressState.PROBE
    assert progress.next == 6


def test_stale_rejections_are_ignored() -> None:
    progress = replicating(6)
    assert not progress.on_rejected(Index(5), Index(2))  # at or below match
    probe = Progress(Index(10))
    assert not probe.on_rejected(Index(7), Index(3))  # not the append we wait for
    assert probe.on_rejected(Index(9), Index(3))
    assert probe.next == 3


def test_next_never_drops_below_match_plus_one() -> None:
    progress = replicating(6)
    progress.on_sent(Index(9), 10)
    progress.on_rejected(Index(8), Index(1))
    assert progress.next == 7


def test_snapshot_state_pauses_appends_and_returns_to_probe() -> None:
    progress = Progress(Index(3))
    progress.become_snapshot(Index(20))
    assert progress.paused(WINDOW, BYTES)
    with pytest.raises(InvariantViolation):
        progress.on_sent(Index(3), 1)
    assert not progress.on_rejected(Index(2), Index(1))
    progress.on_accepted(Index(20))
    assert progress.state is ProgressState.PROBE
    assert progress.next == 21
