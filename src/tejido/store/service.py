# mypy: disable-error-code="empty-body"
"""The store's client API: the `KV` RPC interface and its implementation on a member.

Served over tejido RPC on the member's client port (and so over gRPC through
`tejido.rpc.grpc`). The methods mirror etcd's v3 services (KV, Lease, Watch, Cluster,
Maintenance; etcd.io/docs/v3.5/learning/api) over the machine's own request and response
Structs (`tejido.mvcc.api`).

Rules:

1. Every reply carries a `Header`: cluster id, member id (who answered), Raft term, and
   the store revision (after a write: the revision it produced; after a read: the
   revision it saw).
2. Writes become ``Operation(f="store", data=Command(...))`` through Raft; `range` is
   linearizable (``Operation(f="read")``, ReadIndex) unless ``serializable=True``, which
   answers from this member's machine. Followers forward writes and linearizable reads to
   the leader (`tejido.store.node` rule 2).
3. Leader-only requests (`lease_keepalive`, `lease_ttl`'s remaining time, membership,
   `leader_transfer`) raise `NotLeader` naming the leader's client address on a follower.
4. Bad input is refused before anything is proposed, with a typed error naming it:
   requests over ``max_request_bytes`` (``request_too_large``), transactions with more than
   `api.MAX_TXN_OPS` operations in a branch (``too_many_ops``), unknown members
   (``bad_request``); what the machine refuses comes back as its `StoreError`. Malformed
   arguments never reach this code: the RPC layer validates them against the annotations
   and answers `BadArguments`. Either way the member keeps serving.
5. Sessions (exactly-once, Raft thesis §6.3): `open_session` returns a `Session`; a write
   passed a session carries its (client id, seq), and a retried request with the same
   pair is answered from the machine's record instead of being applied twice.
6. Lease keep-alive is also a bidirectional stream (etcd's ``LeaseKeepAlive``,
   etcd.io/docs/v3.5/learning/api, "Lease API"): the client sends lease ids whenever it
   wants them renewed, many leases over one stream; each gets a reply with its TTL, 0 when
   the lease is gone (expired or revoked). The stream lives on the leader only.
7. Membership: `member_add_learner(id, peer, client)` adds a member the cluster has never
   seen; its addresses travel in the configuration change, so every member (and every
   later leader) learns how to reach it (`tejido.store.node` rule 7).
8. `leader_transfer(target)` waits, like etcd's MoveLeader (etcd.io/docs/v3.5/learning/api,
   "Maintenance"), until this member sees `target` lead in a later term, and answers with
   its status (``leader`` = `target`). Refused at once (``bad_request``): an unknown id,
   the current leader itself, a learner or spare. No leader change within the request's
   time (`StoreNode.request_timeout_s`, capped by the caller's deadline) raises
   ``leader_transfer_timeout`` naming the target and the terms (Raft gives up its transfer
   after one election timeout, thesis §3.10, and leadership stays put).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from tejido import rpc
from tejido.core.errors import BadInput, LocalProtocolError
from tejido.core.ids import NodeId
from tejido.mvcc import api
from tejido.raft.errors import ProposalRefused
from tejido.store import ops
from tejido.store.config import parse_address
from tejido.store.errors import NotApplied, NotLeader, OutcomeUnknown, StoreError, WatchCancelled

if TYPE_CHECKING:
    from tejido.store.node import StoreNode

__all__ = [
    "KV",
    "CompactReply",
    "DeleteRangeReply",
    "Header",
    "KVService",
    "LeaseGrantReply",
    "LeaseKeepAliveReply",
    "LeaseRevokeReply",
    "LeaseTTLReply",
    "LeasesReply",
    "Member",
    "MemberListReply",
    "PutReply",
    "RangeReply",
    "Session",
    "StatusReply",
    "TxnReply",
    "WatchRequest",
    "WatchResponse",
]

WATCH_CHUNK_EVENTS = 1000
"""Catch-up events per watch response (a revision is never split across responses)."""


class Header(msgspec.Struct, frozen=True):
    cluster_id: str
    member_id: int
    term: int
    revision: int


class RangeReply(msgspec.Struct, frozen=True):
    header: Header
    result: api.RangeResponse


class PutReply(msgspec.Struct, frozen=True):
    header: Header
    result: api.PutResponse


class DeleteRangeReply(msgspec.Struct, frozen=True):
    header: Header
    result: api.DeleteRangeResponse


class TxnReply(msgspec.Struct, frozen=True):
    header: Header
    result: api.TxnResponse


class CompactReply(msgspec.Struct, frozen=True):
    header: Header
    revision: int


class LeaseGrantReply(msgspec.Struct, frozen=True):
    header: Header
    id: int
    ttl: int


class LeaseRevokeReply(msgspec.Struct, frozen=True):
    header: Header


class LeaseKeepAliveReply(msgspec.Struct, frozen=True):
    header: Header
    id: int
    ttl: int


class LeaseTTLReply(msgspec.Struct, frozen=True):
    header: Header
    id: int
    ttl: float
    """Seconds left by the leader's clock; -1 when the lease does not exist."""
    granted_ttl: int
    keys: list[bytes] = []


