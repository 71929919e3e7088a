"""Unit tests of the pieces `tejido run` is made of: the trace recorder and the judges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tejido.algorithms.bully import CoordinatorKnown, Elected
from tejido.algorithms.mutex_base_a1 import EnterCS, ExitCS
from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.net.run import Verdict, judge, merge_traces
from tejido.net.trace import TraceRecorder, message_id


class Ping(Message, frozen=True):
    n: int


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_clocks_follow_lamports_rules_across_two_recorders(tmp_path: Path) -> None:
    now = [100.0]
    a = TraceRecorder(NodeId(1), tmp_path / "a", start=100.0, clock=lambda: now[0])
    b = TraceRecorder(NodeId(2), tmp_path / "b", start=100.0, clock=lambda: now[0])
    for _ in range(5):  # a is ahead: b must jump past it on receipt
        a.event(EnterCS(1))
    frame = a.wrap(NodeId(2), Ping(1), b"payload")
    now[0] = 100.5
    stamp = b.unwrap(frame)
    assert stamp.payload == b"payload"
    b.received(NodeId(1), stamp)
    assert (a.lamport, b.lamport) == (6, 7)
    assert b.vc == {1: 6, 2: 1}
    send, deliver = lines(tmp_path / "a")[-1], lines(tmp_path / "b")[-1]
    assert send["id"] == deliver["id"] == message_id(1, 1) == "n1:1"
    assert (send["kind"], deliver["kind"], deliver["t"]) == ("send", "deliver", 0.5)


def test_a_restarted_recorder_continues_its_clock_and_message_numbers(tmp_path: Path) -> None:
    path = tmp_path / "n1.trace.jsonl"
    first = TraceRecorder(NodeId(1), path, start=0.0)
    first.wrap(NodeId(2), Ping(1), b"")
    first.wrap(NodeId(2), Ping(2), b"")
    first.event(ExitCS(1))
    first.close()
    with path.open("ab") as f:
        f.write(b'{"t": 1.0, "kind": "ev')  # the last line torn by SIGKILL
    again = TraceRecorder(NodeId(1), path, start=0.0)
    assert (again.lamport, again.seq, again.vc) == (3, 2, {1: 3})
    again.wrap(NodeId(2), Ping(3), b"")
    text = path.read_text().splitlines()
    assert text[-2] == '{"t": 1.0, "kind": "ev'  # the torn line stays alone on its line
    last = json.loads(text[-1])
    assert last["id"] == "n1:3"  # never a second "n1:1"
    assert last["lamport"] == 4


def test_merge_sorts_by_time_and_brackets_with_meta_and_end(tmp_path: Path) -> None:
    (tmp_path / "n1").write_text('{"t": 2.0, "kind": "timer", "node": 1, "name": "x"}\n')
    (tmp_path / "n2").write_text('{"t": 1.0, "kind": "timer", "node": 2, "name": "y"}\nnot json\n')
    merged = merge_traces(
        {"t": 0.0, "kind": "meta"},
        [tmp_path / "n1", tmp_path / "n2", tmp_path / "missing"],
        [{"t": 1.5, "kind": "crash", "node": 3}],
        3.0,
    )
    assert [r["kind"] for r in merged] == ["meta", "timer", "crash", "timer", "end"]
    assert [r["t"] for r in merged] == [0.0, 1.0, 1.5, 2.0, 3.0]


def event(t: float, node: int, ev: object, lamport: int) -> dict[str, object]:
    import msgspec

    return {"t": t, "kind": "event", "node": node, "lamport": lamport,
            "data": msgspec.to_builtins(ev)}  # fmt: skip


def only(verdicts: list[Verdict]) -> Verdict:
    assert len(verdicts) == 1, verdicts
    return verdicts[0]


def test_judge_catches_two_nodes_in_the_critical_section() -> None:
    good = [event(1, 1, EnterCS(1), 1), event(2, 1, ExitCS(1), 2), event(3, 2, EnterCS(1), 3)]
    assert only(judge("x", good, [], alive=[1, 2], nodes=2)).ok
    bad = [event(1, 1, EnterCS(1), 1), event(2, 2, EnterCS(1), 3), event(3, 1, ExitCS(1), 2)]
    verdict = only(judge("x", bad, [], alive=[1, 2], nodes=2))
    assert (verdict.check, verdict.ok) == ("mutual-exclusion", False)


def test_judge_election_wants_every_live_node_to_name_the_highest_live_id() -> None:
    agreed = [event(1, 2, Elected(1), 1), event(1, 1, CoordinatorKnown(2), 2)]
    assert only(judge("bully", agreed, [], alive=[1, 2], nodes=3)).ok
    verdict = only(judge("bully", agreed, [], alive=[1, 2, 3], nodes=3))  # n3 is alive
    assert not verdict.ok
    assert "n1->n2, n2->n2, n3->?" in verdict.detail


@pytest.mark.parametrize(("second", "ok"), [("commit", True), ("abort", False)])
def test_judge_atomicity(second: str, ok: bool) -> None:
    records = [
        {"t": 1, "kind": "event", "node": 1, "data": {"type": "Decided", "txn": 7,
                                                      "outcome": "commit", "role": "c"}},
        {"t": 2, "kind": "event", "node": 2, "data": {"type": "Decided", "txn": 7,
                                                      "outcome": second, "role": "p"}},
    ]  # fmt: skip
    assert only(judge("two-phase-commit", records, [], alive=[1, 2], nodes=2)).ok is ok


def test_judge_broadcast_order_catches_a_causal_violation() -> None:
    def deliver(t: float, node: int, origin: int, number: int, lamport: int) -> dict[str, object]:
        return {"t": t, "kind": "event", "node": node, "lamport": lamport,
                "data": {"type": "Delivered", "origin": origin, "number": number,
                         "value": origin * 10 + number}}  # fmt: skip

    def bcast(node: int, value: int, lamport: int) -> dict[str, object]:
        return {"t": 0, "kind": "command", "node": node, "lamport": lamport,
                "f": "broadcast", "value": value}  # fmt: skip

    # n1 broadcasts 1.1; n2 delivers it and then broadcasts 2.1; n3 delivers 2.1 first.
    records = [bcast(1, 11, 1), deliver(0, 1, 1, 1, 2), deliver(0, 2, 1, 1, 3),
               bcast(2, 21, 4), deliver(0, 2, 2, 1, 5), deliver(0, 3, 2, 1, 6),
               deliver(0, 3, 1, 1, 7)]  # fmt: skip
    verdict = only(judge("causal-broadcast", records, [], alive=[1, 2, 3], nodes=3))
    assert (verdict.check, verdict.ok) == ("causal-order", False)
    fixed = [*records[:5], deliver(0, 3, 1, 1, 6), deliver(0, 3, 2, 1, 7)]
    assert only(judge("causal-broadcast", fixed, [], alive=[1, 2, 3], nodes=3)).ok


def test_judge_snapshot_totals_must_conserve_the_money() -> None:
    records = [{"t": 1, "kind": "event", "node": 1,
                "data": {"type": "SnapshotTaken", "snapshot": [1, 1], "total": 2999}}]  # fmt: skip
    verdict = only(judge("chandy-lamport", records, [], alive=[1, 2, 3], nodes=3))
    assert not verdict.ok
    assert "2999" in verdict.detail
