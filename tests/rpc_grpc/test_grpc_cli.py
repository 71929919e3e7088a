"""`tejido rpc proto MODULE:Service` in-process: output to stdout or a file, and exit 2 with
one line naming the problem for every kind of bad target."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tejido.cli import rpc
from tejido.rpc.proto import proto_text

runner = CliRunner()


def test_writes_the_proto_to_stdout_and_to_a_file(tmp_path: Path) -> None:
    from grpc_fixtures import Lab

    printed = runner.invoke(rpc.app, ["proto", "grpc_fixtures:Lab"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == proto_text(Lab)
    out = tmp_path / "lab.proto"
    written = runner.invoke(rpc.app, ["proto", "grpc_fixtures:Lab", "-o", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text() == printed.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("grpc_fixtures", "expected MODULE:Service"),
        ("grpc_fixtures:", "expected MODULE:Service"),
        ("no_such_module_xyz:Shop", "cannot import 'no_such_module_xyz'"),
        ("grpc_fixtures:Nope", "has no 'Nope' (service interfaces there: Dated, Lab)"),
        ("grpc_fixtures:with_lab", "is a function, not a service interface class"),
        ("grpc_fixtures:Dated", "lab.v1.Dated.at: parameter 'when': type <class 'datetime."),
    ],
)
def test_bad_targets_exit_2_naming_the_problem(target: str, message: str) -> None:
    result = runner.invoke(rpc.app, ["proto", target])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_an_unwritable_output_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        rpc.app, ["proto", "grpc_fixtures:Lab", "-o", str(tmp_path / "no" / "x")]
    )
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
