"""`RaftNode`: one member of one Raft group, as a pure `Process`.

This module holds the node's state, the dispatch of inputs, the term rules and the
persistence contract; the algorithm is split by concept into `election`, `replication`,
`snapshot`, `membership` and `reads` (functions over a `RaftNode`).

Rules implemented here (paper = Ongaro & Ousterhout 2014, thesis = Ongaro 2014):

1. Term rules (paper §5.1, Figure 2 "All Servers"): see `tejido.raft.messages`.
2. Roles (paper §5.2, Figure 4): follower -> (pre-candidate, thesis §9.6) -> candidate ->
   leader; any role becomes follower on a higher term; a leader steps down on CheckQuorum
   failure (thesis §6.2) or when removed from the configuration (thesis §4.2.2).
3. Persistence contract (paper Figure 2 "Persistent state ... updated on stable storage
   before responding to RPCs"), stated once for the output batch, `Process.ready()`:

   a. Storage operations are emitted in order; each input ends with at most one `sync()`
      covering everything emitted by it (group commit).
   b. The hard state (term, vote) is written with `put` before any message that depends
      on it. A RequestVote, a RequestVoteResponse (granted or not), an
      AppendEntriesResponse and an InstallSnapshotResponse reporting an installed
      snapshot leave only from `on_durable`, once every write emitted before them is
      durable. So a vote is never granted, an append never acknowledged, and a campaign
      never started, from state a crash could lose (a candidate that forgot its term could
      campaign and lead that term twice, with different logs).
   c. A candidate counts its own vote only once its term and vote are durable.
   d. A leader sends AppendEntries immediately, in parallel with writing its own log
      (thesis §10.2.1), and counts itself toward a commit quorum only up to the last index
      its completed syncs cover (`RaftLog.persisted`).
   e. A snapshot (own or installed) is written with `put` and synced *before* the log is
      compacted, because the log and each key may lose different amounts of unsynced
      writes in a crash (tejido.core.storage rule 3).
   f. Messages that need no durability leave as soon as the runtime takes the batch:
      PreVote(+Response), AppendEntries, Heartbeat(+Response), snapshot chunks (except
      the final acknowledgement), TimeoutNow, ReadIndex and ForwardProposal messages. A
      leader's AppendEntries may carry entries it has not synced yet (rule d), and its
      term is durable: it was elected only after its RequestVotes left (rule b).

4. Multi-group: nothing is module-level; messages carry `group`; storage keys and timer
   names are prefixed ``raft/<group>/``. A host running several groups gives each group its
   own `RaftNode` (and storage log) and routes messages by `RaftMessage.group`.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import assert_never

import msgspec

from tejido.core.errors import InvariantViolation, RemoteProtocolError
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Outbox, Process
from tejido.core.storage import LogAppend, Recovered
from tejido.raft import election, membership, reads, replication, snapshot
from tejido.raft.config import RaftConfig
from tejido.raft.errors import NotLeader, ProposalRefused
from tejido.raft.inspect import NodeView
from tejido.raft.kv import (
    BatchApply,
    KeyValueStateMachine,
    StateMachine,
    batch_apply,
    decode_outcome,
)
from tejido.raft.log import RaftLog
from tejido.raft.messages import (
    RAFT_MESSAGES,
    AnyRaftMessage,
    AppendEntries,
    AppendEntriesResponse,
    BecameFollower,
    ForwardProposal,
    ForwardProposalResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    PreVote,
    PreVoteResponse,
    RaftMessage,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from tejido.raft.progress import Progress
from tejido.raft.types import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Index,
    PendingProposal,
    Role,
    Snapshot,
    Term,
)

__all__ = ["RaftNode"]

_entry_decoder = msgspec.msgpack.Decoder(Entry)
_hard_decoder = msgspec.msgpack.Decoder(HardState)
_encoder = msgspec.msgpack.Encoder()
_encode = _encoder.encode
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)
_blake2b = hashlib.blake2b
_term_and_index = struct.Struct(">QQ").pack
"""8-byte big-endian term then index, hashed into the applied digest."""


class RaftNode(Process):
    """One node of one Raft group. See the module docstring for the contract."""

    def __init__(
        self,
        env: Env,
        config: RaftConfig | None = None,
        state_machine: Callable[[], StateMachine] | None = None,
    ) -> None:
        super().__init__(env)
        self.config = config or RaftConfig()
        self.config.validate()
        self.make_state_machine: Callable[[], StateMachine] = state_machine or KeyValueStateMachine
        prefix = f"raft/{self.config.group}/"
        self.key_hard_state = prefix + "hard"
        self.key_snapshot = prefix + "snapshot"
        self.timer_election = TimerName(prefix + "election")
        self.timer_heartbeat = TimerName(prefix + "heartbeat")
        self.timer_check_quorum = TimerName(prefix + "check-quorum")
        self.timer_transfer = TimerName(prefix + "transfer")
        self.timer_commit = TimerName(prefix + "commit")
        self._view: NodeView | None = None
        self._view_key: tuple[object, ...] = ()
        self._reset_volatile()

    # Volatile state -------------------------------------------------------------------------
    def _reset_volatile(self) -> None:
        """Everything a crash loses; `on_start` rebuilds it from storage."""
        self.term = Term(0)
        self.vote: NodeId | None = None
        self.role = Role.FOLLOWER
        self.leader: NodeId | None = None
        self.log = RaftLog()
        self.sm: StateMachine = self.make_state_machine()
        self.apply_batch: BatchApply = batch_apply(self.sm)
        initial = self.config.initial_voters
        voters = tuple(sorted(self.env.nodes if initial is None else initial))
        self.conf_history: list[tuple[Index, ConfState]] = [(Index(0), ConfState(voters))]
        self.votes: dict[NodeId, bool] = {}
        self.progress: dict[NodeId, Progress] = {}
        self.last_leader_contact: float | None = None
        self.started_at: float | None = None
        """Local time of the last (re)start from storage (election.py rule 4)."""
        self.uncommitted_bytes = 0
        """Bytes of the entries this leader appended past its no-op and not committed yet."""
        self.commit_notify_armed = False
        """The leader holds back a commit-only AppendEntries (replication rule 4b)."""
        self.apply_deferred = False
        """Committed entries wait for `on_idle` to be applied (replication rule 5c)."""
        self.commit_notify_index = Index(0)
        """The commit index the armed ``commit`` timer is for (replication rule 4b)."""
        self.term_start = Index(0)
        """Index of this leader's no-op, the first entry of its term."""
        self.transferee: NodeId | None = None
        self._digest = b""
        self._digest_index = self.log.applied
        self.snapshot: Snapshot | None = None
        self.incoming_snapshot: tuple[InstallSnapshot, bytearray] | None = None
        self.installing: Index | None = None
        # Persistence bookkeeping (rule 3).
        self.written: tuple[Sequence[Entry], tuple[bytes, ...]] = ((), ())
        """The entries of the latest `write_entries` and their storage records, which the
        leader ships with an AppendEntries carrying them (replication.py rule 2c)."""
        self.unsent_appends: dict[NodeId, tuple[int, AppendEntries]] = {}
        """The latest AppendEntries per follower, by its position in the outbox, while the
        runtime has not taken it (replication.py rule 2b)."""
        self.needs_sync = False
        self.pending_syncs: deque[tuple[int, Index]] = deque()
        self.after_durable: deque[tuple[int, Callable[[], None]]] = deque()
        self.unassigned: list[Callable[[], None]] = []
        # Clients.
        self.pending_proposals: dict[Index, PendingProposal] = {}
        """Proposals this node appended as leader, answered when applied (here)."""
        self.forwarded: dict[int, RequestId] = {}
        """Client requests this node forwarded, by the id the leader will answer."""
        self.forwards_seen: dict[tuple[NodeId, int], None] = {}
        """Forwarded proposals received recently (an insertion-ordered bounded set)."""
        self.next_local_id = 1
        self.reads = reads.ReadState()

    @property
    def conf(self) -> ConfState:
        """The configuration in force: the latest one in the log, committed or not."""
        return self.conf_history[-1][1]

    # Hooks ------------------------------------------------------------------------------------
    def on_start(self, recovered: Recovered) -> None:
        self._reset_volatile()
        snapshot.recover(self, recovered)
        if recovered.state or recovered.records:  # a restart, not a brand-new node
            self.started_at = self.now()
        election.reset_election_timer(self)
        # Ids of forwarded proposals and reads are fresh in every incarnation, so a late
        # answer to a request sent before a crash cannot be taken for a new request's.
        self.next_local_id = self.env.rng.randrange(1, 1 << 30) << 32
        self.finish()

    def on_message(self, src: NodeId, message: Message) -> None:
        if not isinstance(message, RAFT_MESSAGES):
            raise RemoteProtocolError(f"not a Raft message: {message.describe()}")
        if message.group != self.config.group:
            raise RemoteProtocolError(
                f"message for group {message.group} delivered to group {self.config.group}"
            )
        self._apply_put_off()
        self.handle(src, message)
        self.finish()

    def on_timer(self, name: TimerName) -> None:
        self._apply_put_off()
        if name == self.timer_election:
            election.on_election_timeout(self)
        elif name == self.timer_heartbeat:
            replication.on_heartbeat_timer(self)
        elif name == self.timer_check_quorum:
            election.on_check_quorum(self)
        elif name == self.timer_transfer:
            if self.transferee is not None:
                self.transferee = None
        elif name == self.timer_commit:
            replication.on_commit_timer(self)
        else:
            super().on_timer(name)
        self.finish()

    def on_command(self, request: RequestId, operation: Operation) -> None:
        self._apply_put_off()
        if operation.f == "read":
            reads.read(self, request, operation)
        else:
            replication.propose_command(self, request, operation)
        self.finish()

    def on_commands(self, commands: Sequence[tuple[RequestId, Operation]]) -> None:
        """Several client commands as one input (the host's burst of submissions), in
        order: each run of writes is appended together (replication rule 1c), each run of
        reads shares one read round (reads rule 5)."""
        self._apply_put_off()
        run: list[tuple[RequestId, Operation]] = []
        reading = False
        for command in commands:
            is_read = command[1].f == "read"
            if run and is_read != reading:
                self._start(run, reading)
                run = []
            reading = is_read
            run.append(command)
        if run:
            self._start(run, reading)
        self.finish()

    def _start(self, run: list[tuple[RequestId, Operation]], reading: bool) -> None:
        if reading:
            reads.read_many(self, run)
        else:
            replication.propose_commands(self, run)

    def on_durable(self, token: int) -> None:
        while self.pending_syncs and self.pending_syncs[0][0] <= token:
            _, covered = self.pending_syncs.popleft()
            self.log.persisted = Index(max(self.log.persisted, covered))
        while self.after_durable and self.after_durable[0][0] <= token:
            _, action = self.after_durable.popleft()
            action()
        if self.role is Role.LEADER:
            replication.maybe_commit(self)
        self.finish()

    def on_idle(self) -> None:
        self._apply_put_off()
        self.finish()

    def _apply_put_off(self) -> None:
        """Replication rule 5c: entries a follower put off applying, applied now (at
        `on_idle`, and first in every other input but `on_durable`)."""
        if self.apply_deferred:
            replication.apply_deferred(self)

    def ready(self) -> Outbox:
        """Take this node's output batch. The persistence contract of a Raft batch:

        1. Apply `storage` operations in order; each batch ends with at most one sync token
           covering all of them. Deliver `Durable(token)` once they are durable.
        2. Send `messages` at once: none of them claims anything that is not durable yet.
           Votes (RequestVote, RequestVoteResponse), append acknowledgements and installed-
           snapshot acknowledgements are only ever emitted from `on_durable`, after the
           sync covering the term, vote, entries or snapshot they speak for.
        3. The leader's own entries may still be in flight to disk while its AppendEntries
           go out; it counts itself toward a commit quorum only for synced entries.
        4. A snapshot is put and synced before the log is compacted behind it; after any
           crash `Recovered` holds either the old log prefix or the snapshot covering it.

        See the module docstring (rule 3) for the reasons.
        """
        return super().ready()

    # Public API (each call is one input: it ends with `finish`) -------------------------------
    def propose(self, data: bytes) -> Index | None:
        """Propose an application command. Returns its index at the leader, None when it was
        forwarded to the leader; raises `NotLeader` or `ProposalRefused`."""
        try:
            return replication.propose(self, data)
        finally:
            self.finish()

    def propose_batch(self, commands: Sequence[bytes]) -> Index | None:
        """Propose several application commands in one input: they become consecutive
        entries of one storage append and one AppendEntries per follower, and are all
        accepted or all refused (flow control counts their total size). Returns the index
        of the first, None when they were forwarded to the leader (one by one); raises
        `NotLeader` or `ProposalRefused`."""
        try:
            return replication.propose_batch(self, commands)
        finally:
            self.finish()

    def campaign(self) -> None:
        """Start an election now (as if the election timer fired)."""
        election.campaign(self, transfer=False)
        self.finish()

    def transfer_leadership(self, target: NodeId) -> None:
        """Hand leadership to `target` (thesis §3.10); raises `NotLeader`."""
        election.transfer_leadership(self, target)
        self.finish()

    def change_membership(
        self,
        voters: tuple[NodeId, ...],
        learners: tuple[NodeId, ...] = (),
        addresses: Mapping[NodeId, str] | None = None,
    ) -> Index:
        """Move to a new configuration by joint consensus (thesis §4.3); `addresses` are
        member records the configuration carries (`membership` rule 5)."""
        try:
            return membership.change(self, voters, learners, addresses)
        finally:
            self.finish()

    def take_snapshot(self) -> None:
        """Snapshot the state machine at the applied index and compact the log behind it."""
        snapshot.take(self)
        self.finish()

    def view(self) -> NodeView:
        """A read-only picture of this node for invariant checkers and tests.

        Checkers call this after every event, so the view is cached and rebuilt only when
        something it shows changed (the log's term tuple is itself rebuilt incrementally)."""
        log = self.log
        terms = log.terms()
        conf = self.conf
        key = (
            self.term,
            self.vote,
            self.role,
            self.leader,
            log.commit,
            log.applied,
            self.applied_digest,
            log.persisted,
            log.snapshot_index,
            log.snapshot_term,
            terms,
            conf,
        )
        if self._view is not None and key == self._view_key:
            return self._view
        self._view_key = key
        self._view = NodeView(
            node=self.node_id,
            group=self.config.group,
            up=True,
            term=self.term,
            vote=self.vote,
            role=self.role,
            leader=self.leader,
            commit=log.commit,
            applied=log.applied,
            applied_digest=self.applied_digest,
            persisted=log.persisted,
            snapshot_index=log.snapshot_index,
            snapshot_term=log.snapshot_term,
            log_terms=terms,
            conf=conf,
        )
        return self._view

    # Dispatch ---------------------------------------------------------------------------------
    def handle(self, src: NodeId, m: AnyRaftMessage) -> None:
        if not self.check_term(src, m):
            return
        if type(m) is AppendEntries:  # the two kinds of the replication hot path first
            replication.handle_append_entries(self, src, m)
            return
        if type(m) is AppendEntriesResponse:
            replication.handle_append_response(self, src, m)
            return
        match m:
            case PreVote():
                election.handle_pre_vote(self, src, m)
            case RequestVote():
                election.handle_request_vote(self, src, m)
            case PreVoteResponse() | RequestVoteResponse():
                election.handle_vote_response(self, src, m)
            case AppendEntries():
                replication.handle_append_entries(self, src, m)
            case AppendEntriesResponse():
                replication.handle_append_response(self, src, m)
            case Heartbeat():
                replication.handle_heartbeat(self, src, m)
            case HeartbeatResponse():
                replication.handle_heartbeat_response(self, src, m)
            case InstallSnapshot():
                snapshot.handle_install_snapshot(self, src, m)
            case InstallSnapshotResponse():
                snapshot.handle_install_response(self, src, m)
            case TimeoutNow():
                election.handle_timeout_now(self, src, m)
            case ReadIndexRequest():
                reads.handle_read_index_request(self, src, m)
            case ReadIndexResponse():
                reads.handle_read_index_response(self, src, m)
            case ForwardProposal():
                replication.handle_forward_proposal(self, src, m)
            case ForwardProposalResponse():
                replication.handle_forward_response(self, src, m)
            case _:
                assert_never(m)

    def check_term(self, src: NodeId, m: RaftMessage) -> bool:
        """Rule 1 (paper §5.1); False when the message must be ignored."""
        if m.term > self.term:
            if isinstance(m, RequestVote) and not m.transfer and election.in_lease(self):
                return False  # thesis §4.2.3: ignore disruptive candidates
            if isinstance(m, PreVote) or (isinstance(m, PreVoteResponse) and m.granted):
                return True  # thesis §9.6: nobody adopts a pre-vote term
            leads = isinstance(m, AppendEntries | Heartbeat | InstallSnapshot)
            self.become_follower(m.term, src if leads else None)
            return True
        if m.term < self.term:
            if isinstance(
                m, ForwardProposal | ForwardProposalResponse | ReadIndexRequest | ReadIndexResponse
            ):
                return True  # client traffic: valid whatever the sender's term
            if isinstance(m, AppendEntries | Heartbeat | InstallSnapshot):
                # Tell the stale leader about the newer term (paper §5.1).
                self.send(src, AppendEntriesResponse(self.config.group, self.term, False, Index(0)))
            elif isinstance(m, PreVote):
                self.send(src, PreVoteResponse(self.config.group, self.term, False))
            return False
        return True

    # Roles ------------------------------------------------------------------------------------
    def become_follower(self, term: Term, leader: NodeId | None) -> None:
        changed = term != self.term or self.role is not Role.FOLLOWER
        if term > self.term:
            self.term = term
            self.vote = None
            self.persist_hard_state()
        was_leader = self.role is Role.LEADER
        self.role = Role.FOLLOWER
        self.leader = leader
        self.votes = {}
        if was_leader:
            self.progress = {}
            self.transferee = None
            self.cancel_timer(self.timer_heartbeat)
            self.cancel_timer(self.timer_check_quorum)
            self.cancel_timer(self.timer_transfer)
            self.cancel_timer(self.timer_commit)
            self.commit_notify_armed = False
            reads.on_leadership_lost(self)
        election.reset_election_timer(self)
        if changed:
            self.report(BecameFollower(self.term, leader))

    def leader_or_raise(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)

    def refuse_if_transferring(self) -> None:
        if self.transferee is not None:
            raise ProposalRefused(f"busy: leadership transfer to {self.transferee} in progress")

    # Persistence (rule 3) -----------------------------------------------------------------------
    def persist_hard_state(self) -> None:
        self.put(self.key_hard_state, _encoder.encode(HardState(self.term, self.vote)))
        self.needs_sync = True

    def write_entries(
        self, entries: Sequence[Entry], records: tuple[bytes, ...] | None = None
    ) -> None:
        """Write entries just appended to the in-memory log (`records`: their storage
        records when already encoded, replication.py rule 2c); a configuration among them
        is in force from now on (rule 1 of membership.py)."""
        if records is None:
            records = tuple(map(_encode, entries))
        self.written = (entries, records)
        self.out.storage.append(LogAppend(records))
        self.needs_sync = True
        log = self.log
        for index in log.special_between(entries[0].index, entries[-1].index):
            entry = log.entry(index)
            if entry.kind is EntryKind.CONFIG:
                membership.on_config_appended(self, entry)

    def truncate_entries(self, from_index: Index) -> None:
        """Delete a conflicting suffix in memory and in storage (log.py rule 4)."""
        self.log.truncate(from_index)
        self.truncate_log(from_index)
        self.needs_sync = True
        self.pending_syncs = deque(
            (t, Index(min(c, from_index - 1))) for t, c in self.pending_syncs
        )
        membership.on_truncated(self, from_index)

    def when_durable(self, action: Callable[[], None]) -> None:
        """Run `action` once everything emitted so far is durable."""
        if self.needs_sync:
            self.unassigned.append(action)
        elif self.pending_syncs:
            self.after_durable.append((self.pending_syncs[-1][0], action))
        else:
            action()

    def send_when_durable(self, dst: NodeId, message: AnyRaftMessage) -> None:
        self.when_durable(lambda: self.deliver(dst, message))

    def deliver(self, dst: NodeId, message: AnyRaftMessage) -> None:
        if dst == self.node_id:
            self.handle(dst, message)
        else:
            self.send(dst, message)

    def finish(self) -> None:
        """End of an input: one sync covers every write it emitted (rule 3a)."""
        if not self.needs_sync:
            return
        self.needs_sync = False
        token = self.sync()
        self.pending_syncs.append((token, self.log.last_index))
        for action in self.unassigned:
            self.after_durable.append((token, action))
        self.unassigned = []

    # Applying ------------------------------------------------------------------------------------
    @property
    def applied_digest(self) -> bytes:
        """A digest of the sequence of entries applied so far, (term, index, data) each,
        chained: ``d(i) = blake2b(d(i-1) || term || index || data, 8 bytes)``, d(0) = b"".

        Only observers read it (the state machine safety checker compares it between
        nodes at equal applied indexes; snapshots carry it), so it is computed on demand:
        reading it folds in the entries applied since the last read. They are still in
        the log: applied entries are never deleted, and a compaction only follows a
        snapshot, which read the digest first."""
        if self._digest_index != self.log.applied:
            self._fold_digest()
        return self._digest

    @applied_digest.setter
    def applied_digest(self, digest: bytes) -> None:
        """The digest at the current applied index (a restored snapshot's)."""
        self._digest = digest
        self._digest_index = self.log.applied

    def _fold_digest(self) -> None:
        log = self.log
        start, end = self._digest_index + 1, log.applied
        if start <= log.snapshot_index or end < start - 1:
            raise InvariantViolation(
                "applied-digest",
                f"digest at {self._digest_index} cannot advance to {end} "
                f"(log from {log.first_index})",
            )
        digest = self._digest
        base = log.snapshot_index
        for entry in log.entries[start - base - 1 : end - base]:
            hashed = _blake2b(digest, digest_size=8)
            hashed.update(_term_and_index(entry.term, entry.index))
            hashed.update(entry.data)
            digest = hashed.digest()
        self._digest, self._digest_index = digest, end

    def outcome_of(self, result: bytes) -> Outcome:
        try:
            return decode_outcome(result)
        except msgspec.DecodeError:
            raise InvariantViolation(
                "state-machine-result", "apply() did not return an encoded Outcome"
            ) from None

    @staticmethod
    def decode_entry(record: bytes) -> Entry:
        return _entry_decoder.decode(record)

    @staticmethod
    def decode_hard_state(data: bytes) -> HardState:
        return _hard_decoder.decode(data)

    @staticmethod
    def decode_snapshot(data: bytes) -> Snapshot:
        return _snapshot_decoder.decode(data)

    @staticmethod
    def encode(value: msgspec.Struct) -> bytes:
        return _encoder.encode(value)
