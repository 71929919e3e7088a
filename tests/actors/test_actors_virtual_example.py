"""examples/actors/lobby_cluster.py at small scale: three node processes, one killed with
SIGKILL midway, and every player's state found intact, both by the example's own check
and by reading the state files here; docs/actors.md quotes the example verbatim."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tejido.actors.persistence import FileProvider, GrainId

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "actors" / "lobby_cluster.py"
DOC = REPO / "docs" / "actors.md"
PLAYERS, ROOMS, ROUNDS = 150, 10, 3
EXPECTED = [
    "3 nodes up: n1 n2 n3",
    f"round 1: {PLAYERS} plays acknowledged",
    "killed n2 with SIGKILL midway through round 2",
    f"round 2: {PLAYERS} plays acknowledged",
    f"round 3: {PLAYERS} plays acknowledged",
    f"players checked: {PLAYERS}, with lost state: 0",
    f"rooms consistent: {ROOMS}/{ROOMS}",
]


class PlayerState(msgspec.Struct):
    rounds: int
    points: int
    rooms: list[str]


@pytest.mark.integration
def test_no_player_state_is_lost_when_a_node_is_killed(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            f"--players={PLAYERS}",
            f"--rooms={ROOMS}",
            f"--rounds={ROUNDS}",
            "--no-fsync",
            f"--dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == EXPECTED
    # read the state files ourselves: each player played every round, once
    files = FileProvider(tmp_path, fsync=False)

    async def load_all() -> list[PlayerState]:
        states = []
        for i in range(PLAYERS):
            stored = await files.load(GrainId("Player", f"player-{i}"))
            assert stored.data is not None, f"player-{i} has no saved state"
            states.append(msgspec.msgpack.decode(stored.data, type=PlayerState))
        return states

    for i, state in enumerate(asyncio.run(load_all())):
        assert state.rounds == ROUNDS
        assert state.points == ROUNDS * (i % 7 + 1)
        assert state.rooms == [f"room-{(i + r) % ROOMS}" for r in range(1, ROUNDS + 1)]


def test_the_guide_quotes_the_example() -> None:
    text = DOC.read_text()
    section = text[text.index("## A virtual actor") :]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    code = EXAMPLE.read_text()
    quoted = [block for block in blocks if not block.startswith("# not from the example")]
    assert len(quoted) >= 2
    for block in quoted:
        assert block in code, f"docs/actors.md drifted from {EXAMPLE.name}:\n{block}"
    assert "\n".join(EXPECTED) in section
