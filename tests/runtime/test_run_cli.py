"""`tejido run`: the classical algorithms on real local processes.

Each test starts real ``tejido node run`` processes through the CLI, then checks what it
printed (events with node ids and Lamport times, the checkers' verdicts), the merged trace
(clocks respect each node's order and every send -> receive) and the HTML diagram.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tejido.cli.main import app
from tejido.viz import read_trace

EVENT = re.compile(r"^\s*[\d.]+s \[L=(\d+)\] n(\d+) (.*)$")


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tejido.cli.main", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def events_of(stdout: str) -> list[tuple[int, int, str]]:
    """(node, lamport, text) of every printed event line, in printed order."""
    out = []
    for line in stdout.splitlines():
        m = EVENT.match(line)
        if m:
            out.append((int(m.group(2)), int(m.group(1)), m.group(3)))
    return out


def assert_lamport_increases_per_node(events: list[tuple[int, int, str]]) -> None:
    last: dict[int, int] = {}
    for node, lamport, text in events:
        assert lamport > last.get(node, 0), f"n{node} {text!r} at L={lamport} after {last}"
        last[node] = lamport


def assert_trace_clocks(trace: Path) -> list[dict[str, object]]:
    records = read_trace(trace)
    assert records[0]["kind"] == "meta"
    assert records[-1]["kind"] == "end"
    sends = {r["id"]: r for r in records if r["kind"] == "send"}
    delivers = [r for r in records if r["kind"] == "deliver"]
    assert sends
    assert delivers
    for d in delivers:
        s = sends[d["id"]]  # every delivery matches a recorded send
        assert (s["src"], s["dst"]) == (d["src"], d["dst"])
        assert d["lamport"] > s["lamport"], (s, d)  # type: ignore[operator]
        vs, vd = s["vc"], d["vc"]
        assert isinstance(vs, dict)
        assert isinstance(vd, dict)
        assert all(vd.get(k, 0) >= c for k, c in vs.items()), (s, d)
    per_node: dict[object, list[int]] = defaultdict(list)
    for r in records:
        owner = r.get("node", r.get("src") if r["kind"] == "send" else r.get("dst"))
        if isinstance(r.get("lamport"), int):
            per_node[owner].append(r["lamport"])  # type: ignore[arg-type]
    for node, stamps in per_node.items():
        assert all(a < b for a, b in itertools.pairwise(stamps)), node
    return records


@pytest.mark.integration
def test_ricart_agrawala_enters_and_draws(tmp_path: Path) -> None:
    html, trace = tmp_path / "ra.html", tmp_path / "ra.trace.jsonl"
    result = run_cli(
        "ricart-agrawala", "--nodes", "3", "--time", "3", "--ops", "2",
        "--html", str(html), "--trace", str(trace),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    entered = sorted((n, t) for n, _, t in events if t.startswith("ENTER CS"))
    assert entered == [(n, f"ENTER CS #{k}") for n in (1, 2, 3) for k in (1, 2)]
    assert_lamport_increases_per_node(events)
    assert "check mutual-exclusion: PASS (6 entries" in result.stdout
    records = assert_trace_clocks(trace)
    assert sum(1 for r in records if r["kind"] == "complete" and r["type"] == "ok") == 6
    page = html.read_text()
    assert "tejido run ricart-agrawala" in page
    data = page.split('id="trace-data">', 1)[1].split("</script>", 1)[0]
    model = json.loads(data)
    assert model["nodes"] == [1, 2, 3]  # one lane per process
    assert len(model["msgs"]) == sum(1 for r in records if r["kind"] == "send")


@pytest.mark.integration
def test_bully_elects_the_highest_live_id_after_a_kill_and_after_the_restart(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "bully.trace.jsonl"
    result = run_cli(
        "bully", "--nodes", "3", "--kill", "3", "--at", "0.5", "--restart-after", "1",
        "--time", "3", "--trace", str(trace),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    killed = next(i for i, line in enumerate(lines) if "n3 KILLED" in line)
    back = next(i for i, line in enumerate(lines) if "n3 restarts" in line)
    before = events_of("\n".join(lines[:killed]))
    down = events_of("\n".join(lines[killed:back]))
    after = events_of("\n".join(lines[back:]))
    assert (3, "ELECTED (coordinator)") in [(n, t) for n, _, t in before]
    assert (2, "ELECTED (coordinator)") in [(n, t) for n, _, t in down]
    assert (1, "coordinator is 2") in [(n, t) for n, _, t in down]
    assert all(n != 3 for n, _, _ in down)  # a killed process reports nothing
    assert (3, "ELECTED (coordinator)") in [(n, t) for n, _, t in after]  # it bullies back
    # one lane per node: n3's clock goes on from where its killed incarnation stopped
    assert_lamport_increases_per_node(before + down + after)
    assert "check election: PASS (every live node names n3" in result.stdout
    records = assert_trace_clocks(trace)
    assert [(r["kind"], r["node"]) for r in records if r["kind"] in ("crash", "restart")] == [
        ("crash", 3),
        ("restart", 3),
    ]


@pytest.mark.integration
def test_causal_broadcast_delivers_everything_everywhere_in_causal_order(tmp_path: Path) -> None:
    trace = tmp_path / "cb.trace.jsonl"
    result = run_cli(
        "causal-broadcast", "--nodes", "3", "--time", "2", "--ops", "2", "--trace", str(trace)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    delivered: dict[int, set[str]] = defaultdict(set)
    for node, _, text in events:
        if text.startswith("deliver "):
            delivered[node].add(text.split()[1])
    every = {f"{o}.{k}" for o in (1, 2, 3) for k in (1, 2)}
    assert dict(delivered) == {1: every, 2: every, 3: every}
    assert_lamport_increases_per_node(events)
    assert "check causal-order: PASS (18 deliveries)" in result.stdout
    assert_trace_clocks(trace)


@pytest.mark.integration
def test_two_phase_commit_decides_atomically(tmp_path: Path) -> None:
    result = run_cli("two-phase-commit", "--nodes", "3", "--time", "2", "--ops", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    decided: dict[str, set[str]] = defaultdict(set)
    for _, _, text in events:
        m = re.match(r"Decided txn=(\S+) outcome=(\w+)", text)
        if m:
            decided[m.group(1)].add(m.group(2))
    assert len(decided) == 6  # 2 transactions from each of 3 clients
    assert all(len(outcomes) == 1 for outcomes in decided.values()), decided
    assert_lamport_increases_per_node(events)
    assert "check atomicity: PASS (6 transactions" in result.stdout


runner = CliRunner()


def test_unknown_algorithm_is_refused_with_the_list() -> None:
    result = runner.invoke(app, ["run", "no-such-thing"])
    assert result.exit_code == 2
    assert "unknown algorithm 'no-such-thing'" in result.output
    assert "ricart-agrawala" in result.output
    assert "bully" in result.output
    assert "register-no-writeback" not in result.output  # broken-on-purpose ones are hidden


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bully", "--nodes", "3", "--kill", "4"], "--kill 4: node ids are 1..3"),
        (["bully", "--kill", "1", "--at", "9", "--time", "2"], "--at 9.0: must be in [0, --time)"),
        (["bully", "--restart-after", "1"], "--restart-after needs --kill"),
        (["two-phase-commit", "--nodes", "1"], "two-phase-commit needs at least 2"),
        (["bully", "--time", "0"], "--time 0.0: must be positive"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert message in result.output
