"""docs/rpc.md's remote-object and gRPC sections quote the tested examples verbatim."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "rpc.md").read_text()
EXAMPLES = {
    "Remote objects": (REPO / "examples" / "remote" / "chat.py").read_text(),
    "gRPC": (REPO / "examples" / "rpc" / "grpc_interop.py").read_text(),
}


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, re.S | re.M)
    assert match is not None, f"docs/rpc.md has no section {title!r}"
    return match.group(1)


def test_sections_quote_their_examples() -> None:
    for title, example in EXAMPLES.items():
        blocks = re.findall(r"```python\n(.*?)```", _section(title), re.S)
        assert blocks, f"section {title!r} shows no code"
        for block in blocks:
            assert block in example, f"docs/rpc.md section {title!r} drifted:\n{block}"
