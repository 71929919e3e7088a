"""Typed grain references: ``system.grain(Counter, key)`` is a ``GrainRef`` of what the
grain accepts, so mypy flags a wrong message (runs mypy on a snippet)."""

from __future__ import annotations

from pathlib import Path

import pytest

SNIPPET = """
from dataclasses import dataclass
import msgspec
from tejido.actors import ActorSystem, Grain, GrainRef

@dataclass(frozen=True)
class Add:
    amount: int

class Tally(msgspec.Struct):
    total: int = 0

class Counter(Grain[Add, Tally]):
    state_type = Tally

    async def receive(self, message: Add) -> int:
        self.state.total += message.amount
        return self.state.total

async def main(system: ActorSystem) -> None:
    ref = system.grain(Counter, "user-42")
    ref.tell(Add(1))
    ref.tell("wrong")  # flagged
    n: int = await ref.ask(Add(2), expect=int)
    typed: GrainRef[Add] = ref
    other: GrainRef[str] = ref  # flagged
"""


@pytest.mark.slow
def test_mypy_flags_a_message_the_grain_does_not_accept(tmp_path: Path) -> None:
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
    flagged = [n for n, line in enumerate(SNIPPET.splitlines(), 1) if line.endswith("# flagged")]
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout + stderr
    assert [int(line.split(":")[1]) for line in errors] == flagged, stdout
    assert 'Argument 1 to "tell" of "GrainRef"' in errors[0]
