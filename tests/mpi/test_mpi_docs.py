"""docs/mpi.md's Examples section quotes the tested example programs verbatim."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_examples_section_quotes_the_examples() -> None:
    doc = (REPO / "docs" / "mpi.md").read_text()
    match = re.search(r"^## Examples\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
    assert match is not None, "docs/mpi.md has no Examples section"
    sources = "\n".join(p.read_text() for p in sorted((REPO / "examples" / "mpi").glob("*.py")))
    blocks = re.findall(r"```python\n(.*?)```", match.group(1), re.S)
    assert len(blocks) == 2
    for block in blocks:
        assert block in sources, f"docs/mpi.md drifted from examples/mpi:\n{block}"
