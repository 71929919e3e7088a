"""examples/actors/remote_counter.py runs as its own program (two processes) and prints
what docs/actors.md says it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "actors" / "remote_counter.py"
DOC = REPO / "docs" / "actors.md"
EXPECTED = [
    "node b is up",
    "total on b: 15",
    "found by name: True",
    "node b is down (lost)",
    "watchdog: tejido://demo@b/user/counter terminated (node-lost)",
]


@pytest.mark.integration
def test_the_remote_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == EXPECTED


def test_the_guide_shows_the_remote_example_output() -> None:
    assert "\n".join(EXPECTED) in DOC.read_text()