class LeasesReply(msgspec.Struct, frozen=True):
    header: Header
    leases: list[api.LeaseStatus]


class WatchRequest(msgspec.Struct, frozen=True):
    key: bytes
    range_end: bytes = b""
    start_revision: int = 0
    """0: from the next revision; R: every event at revision >= R (history first)."""
    prev_kv: bool = False


class WatchResponse(msgspec.Struct, frozen=True):
    """Events of one or more whole revisions, in order; ``events == []`` is a progress
    notification (or the first response): every event up to ``header.revision`` that
    this watch matches has been sent."""

    header: Header
    events: list[api.Event] = []


class Member(msgspec.Struct, frozen=True):
    id: int
    peer_address: str
    client_address: str
    role: str
    """voter, learner or spare (in the address book, not in the configuration)."""


class MemberListReply(msgspec.Struct, frozen=True):
    header: Header
    members: list[Member]
    leader: int | None


class StatusReply(msgspec.Struct, frozen=True):
    header: Header
    member: int
    role: str
    term: int
    commit: int
    applied: int
    leader: int | None
    leader_address: str | None
    revision: int
    address: str
    peer_address: str
    pid: int


class Session(msgspec.Struct, frozen=True):
    """An exactly-once session: the next request carries ``seq``."""

    client_id: int
    seq: int = 1

    def next(self) -> Session:
        return Session(self.client_id, self.seq + 1)


@rpc.service(name="tejido.store.KV")
class KV:
    """The store's API; see the module docstring."""

    errors = (NotApplied, NotLeader, StoreError, OutcomeUnknown, WatchCancelled)

    async def range(self, request: api.RangeRequest, serializable: bool = False) -> RangeReply: ...

    async def put(self, request: api.PutRequest, session: Session | None = None) -> PutReply: ...

    async def delete_range(
        self, request: api.DeleteRangeRequest, session: Session | None = None
    ) -> DeleteRangeReply: ...

    async def txn(self, request: api.TxnRequest, session: Session | None = None) -> TxnReply: ...

    async def compact(self, request: api.CompactionRequest) -> CompactReply: ...

    async def open_session(self) -> Session: ...

    async def lease_grant(
        self, ttl: int, id: int = 0, session: Session | None = None
    ) -> LeaseGrantReply: ...

    async def lease_revoke(self, id: int, session: Session | None = None) -> LeaseRevokeReply: ...

    async def lease_keepalive(self, id: int) -> LeaseKeepAliveReply: ...

    def lease_keepalive_stream(
        self, ids: AsyncIterator[int]
    ) -> AsyncIterator[LeaseKeepAliveReply]: ...

    async def lease_ttl(self, id: int, keys: bool = False) -> LeaseTTLReply: ...

    async def leases(self) -> LeasesReply: ...

    def watch(self, request: WatchRequest) -> AsyncIterator[WatchResponse]: ...

    async def member_list(self) -> MemberListReply: ...

    async def member_add_learner(
        self, id: int, peer: str = "", client: str = ""
    ) -> MemberListReply: ...

    async def member_promote(self, id: int) -> MemberListReply: ...

    async def member_remove(self, id: int) -> MemberListReply: ...

    async def leader_transfer(self, target: int) -> StatusReply: ...

    async def status(self) -> StatusReply: ...


