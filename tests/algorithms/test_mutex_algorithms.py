"""Mutual exclusion: the checker on hand-made histories, the token ring's regeneration rules
driven by hand, seed sweeps, and a broken variant the checker must catch."""

from __future__ import annotations

import pytest
from algorithms_support import make_env, sweep, sweep_chunks

from tejido.algorithms.ricart_agrawala import RARequest, RicartAgrawala
from tejido.algorithms.token_ring import LOSS_TIMER, Claim, Token, TokenRing
from tejido.check.mutex import MutexEvent, MutualExclusionChecker, check_mutual_exclusion
from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation
from tejido.core.storage import Recovered
from tejido.sim.options import FAULT_KINDS
from tejido.sim.registry import get_protocol
from tejido.sim.runner import run_seed

# The checker ---------------------------------------------------------------------------------


def test_checker_accepts_turns_and_rejects_overlap() -> None:
    turns: list[MutexEvent] = [
        (0.0, 1, "request"),
        (0.1, 2, "request"),
        (0.2, 1, "enter"),
        (0.3, 1, "exit"),
        (0.4, 2, "enter"),
        (0.5, 2, "exit"),
    ]
    assert check_mutual_exclusion(turns) is None
    overlap: list[MutexEvent] = [(0.2, 1, "enter"), (0.25, 2, "enter")]
    violation = check_mutual_exclusion(overlap)
    assert violation is not None
    assert violation.name == "mutual-exclusion"
    assert "node 2 entered" in violation.detail
    assert "node 1 has been in it" in violation.detail


def test_checker_rejects_an_exit_without_an_entry() -> None:
    violation = check_mutual_exclusion([(0.0, 1, "exit")])
    assert violation is not None
    assert violation.name == "mutex-history"


def test_checker_lists_unserved_requests_in_a_window() -> None:
    checker = MutualExclusionChecker()
    checker.feed([(1.0, 1, "request"), (2.0, 2, "request"), (2.5, 1, "enter")])
    assert checker.unserved(0.0, 10.0) == [(2, 2.0)]
    assert checker.unserved(3.0, 10.0) == []
    assert checker.granted == [(1, 1.0, 2.5)]


# Driven by hand ------------------------------------------------------------------------------


def test_ricart_agrawala_defers_to_the_older_request() -> None:
    one, two = RicartAgrawala(make_env(1, 2)), RicartAgrawala(make_env(2, 2))
    one.on_command(RequestId(1), Operation("acquire"))
    two.on_command(RequestId(2), Operation("acquire"))
    from_one = one.ready().messages
    from_two = two.ready().messages
    assert [type(m) for _, m in from_one] == [RARequest]
    # Both stamped 1; the tie breaks by node id, so node 1 goes first.
    two.on_message(NodeId(1), from_one[0][1])
    reply_to_one = two.ready().messages
    one.on_message(NodeId(2), from_two[0][1])
    assert one.ready().messages == []  # node 1 defers its reply
    assert one.deferred == [2]
    one.on_message(NodeId(2), reply_to_one[0][1])
    assert one.in_cs
    assert not two.in_cs


def _ring(n: int) -> list[TokenRing]:
    nodes = [TokenRing(make_env(i, n)) for i in range(1, n + 1)]
    for node in nodes:
        node.on_start(Recovered())
    return nodes


def test_token_ring_refuses_stale_and_duplicate_tokens() -> None:
    ring = _ring(3)
    two = ring[1]
    two.on_message(NodeId(1), Token(0, 1, 1))
    assert two.holding == Token(0, 1, 1)
    two.holding = None
    two.on_message(NodeId(1), Token(0, 1, 1))  # a duplicate of the one just accepted
    assert two.holding is None
    two.on_message(NodeId(1), Claim(1, 3))  # node 3 claims generation 1
    two.on_message(NodeId(1), Token(0, 1, 4))  # an old token, still on the wire
    assert two.holding is None


def test_token_ring_claim_is_refused_by_the_holder() -> None:
    ring = _ring(3)
    one = ring[0]
    assert one.holding is not None  # node 1 made the first token at start
    one.ready()
    one.on_message(NodeId(3), Claim(1, 2))
    assert one.ready().messages == []  # dropped: the token is alive here


def test_token_ring_regenerates_when_its_claim_returns() -> None:
    ring = _ring(3)
    three = ring[2]
    three.ready()
    three.on_timer(LOSS_TIMER)  # no token seen since start: presumed lost
    claims = [m for _, m in three.ready().messages]
    assert claims == [Claim(1, 3)]
    three.on_message(NodeId(2), Claim(1, 3))  # the claim went all the way round
    assert three.holding == Token(1, 3, 0)


# Seed sweeps --------------------------------------------------------------------------------

ALGORITHMS = ["central-mutex", "ricart-agrawala", "lamport-mutex", "token-ring"]


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("seeds", sweep_chunks(60, 30), ids=str)
def test_mutex_seed_sweep(name: str, seeds: range) -> None:
    results = sweep(name, seeds, duration_s=6.0)
    assert sum(r.operations for r in results) > 20 * len(results)


def test_token_ring_survives_token_loss() -> None:
    """Under message loss the token disappears; the sweep must see it regenerated."""
    spec = get_protocol("token-ring")
    regenerated = 0
    for seed in range(1, 6):
        result = run_seed(spec, seed, faults=("drop",), duration_s=6.0, record_trace=True)
        assert result.ok, result.violation
        assert result.trace is not None
        regenerated += sum(
            1
            for r in result.trace.records
            if r["kind"] == "event" and str(r["event"]).startswith("TOKEN REGENERATED")
        )
    assert regenerated > 0


def test_mutex_with_five_nodes() -> None:
    for name in ALGORITHMS:
        sweep(name, range(1, 3), duration_s=6.0, nodes=5)


def test_checker_catches_ricart_agrawala_without_deferral() -> None:
    spec = get_protocol("ricart-agrawala-no-defer")
    assert spec.broken
    found = []
    for seed in range(1, 6):
        result = run_seed(spec, seed, faults=FAULT_KINDS, duration_s=3.0)
        if result.violation is not None:
            found.append(result.violation.property)
    assert "mutual-exclusion" in found, found
