"""The nemesis on real processes (issue 5, Reliability): kill -9 and SIGSTOP under load.

Each integration test starts 3 member processes and 3 load processes (2 clients each),
injects its faults, and judges the merged history with tejido's linearizability checker
plus the "no acknowledged write lost" check (`tejido.store.nemesis`). The small tests
below them show that those checks do catch a lost write and a stale read.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tejido.check import check_linearizable, pair_operations, parse_history
from tejido.store.nemesis import lost_writes, run_scenario
from tejido.store.nemesis_load import HistoryRecorder, merge_histories


@pytest.mark.integration
def test_killing_the_leader_then_a_follower_loses_nothing(tmp_path: Path) -> None:
    report = asyncio.run(run_scenario("kill", tmp_path / "run"))
    assert report.ok, report.describe()
    assert report.operations.get("write ok", 0) > 0
    assert report.operations.get("read ok", 0) > 0
    assert report.operations.get("cas ok", 0) > 0
    old_leader, follower = report.notes["killed"]
    assert old_leader != follower
    assert report.notes["member exit codes"] == {1: 0, 2: 0, 3: 0}  # all restarted, then stopped


@pytest.mark.integration
@pytest.mark.parametrize("lease_reads", [False, True], ids=["read-index", "lease-reads"])
def test_a_paused_old_leader_never_serves_a_stale_read(tmp_path: Path, lease_reads: bool) -> None:
    report = asyncio.run(run_scenario("pause", tmp_path / "run", lease_reads=lease_reads))
    assert report.ok, report.describe()
    assert report.notes["new leader"] != report.notes["paused leader"]
    # the old leader answered reads after SIGCONT, every one judged by the checker
    assert report.notes["reads answered by the old leader"] > 0


def test_lost_writes_names_an_acknowledged_write_that_vanished() -> None:
    events = parse_history(
        [
            '{"process": 1, "type": "invoke", "f": "write", "key": "k", "value": 1}',
            '{"process": 1, "type": "ok", "f": "write", "key": "k", "value": 1}',
            '{"process": 1, "type": "invoke", "f": "write", "key": "k", "value": 2}',
            '{"process": 1, "type": "ok", "f": "write", "key": "k", "value": 2}',
            '{"process": 2, "type": "invoke", "f": "write", "key": "j", "value": 3}',
            '{"process": 2, "type": "info", "f": "write", "key": "j", "value": 3}',
        ]
    )
    ops = pair_operations(events)
    assert lost_writes(ops, {"k": 2, "j": 3}) == []  # the last ack; an unknown-outcome write
    assert lost_writes(ops, {"j": None}) == []  # the unknown write may never happen
    (problem,) = lost_writes(ops, {"k": 1})
    assert "acknowledged write was lost" in problem
    (problem,) = lost_writes(ops, {"k": None})
    assert "absent" in problem
    (problem,) = lost_writes(ops, {"k": 7})
    assert "no write wrote" in problem


def test_merged_histories_keep_real_time_order_and_catch_a_stale_read(tmp_path: Path) -> None:
    writer, reader = HistoryRecorder(), HistoryRecorder()
    writer.record(1, "invoke", "write", "k", 1)
    writer.record(1, "ok", "write", "k", 1)
    writer.record(1, "invoke", "write", "k", 2)
    writer.record(1, "ok", "write", "k", 2)
    reader.record(2, "invoke", "read", "k", None)  # strictly after the second write's ack
    reader.record(2, "ok", "read", "k", 1)  # stale
    path = tmp_path / "reader.jsonl"
    path.write_text("".join(_line(e) for e in reader.events))
    lines = merge_histories([path], writer.events, tmp_path / "merged.jsonl")
    assert [line.count('"process":1') for line in lines] == [1, 1, 1, 1, 0, 0]
    verdict = check_linearizable(parse_history(lines), strict_fail_cas=True)
    assert not verdict.linearizable
    assert verdict.key == "k"
    fresh = [
        line.replace('"value":1,"time"', '"value":2,"time"') if i == 5 else line
        for i, line in enumerate(lines)
    ]
    assert check_linearizable(parse_history(fresh)).linearizable


def test_events_with_the_same_time_are_merged_invocations_first() -> None:
    done = {"process": 1, "type": "ok", "f": "write", "key": "k", "value": 1, "time": 5}
    start = {"process": 2, "type": "invoke", "f": "read", "key": "k", "value": None, "time": 5}
    first = {"process": 1, "type": "invoke", "f": "write", "key": "k", "value": 1, "time": 4}
    lines = merge_histories([], [done, start, first])
    assert ['"type":"invoke","f":"write"' in lines[0], '"f":"read"' in lines[1]] == [True, True]


def _line(event: dict[str, object]) -> str:
    return json.dumps(event, separators=(",", ":")) + "\n"
