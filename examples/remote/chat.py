"""A chat room as a remote object: members pass their own listener by reference and the
room calls each of them back.

Run ``python examples/remote/chat.py``: it starts three nodes in one process (the room's
and two members', each listening on its own port, exactly as if they were on different
machines), lets alice and bob talk, then shuts bob's node down and shows the room dropping
him. tests/remote/test_remote_example.py runs it; docs/remote.md quotes it.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
from __future__ import annotations

import asyncio
import dataclasses

import tejido.remote as remote
from tejido.rpc import ServiceError, Unavailable, run


@dataclasses.dataclass
class Line:  # a plain value: copied across the wire
    sender: str
    text: str


class NameTaken(ServiceError):
    """Someone in the room already has that name."""


@remote.remote
class Member:  # a remote interface: passed by reference
    async def hear(self, line: Line) -> None:
        raise NotImplementedError


@remote.remote
class Room:
    errors = (NameTaken,)

    async def join(self, name: str, member: Member) -> list[str]:
        raise NotImplementedError

    async def say(self, name: str, text: str) -> int:
        raise NotImplementedError


class ChatRoom(Room):
    def __init__(self) -> None:
        self.members: dict[str, Member] = {}  # proxies of the members' listeners

    async def join(self, name: str, member: Member) -> list[str]:
        if name in self.members:
            raise NameTaken(f"{name!r} is already in the room")
        await self.say("room", f"{name} joined")
        self.members[name] = member
        return sorted(self.members)

    async def say(self, name: str, text: str) -> int:
        line = Line(name, text)
        listeners = [(who, m) for who, m in self.members.items() if who != name]
        results = await asyncio.gather(
            *(member.hear(line) for _, member in listeners), return_exceptions=True
        )
        for (who, _), result in zip(listeners, results, strict=True):
            if isinstance(result, remote.NoSuchObject | Unavailable):
                del self.members[who]  # their node is gone
                print(f"room: dropped {who}, whose node is gone")
        return len(listeners)


class Screen(Member):
    """A member's listener: prints what it hears and lets the demo wait for it."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.lines: list[Line] = []
        self.changed = asyncio.Event()

    async def hear(self, line: Line) -> None:
        print(f"{self.owner} sees <{line.sender}> {line.text}")
        self.lines.append(line)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.lines) < count:
            self.changed.clear()
            await self.changed.wait()


async def main() -> None:
    # The room's node hosts the room and the registry it is named in.
    room_node = await remote.start("127.0.0.1:0", lease_s=2.0)
    await room_node.bind("lobby", ChatRoom(), Room)

    # Each member runs a node of its own, pointed at the room's registry.
    alice_node = await remote.start(registry=room_node.address)
    bob_node = await remote.start(registry=room_node.address)
    alice, bob = Screen("alice"), Screen("bob")

    lobby = await alice_node.lookup("lobby", Room)  # a proxy typed as Room
    print("alice joins; in the room:", await lobby.join("alice", alice))
    bobs_lobby = await bob_node.lookup("lobby", Room)
    print("bob joins; in the room:", await bobs_lobby.join("bob", bob))
    await alice.wait_for(1)  # the room told alice that bob joined

    await bobs_lobby.say("bob", "hi alice")
    await alice.wait_for(2)
    await lobby.say("alice", "hello bob")
    await bob.wait_for(1)
    try:
        await lobby.join("bob", Screen("impostor"))
    except NameTaken as error:
        print("join refused:", error)

    await bob_node.close()  # bob's process goes away
    heard = await lobby.say("alice", "anyone there?")
    print(f"alice's line reached {heard} member(s)")
    await alice_node.close()
    await room_node.close()


if __name__ == "__main__":
    run(main())  # asyncio.run with uvloop
