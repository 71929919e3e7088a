"""Golden scenario files: commands in, the cores' own describe() lines out.

A scenario file (in the style of etcd-io/raft's interaction tests and cockroachdb's
datadriven) starts with a paragraph of ``#`` lines saying what it proves, followed by
blocks separated by blank lines::

    # Three nodes elect node 1.

    add-nodes 3
    ----
    ok

    campaign 1
    ----
    1: BecamePreCandidate term=1
    1->2 PreVote term=1 last=0/0

Each block is one command line, ``----``, and the expected output (``ok`` when the command
printed nothing). Lines starting with ``#`` between blocks are comments and are kept.

`run_file` runs every block through a `Driver` (anything with ``run(command, args) ->
list[str]``) and compares the output. With ``TEJIDO_REWRITE=1`` in the environment it
rewrites the file with the actual output instead (then review the diff with git).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Block", "Driver", "ScenarioMismatch", "parse", "rewrite_enabled", "run_file"]

SEPARATOR = "----"


class Driver(Protocol):
    def run(self, command: str, args: list[str]) -> list[str]: ...


@dataclass
class Block:
    comments: list[str]
    command: str
    expected: list[str]
    line: int


class ScenarioMismatch(AssertionError):
    pass


def rewrite_enabled() -> bool:
    return os.environ.get("TEJIDO_REWRITE", "") not in ("", "0")


def parse(text: str) -> tuple[list[str], list[Block]]:
    """Split a scenario file into its header comment and its blocks."""
    lines = text.splitlines()
    header: list[str] = []
    position = 0
    while position < len(lines) and (lines[position].startswith("#") or not lines[position]):
        if lines[position].startswith("#"):
            header.append(lines[position])
        elif header:
            position += 1
            break
        position += 1
    blocks: list[Block] = []
    comments: list[str] = []
    while position < len(lines):
        line = lines[position]
        if not line.strip():
            position += 1
            continue
        if line.startswith("#"):
            comments.append(line)
            position += 1
            continue
        start = position
        command = line
        position += 1
        if position >= len(lines) or lines[position] != SEPARATOR:
            raise ValueError(f"line {start + 1}: expected {SEPARATOR!r} after {command!r}")
        position += 1
        expected: list[str] = []
        while position < len(lines) and lines[position].strip():
            expected.append(lines[position])
            position += 1
        blocks.append(Block(comments, command, expected, start + 1))
        comments = []
    return header, blocks


def render(header: list[str], blocks: list[Block], outputs: list[list[str]]) -> str:
    parts = ["\n".join(header)] if header else []
    for block, output in zip(blocks, outputs, strict=True):
        text = "\n".join([*block.comments, block.command, SEPARATOR, *(output or ["ok"])])
        parts.append(text)
    return "\n\n".join(parts) + "\n"


def run_file(path: Path, driver: Driver) -> None:
    """Run a scenario file; raise ScenarioMismatch at the first differing block."""
    header, blocks = parse(path.read_text())
    if not header:
        raise ValueError(f"{path}: a scenario starts with a paragraph saying what it proves")
    outputs: list[list[str]] = []
    rewrite = rewrite_enabled()
    for block in blocks:
        words = shlex.split(block.command)
        output = driver.run(words[0], words[1:])
        outputs.append(output)
        actual = output or ["ok"]
        if not rewrite and actual != block.expected:
            raise ScenarioMismatch(
                f"{path.name}:{block.line}: {block.command}\n"
                + _diff(block.expected, actual)
                + "\n(set TEJIDO_REWRITE=1 to accept the new output)"
            )
    if rewrite:
        path.write_text(render(header, blocks, outputs))


def _diff(expected: list[str], actual: list[str]) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(expected, actual, "expected", "actual", lineterm="", n=2))
