"""Raft's value types: terms, indexes, log entries, configurations, hard state, snapshots.

Rules these values carry (Ongaro & Ousterhout 2014, "In Search of an Understandable
Consensus Algorithm", abbreviated *paper*; Ongaro 2014, "Consensus: Bridging Theory and
Practice", abbreviated *thesis*):

1. Terms are consecutive integers starting at 0; a server's current term only grows
   (paper §5.1). Log indexes start at 1; index 0 with term 0 is the empty prefix every log
   shares (paper §5.3).
2. An entry is identified by (index, term): two logs holding an entry with the same index
   and term hold identical prefixes up to it (Log Matching, paper §5.3, Figure 3).
3. A configuration is the set of voters, plus during joint consensus the outgoing voters
   C_old (thesis §4.3); learners receive the log but never vote or count (thesis §4.2.1).
4. A snapshot replaces the log prefix up to `index` and records the term of that entry and
   the configuration in force there (paper §7, thesis §5.1).

Everything here is a frozen msgspec Struct, so the same values are kept in memory, written
to storage as bytes records, and carried in wire messages.
"""

from __future__ import annotations

import enum
from typing import Final, NamedTuple, NewType

import msgspec

from tejido.core.ids import NodeId, RequestId

__all__ = [
    "DEFAULT_GROUP",
    "ENTRY_OVERHEAD_BYTES",
    "NO_INDEX",
    "NO_TERM",
    "ConfState",
    "Entry",
    "EntryKind",
    "GroupId",
    "HardState",
    "Index",
    "PendingProposal",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "Term",
]

Term = NewType("Term", int)
Index = NewType("Index", int)
GroupId = NewType("GroupId", int)
"""Identifies one Raft group; several groups may share a node (sharding)."""

NO_TERM: Final = Term(0)
NO_INDEX: Final = Index(0)
DEFAULT_GROUP: Final = GroupId(0)
ENTRY_OVERHEAD_BYTES: Final = 16
"""What an entry costs against the byte limits beyond its payload (`Entry.size_bytes`)."""


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryKind(enum.IntEnum):
    NORMAL = 0
    """An application command, handed to the state machine when applied."""
    NOOP = 1
    """Appended by every new leader so that it can commit in its own term (paper §5.4.2)."""
    CONFIG = 2
    """`data` is an encoded `ConfState`; it takes effect when appended (thesis §4.1)."""


class Entry(msgspec.Struct, frozen=True, gc=False, array_like=True):
    term: Term
    index: Index
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    @property
    def size_bytes(self) -> int:
        """What the entry costs against the byte limits (payload plus a fixed overhead)."""
        return len(self.data) + ENTRY_OVERHEAD_BYTES

    def describe(self) -> str:
        return f"{self.term}/{self.index}"


class ConfState(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """Voters (C_new), outgoing voters (C_old, non-empty only while joint) and learners.

    Invariant: the three tuples are sorted; a learner is never a voter of C_new.
    """

    voters: tuple[NodeId, ...] = ()
    outgoing: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()
    addresses: tuple[tuple[NodeId, str], ...] = ()
    """Opaque member records (sorted by id) that a runtime reads to reach members added at
    run time (`membership` rule 5); Raft itself never looks at them."""

    @property
    def joint(self) -> bool:
        return bool(self.outgoing)

    def members(self) -> tuple[NodeId, ...]:
        """Everyone who receives the log: voters of both halves and learners, sorted."""
        return tuple(sorted({*self.voters, *self.outgoing, *self.learners}))

    def is_voter(self, node: NodeId) -> bool:
        return node in self.voters or node in self.outgoing

    def describe(self) -> str:
        text = "voters=(" + ",".join(map(str, self.voters)) + ")"
        if self.outgoing:
            text += "&&(" + ",".join(map(str, self.outgoing)) + ")"
        if self.learners:
            text += " learners=(" + ",".join(map(str, self.learners)) + ")"
        return text


class HardState(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """What must survive a crash besides the log (paper Figure 2, "Persistent state")."""

    term: Term = Term(0)
    vote: NodeId | None = None


class SnapshotMeta(msgspec.Struct, frozen=True, gc=False, array_like=True):
    index: Index
    term: Term
    conf: ConfState
    applied_digest: bytes = b""
    """The applied-sequence digest at `index` (for the state machine safety checker)."""

    def describe(self) -> str:
        return f"{self.term}/{self.index} {self.conf.describe()}"


class Snapshot(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A snapshot as stored: its metadata and the state machine's bytes."""

    meta: SnapshotMeta
    data: bytes


class PendingProposal(NamedTuple):
    """Who waits for the entry this leader appended at some index, in `term`: a local
    client `request`, or a follower that forwarded it (`origin`: node and its id)."""

    term: Term
    request: RequestId | None
    origin: tuple[NodeId, int] | None