class KVService(KV):
    """`KV` on one member."""

    def __init__(self, node: StoreNode) -> None:
        self.node = node
        self._cluster = node.config.cluster
        self._member = int(node.member_id)
        self._limit = node.config.max_request_bytes

    # ------------------------------------------------------------------ helpers
    def header(self, revision: int | None = None) -> Header:
        node = self.node
        if revision is None:
            revision = ops.machine_revision(node.machine)
        return Header(self._cluster, self._member, int(node.raft.term), revision)

    def _check_size(self, data: bytes, what: str) -> None:
        limit = self._limit
        if len(data) > limit:
            raise StoreError(
                f"{what} is {len(data)} bytes encoded, over the {limit}-byte limit",
                "request_too_large",
            )

    async def _write(self, op: api.Request, session: Session | None, what: str) -> Any:
        if session is None:
            data = ops.command(op)
        else:
            data = ops.command(op, session.client_id, session.seq)
        if len(data) > self._limit:
            self._check_size(data, what)
        return ops.check_result(await self.node.propose(data))

    async def _query(self, query: api.Query, serializable: bool) -> Any:
        data = api.encode_query(query)
        self._check_size(data, "the query")
        if serializable:
            return ops.check_result(self.node.read_local(data))
        return ops.check_result(await self.node.read(data))

    @staticmethod
    def _expect(result: Any, kind: type[Any]) -> Any:
        if not isinstance(result, kind):
            raise NotApplied(f"expected {kind.__name__}, the machine gave {type(result).__name__}")
        return result

    # ------------------------------------------------------------------ key-value
    async def range(self, request: api.RangeRequest, serializable: bool = False) -> RangeReply:
        result = self._expect(await self._query(request, serializable), api.RangeResponse)
        return RangeReply(self.header(result.header_revision), result)

    async def put(self, request: api.PutRequest, session: Session | None = None) -> PutReply:
        result = await self._write(request, session, "the put")
        if result.__class__ is not api.PutResponse:
            self._expect(result, api.PutResponse)
        return PutReply(
            Header(self._cluster, self._member, int(self.node.raft.term), result.header_revision),
            result,
        )

    async def delete_range(
        self, request: api.DeleteRangeRequest, session: Session | None = None
    ) -> DeleteRangeReply:
        result = await self._write(request, session, "the delete")
        result = self._expect(result, api.DeleteRangeResponse)
        return DeleteRangeReply(self.header(result.header_revision), result)

    async def txn(self, request: api.TxnRequest, session: Session | None = None) -> TxnReply:
        _check_txn(request)
        result = self._expect(await self._write(request, session, "the txn"), api.TxnResponse)
        return TxnReply(self.header(result.header_revision), result)

    async def compact(self, request: api.CompactionRequest) -> CompactReply:
        result = await self._write(request, None, "the compaction")
        result = self._expect(result, api.CompactionResponse)
        return CompactReply(self.header(result.header_revision), request.revision)

    async def open_session(self) -> Session:
        result = await self._write(api.OpenSession(), None, "open session")
        result = self._expect(result, api.OpenSessionResponse)
        return Session(result.client_id, 1)

    # ------------------------------------------------------------------ leases
    async def lease_grant(
        self, ttl: int, id: int = 0, session: Session | None = None
    ) -> LeaseGrantReply:
        if ttl <= 0:
            raise StoreError(f"lease ttl must be positive seconds, got {ttl}", "bad_request")
        result = await self._write(api.LeaseGrant(ttl=ttl, id=id), session, "the grant")
        result = self._expect(result, api.LeaseGrantResponse)
        return LeaseGrantReply(self.header(result.header_revision), result.id, result.ttl)

    async def lease_revoke(self, id: int, session: Session | None = None) -> LeaseRevokeReply:
        result = await self._write(api.LeaseRevoke(id=id), session, "the revoke")
        result = self._expect(result, api.LeaseRevokeResponse)
        return LeaseRevokeReply(self.header(result.header_revision))

    async def lease_keepalive(self, id: int) -> LeaseKeepAliveReply:
        ttl = self.node.lessor.keepalive(id)
        return LeaseKeepAliveReply(self.header(), id, ttl)

    async def lease_keepalive_stream(
        self, ids: AsyncIterator[int]
    ) -> AsyncIterator[LeaseKeepAliveReply]:
        """Rule 6: one reply per lease id received, in order; ``ttl == 0`` for a lease
        that is gone (etcd's LeaseKeepAlive answers so too); `NotLeader` ends the stream
        when this member is not (or no longer) the leader."""
        lessor = self.node.lessor
        async for lease in ids:
            try:
                ttl = lessor.keepalive(lease)
            except StoreError as exc:
                if exc.code != "lease_not_found":
                    raise
                ttl = 0
            yield LeaseKeepAliveReply(self.header(), lease, ttl)

    async def lease_ttl(self, id: int, keys: bool = False) -> LeaseTTLReply:
        self.node.require_leader()
        query = api.LeaseTimeToLive(id=id, keys=keys)
        result = self._expect(await self._query(query, False), api.LeaseTimeToLiveResponse)
        remaining = self.node.lessor.remaining(id)
        return LeaseTTLReply(
            self.header(result.header_revision), id, remaining, result.granted_ttl, result.keys
        )

    async def leases(self) -> LeasesReply:
        result = self._expect(await self._query(api.LeaseLeases(), False), api.LeaseLeasesResponse)
        return LeasesReply(self.header(result.header_revision), list(result.leases))

    # ------------------------------------------------------------------ watches
    async def watch(self, request: WatchRequest) -> AsyncIterator[WatchResponse]:
        hub = self.node.watches
        watcher, past, current = hub.create(request.key, request.range_end, request.start_revision)
        try:
            yield WatchResponse(self.header(current))  # created
            for chunk in _chunks(past):
                yield WatchResponse(self.header(chunk[-1].kv.mod_revision), _strip(chunk, request))
            interval = self.node.config.progress_interval_s
            while True:
                batch = await watcher.next_batch(interval)
                if batch is None:  # idle: progress notification (watch.py rule 4)
                    yield WatchResponse(self.header())
                    continue
                events = [event for _, revision_events in batch for event in revision_events]
                for chunk in _chunks(events):
                    revision = chunk[-1].kv.mod_revision
                    yield WatchResponse(self.header(revision), _strip(chunk, request))
        finally:
            hub.remove(watcher)

    # ------------------------------------------------------------------ cluster
    def _members(self) -> MemberListReply:
        node = self.node
        conf = node.raft.conf
        members = []
        for ident, address in sorted(node.config.members.items()):
            if conf.is_voter(ident):
                role = "voter"
            elif ident in conf.learners:
                role = "learner"
            else:
                role = "spare"
            client = address.client
            if ident == node.member_id and node.client_address is not None:
                client = node.client_address
            members.append(Member(int(ident), address.peer, client, role))
        leader = node.raft.leader
        return MemberListReply(self.header(), members, None if leader is None else int(leader))

    async def member_list(self) -> MemberListReply:
        return self._members()

    async def _change(
        self,
        voters: set[NodeId],
        learners: set[NodeId],
        records: dict[NodeId, str] | None = None,
    ) -> MemberListReply:
        """Propose the configuration, then answer once the final (not joint) configuration
        is committed (thesis §4.3), or `OutcomeUnknown` if that does not happen in time."""
        try:
            self.node.call_raft(
                lambda raft: raft.change_membership(
                    tuple(sorted(voters)), tuple(sorted(learners)), records
                )
            )
        except ProposalRefused as exc:
            raise NotApplied(str(exc)) from None
        except LocalProtocolError as exc:
            raise StoreError(str(exc), "bad_request") from None
        deadline = time.monotonic() + self.node.request_timeout_s
        while True:
            raft = self.node.raft
            settled = not raft.conf.joint and raft.conf_history[-1][0] <= raft.log.commit
            if settled:
                return self._members()
            if time.monotonic() > deadline or not self.node.is_leader:
                raise OutcomeUnknown("the configuration change did not complete in time here")
            await asyncio.sleep(0.01)  # polls Raft's commit index (no event to wait on)

    def _known(self, member: int) -> NodeId:
        if member not in self.node.config.members:
            raise StoreError(
                f"member {member} is not in the address book {sorted(self.node.config.members)}"
                "; give its peer and client addresses to add it",
                "bad_request",
            )
        return NodeId(member)

    async def member_add_learner(
        self, id: int, peer: str = "", client: str = ""
    ) -> MemberListReply:
        """Rule 7: a member the address books lack comes with its addresses, which the
        configuration change carries to every member (`tejido.raft.membership` rule 5)."""
        records: dict[NodeId, str] = {}
        if peer or client:
            member = self._new_member(id, peer, client)
            records[member] = f"{peer} {client}"
        else:
            member = self._known(id)
        self.node.require_leader()
        conf = self.node.raft.conf
        if conf.is_voter(member) or member in conf.learners:
            raise StoreError(f"member {id} is already in the configuration", "bad_request")
        return await self._change(set(conf.voters), {*conf.learners, member}, records)

    def _new_member(self, member: int, peer: str, client: str) -> NodeId:
        """Check a new member's addresses (every member adds them to its address book
        when it appends the configuration that carries them)."""
        try:
            if member < 0:
                raise BadInput(f"member id {member} must be a non-negative integer")
            for kind, text in (("peer", peer), ("client", client)):
                parse_address(text, f"member {member} {kind} address")
                if text.endswith(":0"):
                    raise BadInput(f"member {member} {kind} address {text!r} needs a real port")
        except BadInput as exc:
            raise StoreError(str(exc), "bad_request") from None
        ident = NodeId(member)
        known = self.node.config.members.get(ident)
        if known is not None and (known.peer, known.client) != (peer, client):
            raise StoreError(
                f"member {member} is in the address book as peer {known.peer} client "
                f"{known.client}, not peer {peer} client {client}",
                "bad_request",
            )
        return ident

    async def member_promote(self, id: int) -> MemberListReply:
        member = self._known(id)
        self.node.require_leader()
        conf = self.node.raft.conf
        if member not in conf.learners:
            raise StoreError(f"member {id} is not a learner", "bad_request")
        return await self._change({*conf.voters, member}, set(conf.learners) - {member})

    async def member_remove(self, id: int) -> MemberListReply:
        member = self._known(id)
        self.node.require_leader()
        conf = self.node.raft.conf
        if not conf.is_voter(member) and member not in conf.learners:
            raise StoreError(f"member {id} is not in the configuration", "bad_request")
        return await self._change(set(conf.voters) - {member}, set(conf.learners) - {member})

    async def leader_transfer(self, target: int) -> StatusReply:
        """Rule 8: hand leadership to `target` and answer once it leads."""
        node = self.node
        if target not in node.config.members:
            known = sorted(node.config.members)
            raise StoreError(f"member {target} is unknown (members {known})", "bad_request")
        member = NodeId(target)
        node.require_leader()
        raft = node.raft
        if member == node.member_id:
            raise StoreError(f"member {target} is already the leader", "bad_request")
        if not raft.conf.is_voter(member):
            role = "a learner" if member in raft.conf.learners else "not in the configuration"
            raise StoreError(
                f"member {target} is {role}: only a voting member can lead", "bad_request"
            )
        term = int(raft.term)
        try:
            node.call_raft(lambda raft: raft.transfer_leadership(member))
        except LocalProtocolError as exc:
            raise StoreError(str(exc), "bad_request") from None
        loop = asyncio.get_running_loop()
        wait_s = node.request_timeout_s
        call = rpc.current_call()
        left = call.time_remaining() if call is not None else None
        if left is not None:  # answer before the caller gives up on us
            wait_s = min(wait_s, left - min(0.2, left / 10))
        deadline = loop.time() + wait_s
        while not (raft.leader == member and raft.term > term):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StoreError(
                    f"leadership transfer from member {node.member_id} to member {target} "
                    f"did not complete within {wait_s:.3g} s (started in term {term}; now "
                    f"term {raft.term}, leader {raft.leader})",
                    "leader_transfer_timeout",
                )
            change = asyncio.shield(node.leader_change())
            # A follower learns its leader without a Raft report; re-check every heartbeat.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(change, min(remaining, node.config.heartbeat_interval_s))
            node.check_leader()
        return await self.status()

    async def status(self) -> StatusReply:
        node = self.node
        fields = node.status_fields()
        revision = ops.machine_revision(node.machine)
        return StatusReply(
            header=self.header(revision),
            member=fields["member"],
            role=fields["role"],
            term=fields["term"],
            commit=fields["commit"],
            applied=fields["applied"],
            leader=fields["leader"],
            leader_address=node.leader_client_address(),
            revision=revision,
            address=fields["address"],
            peer_address=fields["peer_address"],
            pid=os.getpid(),
        )


