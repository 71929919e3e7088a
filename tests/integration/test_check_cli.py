"""`tejido check linearizable FILE`: exit codes and output, in-process and as a real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tejido.check.generate import generate_history, history_text, mutate_history
from tejido.cli import check

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "histories"
REPO = Path(__file__).resolve().parents[2]

runner = CliRunner()

STALE_READ = """\
{"process": 0, "type": "invoke", "f": "write", "key": "k", "value": 1}
{"process": 0, "type": "ok", "f": "write", "key": "k", "value": 1}
{"process": 1, "type": "invoke", "f": "read", "key": "k", "value": null}
{"process": 1, "type": "ok", "f": "read", "key": "k", "value": null}
"""


def write(tmp_path: Path, text: str, name: str = "h.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_linearizable_history_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, history_text(generate_history(1, operations=200, clients=5, keys=3)))
    result = runner.invoke(check.app, ["linearizable", str(path)])
    assert result.exit_code == 0, result.output
    assert "linearizable (200 operations on 3 keys)" in result.stdout


def test_a_non_linearizable_history_exits_1_with_the_counterexample(tmp_path: Path) -> None:
    result = runner.invoke(check.app, ["linearizable", str(write(tmp_path, STALE_READ))])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "NOT linearizable: key 'k' fails" in out
    assert 'process 0: write key="k" 1  [ok]  (lines 1-2)' in out
    assert 'process 1: read key="k" -> null  [ok]  (lines 3-4)' in out


def test_no_shrink_shows_every_operation_of_the_key(tmp_path: Path) -> None:
    events = mutate_history(generate_history(2, operations=100, clients=4, keys=0), 2)
    path = write(tmp_path, history_text(events))
    shrunk = runner.invoke(check.app, ["linearizable", str(path)])
    whole = runner.invoke(check.app, ["linearizable", "--no-shrink", str(path)])
    assert shrunk.exit_code == whole.exit_code == 1
    assert whole.stdout.count("process ") > shrunk.stdout.count("process ") >= 1
    assert "shrinking was off" in whole.stdout


def test_strict_fail_cas_option(tmp_path: Path) -> None:
    text = (
        '{"process": 0, "type": "invoke", "f": "write", "value": 1}\n'
        '{"process": 0, "type": "ok", "f": "write", "value": 1}\n'
        '{"process": 0, "type": "invoke", "f": "cas", "value": [1, 2]}\n'
        '{"process": 0, "type": "fail", "f": "cas", "value": [1, 2]}\n'
    )
    path = write(tmp_path, text)
    assert runner.invoke(check.app, ["linearizable", str(path)]).exit_code == 0
    strict = runner.invoke(check.app, ["linearizable", "--strict-fail-cas", str(path)])
    assert strict.exit_code == 1
    assert "cas [1,2]  [fail]" in strict.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            STALE_READ + '{"process": 1, "type": "ok", "f": "read"}\n',
            "line 5: ok read by process 1",
        ),
        ('{"process": 1, "type": "invoke", "f": "read"}\n{oops\n', "line 2: malformed JSON"),
        ('{"process": 1, "type": "begin", "f": "read"}\n', "line 1: unknown type 'begin'"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    result = runner.invoke(check.app, ["linearizable", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: ")
    assert message in lines[0]


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(check.app, ["linearizable", str(tmp_path / "absent.jsonl")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def _tejido() -> list[str]:
    script = Path(sys.executable).with_name("tejido")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tejido.cli.main"]


@pytest.mark.integration
def test_the_installed_command_checks_the_shared_histories(tmp_path: Path) -> None:
    if not (REPO / "src" / "tejido" / "cli" / "main.py").exists():
        pytest.fail("src/tejido/cli/main.py is missing: the `tejido` command has no entry point")
    if not (DATA / "expected.txt").is_file():
        pytest.fail(f"the shared histories are missing: expected {DATA.resolve()}")
    cases = {"etcd_000.jsonl": 1, "etcd_002.jsonl": 0, "kv_c10-bad.jsonl": 1}
    for name, code in cases.items():
        done = subprocess.run(
            [*_tejido(), "check", "linearizable", str(DATA / name)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, done.stdout + done.stderr
        assert ("NOT linearizable" in done.stdout) == (code == 1)
    bad = write(tmp_path, '{"process": 0, "type": "ok", "f": "write", "value": 1}\n')
    done = subprocess.run(
        [*_tejido(), "check", "linearizable", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "line 1: ok write by process 0, which has no outstanding invocation" in done.stderr
