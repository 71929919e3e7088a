"""Raft's wire messages and reported events, one frozen type per kind.

Every message carries the Raft `group` it belongs to (so several groups can share a node and
a connection) and the sender's current `term`. The receiver applies the term rules of the
paper §5.1 (Figure 2, "Rules for Servers: All Servers") before anything else:

1. A message with a higher term makes the receiver adopt that term and become a follower,
   except a PreVote, a granted PreVoteResponse (thesis §9.6) and a RequestVote received
   while the receiver still hears from a live leader (thesis §4.2.3, "disruptive servers").
2. A message with a lower term is stale: AppendEntries/Heartbeat/InstallSnapshot are
   answered with the receiver's term so the old leader steps down; others are dropped,
   except client traffic (ForwardProposal, ReadIndexRequest and their answers), whose
   validity does not depend on the sender's term.

Kinds (paper Figure 2; thesis §3.10 TimeoutNow, §6.4 ReadIndex, §9.6 PreVote):

- RequestVote / RequestVoteResponse, PreVote / PreVoteResponse: elections.
- AppendEntries / AppendEntriesResponse: replication, with a conflict hint on rejection.
- Heartbeat / HeartbeatResponse: leadership and commit index; `seq` numbers the heartbeat
  round so that ReadIndex and leases know which round a quorum acknowledged.
- InstallSnapshot / InstallSnapshotResponse: a snapshot in chunks, one at a time.
- TimeoutNow: leadership transfer, "start an election now".
- ReadIndexRequest / ReadIndexResponse: a follower asks the leader for a safe read index.
- ForwardProposal / ForwardProposalResponse: a follower hands a proposal to the leader.

`describe()` renders one line in the style of etcd's DescribeMessage, e.g.
``AppendEntries term=3 prev=3/11 commit=11 entries=[3/12]``.
"""

from __future__ import annotations

from typing import TypeAlias

from tejido.core.ids import NodeId
from tejido.core.messages import Event, Message
from tejido.raft.types import ConfState, Entry, GroupId, Index, SnapshotMeta, Term

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "ForwardProposal",
    "ForwardProposalResponse",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "PreVote",
    "PreVoteResponse",
    "RaftMessage",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "RequestVote",
    "RequestVoteResponse",
    "TimeoutNow",
    "AnyRaftMessage",
    "RAFT_MESSAGES",
    # events
    "Applied",
    "BecameCandidate",
    "BecameFollower",
    "BecameLeader",
    "BecamePreCandidate",
    "Committed",
    "ConfigChanged",
    "SnapshotInstalled",
    "SnapshotTaken",
    "SteppedDown",
]


def _group(group: GroupId) -> str:
    return f" group={group}" if group else ""


def _request(ident: int) -> str:
    """Request ids are (incarnation << 32) + counter; show them as incarnation.counter."""
    return f"{ident >> 32:x}.{ident & 0xFFFFFFFF}" if ident >> 32 else str(ident)


class RaftMessage(Message, frozen=True):
    """Base of every Raft message: the group it belongs to and the sender's term."""

    group: GroupId
    term: Term


class RequestVote(RaftMessage, frozen=True):
    last_index: Index
    last_term: Term
    transfer: bool = False
    """Sent because of TimeoutNow: voters ignore their leader lease (thesis §3.10)."""

    def describe(self) -> str:
        extra = " transfer" if self.transfer else ""
        return (
            f"RequestVote term={self.term} last={self.last_term}/{self.last_index}"
            f"{extra}{_group(self.group)}"
        )


class RequestVoteResponse(RaftMessage, frozen=True):
    granted: bool

    def describe(self) -> str:
        verdict = "granted" if self.granted else "rejected"
        return f"RequestVoteResponse term={self.term} {verdict}{_group(self.group)}"


class PreVote(RaftMessage, frozen=True):
    """`term` is the term the sender would campaign in; nobody adopts it (thesis §9.6)."""

    last_index: Index
    last_term: Term

    def describe(self) -> str:
        return (
            f"PreVote term={self.term} last={self.last_term}/{self.last_index}{_group(self.group)}"
        )


class PreVoteResponse(RaftMessage, frozen=True):
    granted: bool

    def describe(self) -> str:
        verdict = "granted" if self.granted else "rejected"
        return f"PreVoteResponse term={self.term} {verdict}{_group(self.group)}"


class AppendEntries(RaftMessage, frozen=True, gc=True, dict=True):
    """`dict=True` (which needs `gc=True`) only lets the sender attach the storage
    records of `entries` as the undeclared attribute ``records``, an in-process shortcut
    that is never encoded (replication.py rule 2c)."""

    prev_index: Index
    prev_term: Term
    commit: Index
    entries: tuple[Entry, ...] = ()

    def describe(self) -> str:
        entries = ",".join(e.describe() for e in self.entries[:8])
        if len(self.entries) > 8:
            entries += f",+{len(self.entries) - 8}"
        return (
            f"AppendEntries term={self.term} prev={self.prev_term}/{self.prev_index} "
            f"commit={self.commit} entries=[{entries}]{_group(self.group)}"
        )


