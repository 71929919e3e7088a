"""Typed references: mypy flags a message the actor does not accept (runs mypy on a
snippet; the package's own types come from the installed source)."""

from __future__ import annotations

from pathlib import Path

import pytest

SNIPPET = """
from dataclasses import dataclass
from tejido.actors import Actor, ActorRef, ActorSystem

@dataclass(frozen=True)
class Add:
    amount: int

class Counter(Actor[Add]):
    async def receive(self, message: Add) -> int:
        return message.amount

async def main(system: ActorSystem) -> None:
    ref = system.spawn(Counter)
    ref.tell(Add(1))
    ref.tell("wrong")
    n: int = await ref.ask(Add(2), expect=int)
    s: str = await ref.ask(Add(2), expect=int)
    narrow: ActorRef[Add] = ref
"""


@pytest.mark.slow
def test_mypy_rejects_a_wrong_message_and_a_wrong_reply_type(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    stdout, stderr, status = api.run(
        [
            str(source),
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports=silent",
        ]
    )
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout + stderr
    assert len(errors) == 2, stdout
    assert 'snippet.py:16: error: Argument 1 to "tell" of "ActorRef"' in errors[0]
    assert "snippet.py:18: error:" in errors[1]  # expect=int where a str is wanted
