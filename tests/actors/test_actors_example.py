"""examples/actors/game_lobby.py runs as its own program and prints what docs/actors.md
says it prints; the guide quotes that example verbatim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "actors" / "game_lobby.py"
DOC = REPO / "docs" / "actors.md"
EXPECTED = [
    "ana takes square 5",
    "refused: square 5 is not free",
    "board after a refused move: {5: 'ana'}",
    "board after a restart: {}",
    "lobby: room chess closed (failed)",
    "chess is closed",
]


@pytest.mark.integration
def test_the_lobby_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == EXPECTED
    assert "restart limit (1 in 60 s) reached; stop" in result.stderr


def test_the_guide_quotes_the_example_and_its_output() -> None:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    # every quoted block comes from one of the tested examples in examples/actors/
    code = "\n".join(path.read_text() for path in sorted(EXAMPLE.parent.glob("*.py")))
    quoted = [block for block in blocks if not block.startswith("# not from the example")]
    assert len(quoted) >= 3
    for block in quoted:
        assert block in code, f"docs/actors.md drifted from examples/actors/:\n{block}"
    assert "\n".join(EXPECTED) in text
