"""Virtual actors on a 3-node cluster: players and rooms of a game lobby, one node killed.

Every player and every room is a *grain* (a virtual actor, `tejido.actors.virtual`):
addressed by its name, activated on first use on the node the hash ring picks, its
state saved to a directory shared by the nodes (`FileProvider`) before each reply.

The program starts three node processes (``n1``, ``n2``, ``n3``) and joins the cluster
itself as ``client``, a node that hosts no grains. It plays ``--rounds`` rounds: in each,
every player scores in a room, and the room records the score. Midway through round 2 it
kills ``n2`` with SIGKILL. Calls to grains that lived there fail until the others have
noticed (about a second); the client retries them, and the grains come back on the
surviving nodes with the state they had saved. Plays carry a round number, so a retried
play that had in fact been applied is not counted twice. At the end it reads every
player back (through the cluster and from the files) and checks that no state was lost.

Run it: ``python examples/actors/lobby_cluster.py`` (``--players 5000`` for more,
``--no-fsync`` to skip fsync; a SIGKILL loses nothing either way).
"""

# ruff: noqa: T201 (a demo program: its output is what it prints)

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tejido.actors import ActorSystem
from tejido.actors.cluster import ClusterConfig
from tejido.actors.errors import ActorError
from tejido.actors.persistence import FileProvider, GrainId
from tejido.actors.virtual import Grain, VirtualActors

HOSTS = ("n1", "n2", "n3")


# ---------------------------------------------------------------------------- the grains
class PlayerState(msgspec.Struct):
    rounds: int = 0
    points: int = 0
    rooms: list[str] = []


class RoomState(msgspec.Struct):
    plays: int = 0
    points: int = 0
    last_round: dict[str, int] = {}


@dataclass(frozen=True)
class Play:
    round: int
    room: str
    points: int


@dataclass(frozen=True)
class Score:
    player: str
    round: int
    points: int


@dataclass(frozen=True)
class Show:
    pass


class Room(Grain[Score | Show, RoomState]):
    state_type = RoomState

    async def receive(self, message: Score | Show) -> Any:
        match message:
            case Score(player, round_, points):
                if self.state.last_round.get(player, 0) < round_:  # a retry counts once
                    self.state.last_round[player] = round_
                    self.state.plays += 1
                    self.state.points += points
                return self.state.plays
            case Show():
                return self.state.plays
        return None


class Player(Grain[Play | Show, PlayerState]):
    state_type = PlayerState

    async def receive(self, message: Play | Show) -> Any:
        match message:
            case Play(round_, room, points) if round_ <= self.state.rounds:
                return self.state.points  # already played: a retry after a lost reply
            case Play(round_, room, points):
                # ask the room (a grain, maybe on another node) before changing anything
                await self.grains.get(Room, room).ask(Score(self.key, round_, points))
                self.state.rounds = round_
                self.state.points += points
                self.state.rooms.append(room)
                return self.state.points
            case Show():
                return [self.state.rounds, self.state.points]
        return None


MESSAGES = (Play, Score, Show)


def is_host(node: str) -> bool:
    return node in HOSTS


def cluster_config(name: str, seeds: tuple[str, ...]) -> ClusterConfig:
    return ClusterConfig(node=name, seeds=seeds, heartbeat_s=0.1, failure_timeout_s=1.0)


async def all_hosts_up(system: ActorSystem) -> None:
    """Wait until this node's member view holds the three hosts."""
    async with system.cluster.subscribe() as events:
        while sorted(m.node for m in system.cluster.members() if is_host(m.node)) != [*HOSTS]:
            await events.next(timeout=30)


# ---------------------------------------------------------------------------- a node
async def run_node(name: str, directory: Path, seed: str | None, fsync: bool) -> None:
    config = cluster_config(name, (seed,) if seed else ())
    async with ActorSystem("lobby", cluster=config) as system:
        system.types.register(*MESSAGES)
        provider = FileProvider(directory, fsync=fsync)
        async with VirtualActors(system, provider, hosting=is_host) as grains:
            grains.register(Player, Room)
            await all_hosts_up(system)
            print(f"READY {system.cluster.address}", flush=True)
            # serve until the client closes our standard input (or kills us)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# ---------------------------------------------------------------------------- the client
def start_node(name: str, directory: Path, seed: str, fsync: bool) -> Any:
    command = [sys.executable, __file__, "node", name, "--dir", str(directory), "--seed", seed]
    command += [] if fsync else ["--no-fsync"]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


async def play_until_acknowledged(grains: VirtualActors, player: str, play: Play) -> int:
    """Ask until the play is acknowledged; return how many attempts failed."""
    failures = 0
    give_up = time.monotonic() + 60
    while True:
        try:
            await grains.get(Player, player).ask(play, timeout=3.0)
            return failures
        except ActorError:  # NodeLost, AskTimeout, a room lost mid-play...: try again
            failures += 1
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0.05 * min(failures, 10))  # back off while the view settles


