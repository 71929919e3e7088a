"""A supervised tree: a game lobby supervises its rooms (docs/actors.md walks through it).

The lobby opens rooms as its children and watches them. Its strategy: an illegal move is
the player's fault, so the room *resumes* (keeps its board, drops the move); a corrupted
board is the room's fault, so the room *restarts* with a fresh board; a room that corrupts
its board twice within a minute is *stopped*, and the lobby hears `Terminated`. A caller
waiting for a room to close is stashed until then.

Run it: ``python examples/actors/game_lobby.py``.
"""

# ruff: noqa: T201 (a demo program: its output is what it prints)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tejido.actors import (
    Actor,
    ActorFailed,
    ActorRef,
    ActorSystem,
    Directive,
    SupervisorStrategy,
    Terminated,
    one_for_one,
)


@dataclass(frozen=True)
class Move:
    player: str
    square: int


@dataclass(frozen=True)
class ShowBoard:
    pass


class IllegalMove(ValueError):
    """The player asked for something the rules forbid."""


class CorruptBoard(RuntimeError):
    """The room's own state went bad."""


class Room(Actor[Move | ShowBoard]):
    def __init__(self) -> None:
        self.board: dict[int, str] = {}  # private state: only this actor touches it

    async def receive(self, message: Move | ShowBoard) -> Any:
        match message:
            case Move(player, square) if square < 0:
                raise CorruptBoard(f"{player} wrote square {square}")
            case Move(player, square) if square >= 64 or square in self.board:
                raise IllegalMove(f"square {square} is not free")
            case Move(player, square):
                self.board[square] = player
                return f"{player} takes square {square}"
            case ShowBoard():
                return dict(self.board)
        return self.unhandled(message)


def decide(error: Exception) -> Directive:
    if isinstance(error, IllegalMove):
        return Directive.RESUME
    return Directive.RESTART


@dataclass(frozen=True)
class OpenRoom:
    name: str


@dataclass(frozen=True)
class WaitClosed:
    name: str


class Lobby(Actor[OpenRoom | WaitClosed | Terminated]):
    supervisor_strategy: ClassVar[SupervisorStrategy] = one_for_one(
        decide, max_restarts=1, within_s=60.0
    )

    def __init__(self) -> None:
        self.rooms: dict[str, ActorRef[Move | ShowBoard]] = {}

    async def receive(self, message: OpenRoom | WaitClosed | Terminated) -> Any:
        match message:
            case OpenRoom(name):
                room = self.spawn(Room, name=name)
                self.watch(room)
                self.rooms[name] = room
                return room
            case WaitClosed(name) if name in self.rooms:
                self.stash()  # answered once the room has closed
                return None
            case WaitClosed(name):
                return f"{name} is closed"
            case Terminated(ref, cause):
                del self.rooms[ref.path.name]
                print(f"lobby: room {ref.path.name} closed ({cause.value})")
                self.unstash_all()
                return None
        return self.unhandled(message)


async def main() -> None:
    async with ActorSystem("games") as system:
        lobby = system.spawn(Lobby, name="lobby")
        chess: ActorRef[Move | ShowBoard] = await lobby.ask(OpenRoom("chess"))
        print(await chess.ask(Move("ana", 5)))
        try:
            await chess.ask(Move("ben", 5))
        except ActorFailed as failed:
            print(f"refused: {failed.cause}")
        print(f"board after a refused move: {await chess.ask(ShowBoard())}")
        chess.tell(Move("ben", -1))  # corrupts the board: the room restarts
        print(f"board after a restart: {await chess.ask(ShowBoard())}")
        chess.tell(Move("ben", -2))  # second restart within a minute: the room stops
        print(await lobby.ask(WaitClosed("chess")))


if __name__ == "__main__":
    from tejido.rpc.loop import run

    run(main())
