"""Whole runs: reproducibility from the seed, faults, and every way a run can fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tejido.core import (
    Env,
    Message,
    NodeId,
    Operation,
    Outcome,
    Process,
    Recovered,
    RequestId,
    TimerName,
)
from tejido.sim.clients import KeyValueWorkload
from tejido.sim.options import FAULT_KINDS, draw_options
from tejido.sim.registry import REGISTRY, ProtocolSpec, get_protocol
from tejido.sim.runner import run_seed

ALL = FAULT_KINDS


def test_same_seed_same_trace_different_seed_different_trace() -> None:
    spec = get_protocol("register")
    a = run_seed(spec, 11, faults=ALL, duration_s=3.0, record_trace=True)
    b = run_seed(spec, 11, faults=ALL, duration_s=3.0, record_trace=True)
    c = run_seed(spec, 12, faults=ALL, duration_s=3.0, record_trace=True)
    assert a.trace is not None
    assert b.trace is not None
    assert c.trace is not None
    assert a.trace.digest() == b.trace.digest()
    assert a.history == b.history
    assert a.trace.digest() != c.trace.digest()


def test_tracing_does_not_change_the_run() -> None:
    spec = get_protocol("register")
    traced = run_seed(spec, 5, faults=ALL, duration_s=3.0, record_trace=True)
    plain = run_seed(spec, 5, faults=ALL, duration_s=3.0, record_trace=False)
    assert (traced.events, traced.sent, traced.history) == (plain.events, plain.sent, plain.history)


def test_swarm_draws_different_fault_sets() -> None:
    drawn = {draw_options(s, 3, 10.0, ALL).faults for s in range(40)}
    assert len(drawn) > 10
    assert all(set(f) <= set(ALL) and f for f in drawn)
    assert draw_options(1, 3, 10.0, ("drop",)).faults == ("drop",)
    assert draw_options(1, 3, 10.0, ()).faults == ()


@pytest.mark.parametrize("seed", range(1, 16))
def test_register_is_linearizable_and_live_under_all_faults(seed: int) -> None:
    result = run_seed(get_protocol("register"), seed, nodes=3, faults=ALL, duration_s=6.0)
    assert result.ok, f"seed {seed}: {result.violation}"
    assert result.operations > 50


def test_register_with_five_nodes_and_crashes_only() -> None:
    result = run_seed(get_protocol("register"), 3, nodes=5, faults=("crash",), duration_s=6.0)
    assert result.ok, result.violation
    assert "crash" in result.options.faults


def first_failure(name: str, seeds: range) -> int:
    for seed in seeds:
        result = run_seed(get_protocol(name), seed, faults=ALL, duration_s=4.0)
        if not result.ok:
            assert result.violation is not None
            assert result.violation.property == "linearizability", result.violation
            return seed
    raise AssertionError(f"{name}: no violation found in seeds {seeds}")


def test_the_checker_catches_reads_that_skip_the_quorum() -> None:
    first_failure("register-local-reads", range(1, 20))


def test_the_checker_catches_reads_that_skip_the_write_back() -> None:
    first_failure("register-no-writeback", range(1, 60))


# -------------------------------------------------------------------- misbehaving protocols


class Bang(Message, frozen=True):
    pass


class Exploder(Process):
    """Raises on the first message it receives."""

    def on_start(self, recovered: Recovered) -> None:
        self.broadcast(Bang())

    def on_message(self, src: NodeId, message: Message) -> None:
        raise RuntimeError("boom from the protocol")


class Spinner(Process):
    """Sets a zero-delay timer forever: virtual time never advances."""

    def on_start(self, recovered: Recovered) -> None:
        self.set_timer("spin", 0.0)

    def on_timer(self, name: TimerName) -> None:
        self.set_timer("spin", 0.0)


class Mute(Process):
    """Never answers its clients."""

    def on_command(self, request: RequestId, operation: Operation) -> None:
        pass


class Forgetful(Process):
    """Acknowledges writes and forgets them: reads always see nothing."""

    def on_command(self, request: RequestId, operation: Operation) -> None:
        value = None if operation.f == "read" else operation.value
        self.reply(request, Outcome("ok", value))


@pytest.fixture
def registry() -> Iterator[dict[str, ProtocolSpec]]:
    saved = dict(REGISTRY)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(saved)


def spec(name: str, factory: type[Process], **kwargs: object) -> ProtocolSpec:
    def make(env: Env) -> Process:
        return factory(env)

    return ProtocolSpec(name=name, summary="test", factory=make, **kwargs)  # type: ignore[arg-type]


def test_a_protocol_that_raises_is_reported_as_a_crash() -> None:
    result = run_seed(spec("exploder", Exploder), 4, duration_s=1.0, record_trace=True)
    assert result.violation is not None
    assert result.violation.property == "crash"
    assert "RuntimeError: boom from the protocol" in result.violation.detail
    assert result.trace is not None
    assert result.trace.records[-2]["kind"] == "violation"
    assert result.trace.records[-1]["kind"] == "end"


def test_a_run_that_never_settles_hits_the_event_budget() -> None:
    result = run_seed(spec("spinner", Spinner), 1, duration_s=1.0, max_events=10_000)
    assert result.violation is not None
    assert result.violation.property == "event-budget"


def test_a_protocol_that_never_answers_breaks_liveness() -> None:
    mute = spec("mute", Mute, workload=lambda: KeyValueWorkload())
    result = run_seed(mute, 1, faults=("drop",), duration_s=5.0)
    assert result.violation is not None
    assert result.violation.property == "liveness"


def test_a_protocol_that_loses_writes_is_not_linearizable() -> None:
    forgetful = spec("forgetful", Forgetful, workload=lambda: KeyValueWorkload(), linearizable=True)
    result = run_seed(forgetful, 1, duration_s=2.0)
    assert result.violation is not None
    assert result.violation.property == "linearizability"