async def run_client(players: int, rooms: int, rounds: int, fsync: bool, keep: Path | None) -> int:
    directory = keep or Path(tempfile.mkdtemp(prefix="lobby-"))
    async with ActorSystem("lobby", cluster=cluster_config("client", ())) as system:
        system.types.register(*MESSAGES)
        # the three nodes start side by side and join through this one
        nodes = {name: start_node(name, directory, system.cluster.address, fsync) for name in HOSTS}
        async with VirtualActors(system, None, hosting=is_host) as grains:
            # every host says READY once its own view holds all three: views agree
            loop = asyncio.get_running_loop()
            for name in HOSTS:
                line = await loop.run_in_executor(None, nodes[name].stdout.readline)
                if not line.startswith("READY"):
                    raise RuntimeError(f"node {name} did not start")
            await all_hosts_up(system)
            print(f"{len(HOSTS)} nodes up: {' '.join(HOSTS)}")
            names = [f"player-{i}" for i in range(players)]

            def room_of(i: int, round_: int) -> str:
                return f"room-{(i + round_) % rooms}"

            limit = asyncio.Semaphore(200)

            async def play(i: int, round_: int) -> int:
                async with limit:
                    return await play_until_acknowledged(
                        grains, names[i], Play(round_, room_of(i, round_), i % 7 + 1)
                    )

            for round_ in range(1, rounds + 1):
                started = time.monotonic()
                half = players // 2 if round_ == 2 else players
                tasks = [asyncio.ensure_future(play(i, round_)) for i in range(half)]
                if round_ == 2:  # half of the round acknowledged: the rest in flight, kill
                    await asyncio.wait(tasks)
                    tasks += [asyncio.ensure_future(play(i, round_)) for i in range(half, players)]
                    await asyncio.sleep(0)  # let the second half's first asks leave
                    nodes["n2"].send_signal(signal.SIGKILL)
                    nodes["n2"].wait()
                    print("killed n2 with SIGKILL midway through round 2")
                retried = sum(await asyncio.gather(*tasks))
                print(f"round {round_}: {players} plays acknowledged", flush=True)
                print(
                    f"  {players / (time.monotonic() - started):,.0f} plays/s, "
                    f"{retried} failed attempts retried",
                    file=sys.stderr,
                )
            lost = await check(grains, directory, names, rooms, rounds, room_of, fsync)
    for name, process in nodes.items():
        if process.poll() is None and process.stdin is not None:
            process.stdin.close()  # the node leaves the cluster and exits
            if process.wait(timeout=30) != 0:
                print(f"node {name} exited with {process.returncode}", file=sys.stderr)
    return 1 if lost else 0


async def check(
    grains: VirtualActors,
    directory: Path,
    names: list[str],
    rooms: int,
    rounds: int,
    room_of: Any,
    fsync: bool,
) -> int:
    """Every player's state, through the cluster and on disk, is what was acknowledged."""
    files = FileProvider(directory, fsync=fsync)
    lost = 0
    expected_room_plays: dict[str, int] = {}
    for i, name in enumerate(names):
        want = PlayerState(
            rounds, rounds * (i % 7 + 1), [room_of(i, r) for r in range(1, 1 + rounds)]
        )
        for room in want.rooms:
            expected_room_plays[room] = expected_room_plays.get(room, 0) + 1
        shown = await grains.get(Player, name).ask(Show(), timeout=10.0)
        stored = await files.load(GrainId("Player", name))
        on_disk = msgspec.msgpack.decode(stored.data or b"\x80", type=PlayerState)
        if shown != [want.rounds, want.points] or on_disk != want:
            lost += 1
    consistent = 0
    for room, plays in sorted(expected_room_plays.items()):
        if await grains.get(Room, room).ask(Show(), timeout=10.0) == plays:
            consistent += 1
    print(f"players checked: {len(names)}, with lost state: {lost}")
    print(f"rooms consistent: {consistent}/{len(expected_room_plays)}")
    return lost + len(expected_room_plays) - consistent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("role", nargs="?", default="client", choices=["client", "node"])
    parser.add_argument("name", nargs="?", help="node name (role node)")
    parser.add_argument("--dir", type=Path, help="state directory (default: a new temp dir)")
    parser.add_argument("--seed", help="HOST:PORT of a node to join through (role node)")
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fsync", dest="fsync", action="store_false")
    options = parser.parse_args()
    run = asyncio.run
    if options.role == "node":
        run(run_node(options.name, options.dir, options.seed, options.fsync))
        return
    if options.rounds < 2:
        parser.error("--rounds must be at least 2 (a node is killed in round 2)")
    code = run(
        run_client(options.players, options.rooms, options.rounds, options.fsync, options.dir)
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