def _check_txn(request: api.TxnRequest, depth: int = 0) -> None:
    for name, ops_list in (
        ("compare", request.compare),
        ("success", request.success),
        ("failure", request.failure),
    ):
        if len(ops_list) > api.MAX_TXN_OPS:
            raise StoreError(
                f"txn {name} has {len(ops_list)} operations, over the limit of {api.MAX_TXN_OPS}",
                "too_many_ops",
            )
    for op in (*request.success, *request.failure):
        if isinstance(op, api.TxnRequest):
            _check_txn(op, depth + 1)


def _chunks(events: list[api.Event]) -> list[list[api.Event]]:
    """Split into lists of about `WATCH_CHUNK_EVENTS`, never inside one revision."""
    chunks: list[list[api.Event]] = []
    current: list[api.Event] = []
    for event in events:
        if (
            len(current) >= WATCH_CHUNK_EVENTS
            and current[-1].kv.mod_revision != event.kv.mod_revision
        ):
            chunks.append(current)
            current = []
        current.append(event)
    if current:
        chunks.append(current)
    return chunks


def _strip(events: list[api.Event], request: WatchRequest) -> list[api.Event]:
    if request.prev_kv:
        return events
    return [e if e.prev_kv is None else api.Event(e.type, e.kv) for e in events]