class AppendEntriesResponse(RaftMessage, frozen=True):
    """On success `index` is the follower's match index; on rejection it is the rejected
    `prev_index`, and (hint_term, hint_index) say where the follower's log diverges: the
    term it holds at `prev_index` and the first index of that term, or (0, last + 1) when its
    log is too short (paper §5.3, the optimisation at the end of the section)."""

    success: bool
    index: Index
    hint_index: Index = Index(0)
    hint_term: Term = Term(0)

    def describe(self) -> str:
        if self.success:
            return f"AppendEntriesResponse term={self.term} match={self.index}{_group(self.group)}"
        return (
            f"AppendEntriesResponse term={self.term} reject={self.index} "
            f"hint={self.hint_term}/{self.hint_index}{_group(self.group)}"
        )


class Heartbeat(RaftMessage, frozen=True):
    commit: Index
    seq: int

    def describe(self) -> str:
        return f"Heartbeat term={self.term} commit={self.commit} seq={self.seq}{_group(self.group)}"


class HeartbeatResponse(RaftMessage, frozen=True):
    seq: int

    def describe(self) -> str:
        return f"HeartbeatResponse term={self.term} seq={self.seq}{_group(self.group)}"


class InstallSnapshot(RaftMessage, frozen=True):
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool

    def describe(self) -> str:
        done = " done" if self.done else ""
        return (
            f"InstallSnapshot term={self.term} snap={self.meta.term}/{self.meta.index} "
            f"offset={self.offset} len={len(self.data)}{done}{_group(self.group)}"
        )


class InstallSnapshotResponse(RaftMessage, frozen=True):
    """`next_offset` is the next byte the follower expects; `done` once it is installed."""

    index: Index
    next_offset: int
    done: bool

    def describe(self) -> str:
        state = "installed" if self.done else f"next={self.next_offset}"
        return (
            f"InstallSnapshotResponse term={self.term} snap={self.index} {state}"
            f"{_group(self.group)}"
        )


class TimeoutNow(RaftMessage, frozen=True):
    def describe(self) -> str:
        return f"TimeoutNow term={self.term}{_group(self.group)}"


class ReadIndexRequest(RaftMessage, frozen=True):
    request: int

    def describe(self) -> str:
        return f"ReadIndexRequest term={self.term} req={_request(self.request)}{_group(self.group)}"


class ReadIndexResponse(RaftMessage, frozen=True):
    request: int
    index: Index
    error: str | None = None

    def describe(self) -> str:
        result = f"error={self.error!r}" if self.error else f"index={self.index}"
        request = _request(self.request)
        return f"ReadIndexResponse term={self.term} req={request} {result}{_group(self.group)}"


class ForwardProposal(RaftMessage, frozen=True):
    request: int
    data: bytes

    def describe(self) -> str:
        return (
            f"ForwardProposal term={self.term} req={_request(self.request)} len={len(self.data)}"
            f"{_group(self.group)}"
        )


class ForwardProposalResponse(RaftMessage, frozen=True):
    """The outcome of a forwarded proposal: the state machine's `result` once the entry was
    applied, or the `error` that kept it from being appended (or that overwrote it)."""

    request: int
    result: bytes | None = None
    error: str | None = None

    def describe(self) -> str:
        outcome = f"error={self.error!r}" if self.error else "applied"
        request = _request(self.request)
        return (
            f"ForwardProposalResponse term={self.term} req={request} {outcome}{_group(self.group)}"
        )


AnyRaftMessage: TypeAlias = (
    RequestVote
    | RequestVoteResponse
    | PreVote
    | PreVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
    | ForwardProposal
    | ForwardProposalResponse
)


RAFT_MESSAGES = (
    RequestVote,
    RequestVoteResponse,
    PreVote,
    PreVoteResponse,
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
    ForwardProposal,
    ForwardProposalResponse,
)
"""The members of `AnyRaftMessage`, for `isinstance` (and for wire decoders)."""


# Events ---------------------------------------------------------------------------------


class BecameLeader(Event, frozen=True):
    term: Term


class BecameFollower(Event, frozen=True):
    term: Term
    leader: NodeId | None


class BecamePreCandidate(Event, frozen=True):
    term: Term


class BecameCandidate(Event, frozen=True):
    term: Term


class SteppedDown(Event, frozen=True):
    """A leader gave up leadership without seeing a higher term; `reason` says why."""

    term: Term
    reason: str


class Committed(Event, frozen=True):
    index: Index


class Applied(Event, frozen=True):
    """The entries `first` .. `last`, all of `term`, were applied in order (one event per
    applied range, not per entry)."""

    first: Index
    last: Index
    term: Term

    def describe(self) -> str:
        if self.first == self.last:
            return f"Applied index={self.last} term={self.term}"
        return f"Applied index={self.first}..{self.last} term={self.term}"


class ConfigChanged(Event, frozen=True):
    index: Index
    conf: ConfState

    def describe(self) -> str:
        return f"ConfigChanged index={self.index} {self.conf.describe()}"


class SnapshotTaken(Event, frozen=True):
    index: Index
    term: Term


class SnapshotInstalled(Event, frozen=True):
    index: Index
    term: Term
