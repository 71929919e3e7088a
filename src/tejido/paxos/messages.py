"""Multi-Paxos wire messages and log values, one frozen type per kind.

Ballots are ``(round, node)`` tuples, compared lexicographically: no two proposers ever
share one. A slot's value is a `Command`: the client command's bytes and an id
``(origin node, command id)`` that makes re-proposals and duplicates harmless (the log is
applied with deduplication by id); ``cid == 0`` is the no-op that fills a gap.
"""

from __future__ import annotations

import msgspec

from tejido.core.messages import Event, Message

__all__ = [
    "NOOP",
    "Accept",
    "Accepted",
    "Ballot",
    "CatchUp",
    "Chosen",
    "Command",
    "Forward",
    "Heartbeat",
    "Nack",
    "Prepare",
    "Promise",
    "SlotValue",
]

Ballot = tuple[int, int]
ZERO_BALLOT: Ballot = (0, 0)


def describe_ballot(ballot: Ballot) -> str:
    return f"{ballot[0]}.{ballot[1]}"


class Command(msgspec.Struct, frozen=True, array_like=True, gc=False):
    origin: int
    cid: int
    data: bytes

    def describe(self) -> str:
        return "noop" if self.cid == 0 else f"cmd {self.origin}/{self.cid % 10000}"


NOOP = Command(0, 0, b"")


class SlotValue(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An acceptance reported in a Promise: slot, the ballot it was accepted in, value."""

    slot: int
    ballot: Ballot
    command: Command


class Prepare(Message, frozen=True):
    """Phase 1a for every slot from `from_slot` on (once per leadership)."""

    ballot: Ballot
    from_slot: int

    def describe(self) -> str:
        return f"Prepare b={describe_ballot(self.ballot)} from={self.from_slot}"


class Promise(Message, frozen=True):
    ballot: Ballot
    from_slot: int
    accepted: list[SlotValue]

    def describe(self) -> str:
        return (
            f"Promise b={describe_ballot(self.ballot)} from={self.from_slot} "
            f"accepted={len(self.accepted)}"
        )


class Accept(Message, frozen=True):
    """Phase 2a for a batch of slots; `chosen_upto` piggybacks the leader's commit point."""

    ballot: Ballot
    slots: list[tuple[int, Command]]

    def describe(self) -> str:
        shown = ",".join(f"{s}:{c.describe()}" for s, c in self.slots[:4])
        more = f",+{len(self.slots) - 4}" if len(self.slots) > 4 else ""
        return f"Accept b={describe_ballot(self.ballot)} [{shown}{more}]"


class Accepted(Message, frozen=True):
    ballot: Ballot
    slots: list[int]

    def describe(self) -> str:
        return f"Accepted b={describe_ballot(self.ballot)} slots={self.slots[:8]}"


class Nack(Message, frozen=True):
    """A Prepare or Accept refused: the acceptor promised `promised`, a higher ballot."""

    ballot: Ballot
    promised: Ballot

    def describe(self) -> str:
        return f"Nack b={describe_ballot(self.ballot)} promised={describe_ballot(self.promised)}"


class Chosen(Message, frozen=True):
    """Learned values (from the leader to every node, or as a catch-up answer)."""

    slots: list[tuple[int, Command]]

    def describe(self) -> str:
        first = self.slots[0][0] if self.slots else "-"
        return f"Chosen {len(self.slots)} from slot {first}"


class Heartbeat(Message, frozen=True):
    ballot: Ballot
    chosen_upto: int
    """Every slot below this is chosen and known to the leader."""

    def describe(self) -> str:
        return f"Heartbeat b={describe_ballot(self.ballot)} chosen<{self.chosen_upto}"


class CatchUp(Message, frozen=True):
    """A node asks the leader for chosen values from `from_slot` on."""

    from_slot: int

    def describe(self) -> str:
        return f"CatchUp from={self.from_slot}"


class Forward(Message, frozen=True):
    """A node hands a client command to the leader it knows of."""

    command: Command

    def describe(self) -> str:
        return f"Forward {self.command.describe()}"


class BecameLeader(Event, frozen=True):
    ballot: Ballot
    from_slot: int
    reproposed: int
    noops: int


class SteppedDown(Event, frozen=True):
    ballot: Ballot
    higher: Ballot
