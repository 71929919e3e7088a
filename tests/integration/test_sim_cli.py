"""`tejido sim` as a user runs it: real subprocesses, exit codes, reproduce lines."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]


def tejido(
    *args: str, cwd: Path | None = None, hashseed: str = "0"
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    return subprocess.run(
        [*TEJIDO, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False
    )


def test_one_seed_replays_byte_for_byte_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    digests = []
    for hashseed in ("1", "987654"):
        trace = tmp_path / f"run-{hashseed}.jsonl"
        done = tejido(
            "sim", "register", "--nodes", "5", "--seed", "42", "--faults", "all", "--time", "4",
            "--trace", str(trace), hashseed=hashseed,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        digests.append(hashlib.sha256(trace.read_bytes()).hexdigest())
        assert trace.stat().st_size > 10_000
    assert digests[0] == digests[1]


def test_list_prints_one_protocol_per_line() -> None:
    done = tejido("sim", "--list")
    assert done.returncode == 0
    names = done.stdout.split()
    assert "register" in names
    assert "relay" in names
    assert not any("broken" in n or n.startswith("register-") for n in names)


def test_a_seed_range_ends_with_the_summary_line() -> None:
    done = tejido("sim", "register", "--seeds", "1..3", "--time", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"seeds=3 violations=0 events=\d+ wall=\d+\.\d+s", last), last


def test_a_violation_prints_seed_property_and_a_reproduce_line_that_reproduces(
    tmp_path: Path,
) -> None:
    done = tejido("sim", "register-local-reads", "--seeds", "1..10", "--time", "4", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "property=linearizability" in out
    match = re.search(r"FAIL seed=(\d+)", out)
    assert match
    repro = re.search(r"reproduce: (tejido sim .*)", out)
    assert repro, out
    assert re.search(r"seeds=10 violations=[1-9]\d* events=\d+ wall=", out.splitlines()[-1])
    first_trace = tmp_path / "runs" / f"register-local-reads-seed{match.group(1)}.trace.jsonl"
    assert first_trace.exists()
    assert (tmp_path / "runs" / f"register-local-reads-seed{match.group(1)}.html").exists()

    args = shlex.split(repro.group(1))[1:]
    redirected = [str(tmp_path / "again.jsonl") if a.endswith(".trace.jsonl") else a for a in args]
    assert redirected != args  # the reproduce line names the trace it wrote
    again = tejido(*redirected, cwd=tmp_path)
    assert again.returncode == 1
    assert f"FAIL seed={match.group(1)} property=linearizability" in again.stdout
    assert (tmp_path / "again.jsonl").read_bytes() == first_trace.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim", "paxos-of-doom"], "unknown protocol 'paxos-of-doom'"),
        (["sim", "register", "--seeds", "9..3"], "empty seed range '9..3'"),
        (["sim", "register", "--seeds", "a..b"], "bad seed range"),
        (["sim", "register", "--seed", "1", "--seeds", "1..2"], "either --seed or --seeds"),
        (["sim", "register", "--faults", "meteor"], "unknown fault kind(s) meteor"),
        (["sim", "register", "--nodes", "0"], "--nodes 0"),
        (["sim", "register", "--time", "-1"], "--time must be positive"),
        (["sim", "--list", "register"], "--list takes no protocol"),
        (["sim", "register", "--seeds", "1..2", "--html", "x.html"], "use them with --seed"),
        (["sim"], "missing PROTOCOL"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = tejido(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]


def test_html_is_written_for_a_single_seed(tmp_path: Path) -> None:
    html = tmp_path / "run.html"
    done = tejido("sim", "register", "--seed", "3", "--time", "2", "--html", str(html))
    assert done.returncode == 0, done.stderr
    assert f"diagram: {html}" in done.stdout
    text = html.read_text()
    assert "<svg" in text or "<script" in text
    assert "register" in text
