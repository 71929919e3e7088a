"""examples/remote/chat.py runs as its own program and says what the guide says it does;
docs/remote.md quotes that example verbatim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "remote" / "chat.py"
DOC = REPO / "docs" / "remote.md"


@pytest.mark.integration
def test_the_chat_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "alice joins; in the room: ['alice']",
        "alice sees <room> bob joined",
        "bob joins; in the room: ['alice', 'bob']",
        "alice sees <bob> hi alice",
        "bob sees <alice> hello bob",
        "join refused: 'bob' is already in the room",
        "room: dropped bob, whose node is gone",
        "alice's line reached 1 member(s)",
    ]


def test_the_guide_quotes_the_example() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    code = EXAMPLE.read_text()
    quoted = [block for block in blocks if not block.startswith("# not from the example")]
    assert len(quoted) >= 3
    for block in quoted:
        assert block in code, f"docs/remote.md drifted from examples/remote/chat.py:\n{block}"
