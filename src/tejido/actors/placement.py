"""Where a virtual actor lives: a consistent-hash ring of members with virtual nodes.

A grain (virtual actor) is identified by ``(type, key)``; the member that hosts it is the
owner of that identity on a `HashRing` built from the live members. Rules:

1. **Points.** Each member puts ``virtual_nodes`` points on a 64-bit ring, point ``i``
   being the first 8 bytes of BLAKE2b(``member`` NUL ``i``); a key lands on the first
   point clockwise from BLAKE2b(key) (wrapping at the top). The hash is fixed (not
   Python's salted ``hash``), so every process that knows the same members computes the
   same owner for every key: placement needs no coordination beyond the membership view.
2. **Deterministic.** The ring depends only on the *set* of members and
   ``virtual_nodes``, never on the order they were added in. Two members whose points
   collide (astronomically unlikely with 64-bit points) are ordered by name.
3. **Minimal movement** (Karger et al., "Consistent hashing and random trees", STOC
   1997): when a member joins, the only keys that move are those the newcomer now owns;
   when one leaves, only the keys it owned move, each to the member that owns the next
   point clockwise. Everything else stays where it was, so a membership change
   reactivates only the grains it must.
4. **Balance.** With ``V`` virtual nodes per member each member's share of the keys is
   close to ``1/n``; its relative spread shrinks like ``1/sqrt(V)`` (Dynamo, DeCandia et
   al., SOSP 2007, section 4.2, uses the same idea). The default ``V = 128`` keeps every
   member within about +-30 % of its fair share for a handful of members.

Microsoft Orleans places grains differently by default (a distributed grain directory,
random placement); tejido uses the ring so that placement is a pure function of the
membership view, which keeps the sim-testable core free of a directory service.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

from tejido.actors.errors import ActorError

__all__ = ["DEFAULT_VIRTUAL_NODES", "HashRing", "NoMembers", "key_point"]

#: Points per member unless the ring is told otherwise.
DEFAULT_VIRTUAL_NODES = 128


class NoMembers(ActorError):
    """The ring is empty: there is no member to place a key on."""


def key_point(data: bytes | str) -> int:
    """The ring position of `data` (64 bits of BLAKE2b; the same in every process)."""
    raw = data.encode() if isinstance(data, str) else data
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def _member_points(member: str, virtual_nodes: int) -> list[int]:
    prefix = member.encode() + b"\0"
    return [key_point(prefix + str(i).encode()) for i in range(virtual_nodes)]


class HashRing:
    """A consistent-hash ring over named members (rules in the module docstring).

    Mutations (`add`, `remove`) rebuild the sorted point list: O(n V log(n V)), fine for
    the tens of members a cluster has; lookups (`owner`) are a binary search.
    """

    __slots__ = ("_members", "_owners", "_points", "virtual_nodes")

    def __init__(
        self, members: Iterable[str] = (), *, virtual_nodes: int = DEFAULT_VIRTUAL_NODES
    ) -> None:
        if virtual_nodes < 1:
            raise ValueError(f"virtual_nodes must be at least 1, not {virtual_nodes}")
        self.virtual_nodes = virtual_nodes
        self._members: dict[str, list[int]] = {}
        self._points: list[int] = []
        self._owners: list[str] = []
        for member in members:
            self._insert(member)
        self._rebuild()

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def _insert(self, member: str) -> bool:
        if not isinstance(member, str) or not member:
            raise ValueError(f"a ring member is a non-empty string, not {member!r}")
        if member in self._members:
            return False
        self._members[member] = _member_points(member, self.virtual_nodes)
        return True

    def _rebuild(self) -> None:
        pairs = sorted(
            (point, member) for member, points in self._members.items() for point in points
        )
        self._points = [point for point, _ in pairs]
        self._owners = [member for _, member in pairs]

    def add(self, member: str) -> bool:
        """Add `member` (False if it was already there)."""
        if not self._insert(member):
            return False
        self._rebuild()
        return True

    def remove(self, member: str) -> bool:
        """Remove `member` (False if it was not there)."""
        if self._members.pop(member, None) is None:
            return False
        self._rebuild()
        return True

    def replace(self, members: Iterable[str]) -> None:
        """Make the ring hold exactly `members` (rule 2: the result is the same ring as
        one built from scratch from them)."""
        wanted = set(members)
        for gone in set(self._members) - wanted:
            del self._members[gone]
        for member in sorted(wanted - set(self._members)):
            self._insert(member)
        self._rebuild()

    def owner(self, key: bytes | str) -> str:
        """The member that owns `key` (raises `NoMembers` on an empty ring)."""
        if not self._points:
            raise NoMembers(f"no member to place {key!r} on: the ring is empty")
        index = bisect.bisect_left(self._points, key_point(key))
        return self._owners[index if index < len(self._owners) else 0]

    def preference(self, key: bytes | str, count: int) -> list[str]:
        """Up to `count` distinct members in ring order from `key`'s owner: who would own
        the key if the earlier ones left (the owner first)."""
        if not self._points:
            raise NoMembers(f"no member to place {key!r} on: the ring is empty")
        found: list[str] = []
        start = bisect.bisect_left(self._points, key_point(key))
        size = len(self._owners)
        for step in range(size):
            member = self._owners[(start + step) % size]
            if member not in found:
                found.append(member)
                if len(found) >= count:
                    break
        return found

    def __repr__(self) -> str:
        return f"HashRing({sorted(self._members)!r}, virtual_nodes={self.virtual_nodes})"
