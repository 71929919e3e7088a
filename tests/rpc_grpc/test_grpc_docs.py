"""docs/rpc-grpc.md quotes the tested example verbatim: its python blocks that come from
examples/rpc/grpc_interop.py and the start of the generated .proto must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tejido.cli import rpc

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "rpc-grpc.md").read_text()
EXAMPLE = (REPO / "examples" / "rpc" / "grpc_interop.py").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.DOTALL)


def test_the_interface_and_server_blocks_are_the_examples_code() -> None:
    quoted = [b for b in blocks("python") if "class Shop:" in b or "async def serve(" in b]
    assert len(quoted) == 2
    for block in quoted:
        assert block in EXAMPLE, f"docs/rpc-grpc.md drifted from the example:\n{block}"


def test_the_proto_block_is_the_start_of_the_generated_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)  # MODULE is imported from the current directory
    (proto_block,) = blocks("proto")
    shown = proto_block.removesuffix("...\n")
    result = CliRunner().invoke(rpc.app, ["proto", "examples.rpc.grpc_interop:Shop"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(shown)
