"""`StoreNode`: one store member — Raft over the mesh and disk, the KV API over RPC.

The pieces (etcd's server has the same split, etcd.io/docs/v3.5/learning/design-learner):

- a `NodeHost` (`tejido.net.host`) runs a `RaftNode` whose state machine is the store's
  MVCC machine (`tejido.mvcc`), over the peer port (mesh) and the data directory (the
  segmented write-ahead log, `tejido.net.wal.WalStorage`, unless ``storage=`` says
  otherwise);
- an RPC server (`tejido.rpc`) on the client port serves `tejido.store.service.KV`;
- the `Lessor` (leader only) tracks lease deadlines on this host's monotonic clock;
- the `WatchHub` fans the machine's applied events out to watchers.

Rules:

1. Writes are proposed as ``Operation(f="store", data=command)``; linearizable reads as
   ``Operation(f="read", data=query)`` (Raft's ReadIndex, thesis §6.4); serializable reads
   call the local machine directly (possibly stale, never torn).
2. Requests at a follower: writes and linearizable reads are *forwarded* by Raft to the
   leader (``forward_proposals``), so any member serves them. Requests that only the
   leader can answer (lease keep-alive and remaining TTL, membership changes, leadership
   transfer) are refused with `NotLeader` carrying the leader's client address.
3. Outcomes: a Raft refusal (``fail``: no leader, busy, overwritten) means the command
   certainly did not take effect (`NotApplied`); no answer within the deadline means the
   outcome is unknown (`OutcomeUnknown`); see `tejido.store.errors`.
4. The machine is rebuilt by Raft on every (re)start and snapshot install; the node keeps
   hold of whichever instance Raft currently uses (`machine`), and re-attaches the watch
   hub's event hook to every new instance.
5. A request forwarded to the leader is answered by that leader only; if this member sees
   the leader change (or no leader) first, the answer may never come, so the request
   ends at once with `OutcomeUnknown` (the client retries safe requests elsewhere) rather
   than at its deadline.
6. Nothing polls: Raft's own reports (`BecameLeader`, `BecameFollower`, `SteppedDown`,
   `ConfigChanged`, ...) and lease-table changes in the machine tell the member, at the
   next loop iteration, to re-check its leader (rule 5) and its lessor's timer
   (`tejido.store.lessor` rule 5). The reports every write makes (`Committed`,
   `SnapshotTaken`, and `Applied` unless a configuration waits for its apply, rule 9)
   do not: none of these checks depends on them, and at one client they cost a loop
   callback and a lessor sync per put.
7. Members added at run time: a configuration may carry member records ``"PEER CLIENT"``
   (`tejido.raft.membership` rule 5). Whenever Raft reports a configuration (inside its
   step, before its messages leave) and once at start (configurations recovered from
   disk), every record of a member missing from the address book joins the book and the
   mesh (`Mesh.add_peer`), so the leader can replicate to a new learner at once and every
   member can reach it after promotion. The member's own config file stays authoritative
   for members it lists.
8. Request deadlines: a request at the leader with the default timeout waits in one
   queue, oldest first, swept every ``min(0.1, timeout / 4)`` seconds while any waits
   (a timer handle per request cost more than the request's own Raft work); one that
   timed out gets an ``info`` outcome (`OutcomeUnknown`, rule 3). Forwarded requests and
   explicit timeouts keep a timer each (they also watch for a leader change, rule 5).
9. Members removed at run time: once this member has *applied* a configuration without a
   member that some earlier configuration had (and the latest configuration does not
   bring it back), the mesh forgets it (`Mesh.remove_peer`: connection closed, address
   dropped, its dials refused). Configurations that are only appended may still be
   undone, so removal waits for the apply (or an installed snapshot whose configuration
   lacks it). The address book keeps its record, so
   `member_list` shows it as a spare and it can be added again by id; a configuration
   that adds a member back restores its link from the book (rule 7).
10. Fsync on the loop: the storage's ``inline_sync`` (`tejido.net.wal` rule 2b: only a
    round that just fsyncs, on a disk idle for as long as its last fsync took) is on for a
    follower, and for the leader only while at most ``LEADER_INLINE_SYNC_MAX_WAITING``
    client requests wait on this member (re-checked at each round; the role with rule 6's
    reports). An idle follower has nothing else to do before it acknowledges. A busy
    leader must keep reading requests and acknowledgements while its own fsync runs (a
    majority of followers can commit without it, thesis §10.2.1); a leader serving a few
    clients has nothing else to read, and the thread hand-offs cost it more than the
    blocked loop. Measured with 3 members on loopback (docs/benchmarks.md, 2026-11-28):
    at 1 client the leader's CPU per put fell from about 1,230 to 1,040 us and puts/s
    rose about 7 %; always inline, 64 clients lost about 5 %.
11. A member process (`tune_member_process`, called by ``tejido node start`` once the
    member serves) freezes what start-up allocated out of the garbage collector's reach
    (`gc.freeze`: imports, the recovered state; a full collection no longer walks them),
    collects the young generation every 10,000 allocations instead of 700, and lets
    the fsync thread take the interpreter lock after 0.5 ms instead of 5 ms
    (`sys.setswitchinterval`): while the loop is busy, each WAL round otherwise waited
    up to 5 ms to start and again to report. Library users (tests running several
    members in one process) keep the interpreter's defaults.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import socket
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from tejido import rpc
from tejido.core.ids import NodeId
from tejido.core.operations import Operation, Outcome
from tejido.mvcc.machine import StoreStateMachine
from tejido.net.host import NodeHost, message_types
from tejido.net.wal import WalStorage
from tejido.raft.errors import NotLeader as RaftNotLeader
from tejido.raft.kv import StateMachine
from tejido.raft.membership import conf_at
from tejido.raft.messages import (
    Applied,
    Committed,
    ConfigChanged,
    SnapshotInstalled,
    SnapshotTaken,
)
from tejido.raft.node import RaftNode
from tejido.raft.types import ConfState, Role
from tejido.store.config import MemberAddress, StoreConfig
from tejido.store.errors import NotApplied, NotLeader, OutcomeUnknown

__all__ = ["StoreNode", "tune_member_process"]


#: Rule 11: young-generation threshold and interpreter switch interval of a member process.
MEMBER_GC_THRESHOLD = (10_000, 10, 10)
MEMBER_SWITCH_INTERVAL_S = 0.0005
#: Rule 10: the leader fsyncs on its loop (when its disk is idle) while at most this many
#: client requests wait on it.
LEADER_INLINE_SYNC_MAX_WAITING = 16


def tune_member_process() -> None:
    """Rule 11: garbage collector and interpreter-lock settings for a process that runs
    one member (call it once the member has started)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*MEMBER_GC_THRESHOLD)
    sys.setswitchinterval(MEMBER_SWITCH_INTERVAL_S)


class StoreNode:
    """One member; `start`, then serve until `stop`. See the module docstring."""

    def __init__(
        self,
        config: StoreConfig,
        *,
        machine: Callable[[], StateMachine] | None = None,
        storage: Callable[..., Any] | None = None,
        peer_sock: socket.socket | None = None,
        request_timeout_s: float = 5.0,
    ) -> None:
        from tejido.store.lessor import Lessor
        from tejido.store.watch import WatchHub

        config.validate()
        config = dataclasses.replace(config, members=dict(config.members))  # rule 7 adds
        self.config = config
        self.member_id = config.member_id
        self.request_timeout_s = request_timeout_s
        self._make_machine = machine or (lambda: _MemberMachine(self.watches.machine_replaced))
        self._machine: Any = None
        self._peer_sock = peer_sock
        self.watches = WatchHub(self)
        self.lessor = Lessor(self)
        self.host = NodeHost(
            node_id=config.member_id,
            peers=config.peers,
            factory=self._make_raft,
            data_dir=config.data_dir,
            cluster=config.cluster,
            storage=storage if storage is not None else WalStorage,
        )
        self.server: rpc.Server | None = None
        self._leader_seen: tuple[int, int | None] = (0, None)
        self._leader_changed: asyncio.Future[None] | None = None
        self.peer_address: str | None = None
        self.client_address: str | None = None
        #: Requests waiting with the default timeout, oldest first, and their deadlines
        #: (rule 8).
        self._deadlines: deque[tuple[float, asyncio.Future[Outcome]]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_every_s = min(0.1, request_timeout_s / 4)
        self._check_pending = False
        #: Rule 9: every member some configuration had; whether one may await its apply.
        self._conf_members: set[int] = set()
        self._confs_pending = False
        self.grpc_address: str | None = None
        """Where the client API is also served over gRPC (``grpc_address`` in the config)."""

    # ------------------------------------------------------------------ lifecycle
    def _make_raft(self, env: Any) -> RaftNode:
        return _MemberRaft(
            env,
            self.config.raft_config(),
            state_machine=self._new_machine,
            reported=self._raft_reported,
        )

    def _new_machine(self) -> StateMachine:
        machine = self._make_machine()
        self._machine = machine
        if hasattr(machine, "on_events"):
            machine.on_events = self.watches.on_events
        if isinstance(machine, _MemberMachine):
            machine.leases_changed = self.lessor.changed_soon
        self.watches.machine_replaced()
        self.lessor.changed_soon()
        return machine

    def _raft_reported(self, event: Any) -> None:
        """Rule 6: Raft reported a role, term or configuration change (inside its step)."""
        kind = event.__class__
        if kind is Committed or kind is SnapshotTaken:
            return  # every write reports these: nothing here depends on them
        if kind is Applied and not self._confs_pending:
            return  # an apply matters only to a configuration waiting for it (rule 9)
        if kind is ConfigChanged:
            self._learn(event.conf)  # now: Raft may address the new member in this step
        elif kind is SnapshotInstalled:
            self._confs_pending = True  # rule 9: the snapshot's configuration is applied
        if not self._check_pending:
            self._check_pending = True
            asyncio.get_running_loop().call_soon(self._after_report)

    def _learn(self, conf: ConfState) -> None:
        """Rule 7: records of members the address book lacks join it and the mesh."""
        mesh = self.host.mesh
        for member, record in conf.addresses:
            peer, _, client = record.partition(" ")
            if not peer or not client:
                continue
            known = self.config.members.setdefault(member, MemberAddress(peer, client))
            if mesh is not None and member != self.member_id and member not in mesh.links:
                mesh.add_peer(member, known.peer)
        self._conf_members.update(conf.members())
        self._confs_pending = True
        if mesh is None:
            return
        for member in conf.members():  # rule 9: a removed member added back by id
            entry = self.config.members.get(member)
            if member != self.member_id and member not in mesh.links and entry is not None:
                mesh.add_peer(member, entry.peer)

    def _forget_removed(self) -> None:
        """Rule 9: the mesh forgets members no applied (nor the latest) configuration has."""
        raft = self.raft
        mesh = self.host.mesh
        applied = raft.log.applied
        latest_at, latest = raft.conf_history[-1]
        current = {*conf_at(raft, applied).members(), *latest.members(), self.member_id}
        if mesh is not None:
            for member in self._conf_members - current:
                if member in mesh.links:
                    mesh.remove_peer(NodeId(member))
        if latest_at <= applied:
            self._confs_pending = False

    def _after_report(self) -> None:
        self._check_pending = False
        self.check_leader()
        self.lessor.changed()
        self._choose_sync_mode()

    def _choose_sync_mode(self) -> None:
        """Rule 10: a follower fsyncs on the loop when idle, a leader only when few wait."""
        storage = self.host.storage
        if hasattr(storage, "inline_sync"):
            storage.inline_sync = self._few_waiting if self.is_leader else True
        if self._confs_pending and isinstance(self.host.process, RaftNode):
            self._forget_removed()

    def _few_waiting(self) -> bool:
        """Rule 10: the leader fsyncs on the loop only while few requests wait on it."""
        return self.host.outstanding <= LEADER_INLINE_SYNC_MAX_WAITING

    async def start(self) -> None:
        from tejido.store.service import KV, KVService

        me = self.config.me
        listen = None if self._peer_sock is not None else me.peer
        self.peer_address = await self.host.start(listen, sock=self._peer_sock)
        for _, conf in self.raft.conf_history:  # rule 7: recovered configurations
            self._learn(conf)
        self._choose_sync_mode()
        self._forget_removed()  # rule 9: members recovered configurations removed
        self.server = await rpc.serve(
            me.client,
            {KV: KVService(self)},
            cluster=self.config.cluster,
            grpc=self.config.grpc_address,
        )
        self.client_address = self.server.address
        if self.config.grpc_address is not None:
            host = self.config.grpc_address.rpartition(":")[0]
            self.grpc_address = f"{host}:{self.server.grpc_port}"
        self.lessor.start()
        self.watches.start()

    async def stop(self) -> None:
        self.lessor.stop()
        await self.watches.stop()
        if self.server is not None:
            await self.server.close()
        await self.host.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for _, future in self._deadlines:  # nothing will answer them now (rule 3)
            if not future.done():
                future.set_result(Outcome("info", error="the member stopped"))
        self._deadlines.clear()

    @property
    def failed(self) -> asyncio.Future[str] | None:
        return self.host.failed

    # ------------------------------------------------------------------ state
    @property
    def raft(self) -> RaftNode:
        process = self.host.process
        if not isinstance(process, RaftNode):
            raise NotApplied("the node is not started")
        return process

    @property
    def machine(self) -> Any:
        return self._machine

    @property
    def is_leader(self) -> bool:
        process = self.host.process
        return isinstance(process, RaftNode) and process.role is Role.LEADER

    def leader_client_address(self) -> str | None:
        leader = self.raft.leader
        if leader is None:
            return None
        address = self.config.members.get(leader)
        if leader == self.member_id and self.client_address is not None:
            return self.client_address
        return address.client if address is not None else None

    def not_leader(self) -> NotLeader:
        leader = self.raft.leader
        return NotLeader(leader, self.leader_client_address())

    def require_leader(self) -> None:
        if not self.is_leader:
            raise self.not_leader()

    def status_fields(self) -> dict[str, Any]:
        raft = self.raft
        return {
            "member": int(self.member_id),
            "role": raft.role.value,
            "term": int(raft.term),
            "commit": int(raft.log.commit),
            "applied": int(raft.log.applied),
            "leader": None if raft.leader is None else int(raft.leader),
            "address": self.client_address or self.config.me.client,
            "peer_address": self.peer_address or self.config.me.peer,
            "pid": os.getpid(),
            "voters": [int(v) for v in raft.conf.voters],
            "learners": [int(v) for v in raft.conf.learners],
        }

    # ------------------------------------------------------------------ requests
    async def submit(self, operation: Operation, timeout_s: float | None = None) -> Outcome:
        """Run one operation through Raft (rule 1); raises `NotApplied` when Raft refused
        it and `OutcomeUnknown` when no outcome came within the timeout (rule 3)."""
        forwarded = not self.is_leader
        if forwarded:
            self.check_leader()  # a leader learned without a role change (rule 6)
        future = self.host.submit(operation)
        if future.done():
            outcome = future.result()
        elif not forwarded and timeout_s is None:
            outcome = await self._expiring(future)
        else:
            outcome = await self._outcome(
                future,
                self.request_timeout_s if timeout_s is None else timeout_s,
                self.leader_change() if forwarded else None,  # rule 5
            )
        if outcome.type == "fail":
            raise NotApplied(outcome.error or "refused by raft")
        if outcome.type == "info":
            raise OutcomeUnknown(outcome.error or "outcome unknown")
        return outcome

    def _expiring(self, future: asyncio.Future[Outcome]) -> asyncio.Future[Outcome]:
        """`future`, given an ``info`` outcome if nothing answers it within the default
        timeout (rule 8: one queue and one sweeping timer for every such request)."""
        loop = asyncio.get_running_loop()
        self._deadlines.append((loop.time() + self.request_timeout_s, future))
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_every_s, self._sweep)
        return future

    def _sweep(self) -> None:
        deadlines = self._deadlines
        now = asyncio.get_running_loop().time()
        while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= now):
            _, future = deadlines.popleft()
            if not future.done():
                timeout = self.request_timeout_s
                future.set_result(
                    Outcome(
                        "info", error=f"no outcome within {timeout:.3g} s (no quorum reachable?)"
                    )
                )
        self._sweeper = (
            asyncio.get_running_loop().call_later(self._sweep_every_s, self._sweep)
            if deadlines
            else None
        )

    @staticmethod
    async def _outcome(
        future: asyncio.Future[Outcome], timeout: float, change: asyncio.Future[None] | None
    ) -> Outcome:
        """Wait for `future`, giving up (`OutcomeUnknown`) after `timeout` or when `change`
        resolves first. One timer handle and at most one callback per request: cheaper
        than `asyncio.wait`, which this replaces on the hot path."""
        reason: list[str] = []

        def give_up(why: str) -> None:
            if not future.done():
                reason.append(why)
                future.cancel()  # the host forgets the request (NodeHost.submit)

        def moved(_: asyncio.Future[None]) -> None:
            give_up("the leader changed while the request was forwarded")

        timer = asyncio.get_running_loop().call_later(
            timeout, give_up, f"no outcome within {timeout:.3g} s (no quorum reachable?)"
        )
        if change is not None:
            change.add_done_callback(moved)
        try:
            return await future
        except asyncio.CancelledError:
            if reason:  # cancelled by give_up, not by our caller
                raise OutcomeUnknown(reason[0]) from None
            raise
        finally:
            timer.cancel()
            if change is not None:
                change.remove_done_callback(moved)

    async def propose(self, command: bytes, timeout_s: float | None = None) -> bytes:
        outcome = await self.submit(Operation("store", data=command), timeout_s)
        return _data(outcome)

    async def read(self, query: bytes, timeout_s: float | None = None) -> bytes:
        """A linearizable read: Raft's ReadIndex round, then the local machine."""
        outcome = await self.submit(Operation("read", data=query), timeout_s)
        return _data(outcome)

    def read_local(self, query: bytes) -> bytes:
        """A serializable read: this member's machine as applied so far."""
        from tejido.store.ops import machine_query

        return machine_query(self._machine, query)

    def leader_change(self) -> asyncio.Future[None]:
        """A future resolved when this member next sees another (term, leader)."""
        if self._leader_changed is None or self._leader_changed.done():
            self._leader_changed = asyncio.get_running_loop().create_future()
        return self._leader_changed

    def check_leader(self) -> None:
        """Resolve `leader_change` when (term, leader) moved (rules 5, 6)."""
        process = self.host.process
        if not isinstance(process, RaftNode):
            return
        seen = (int(process.term), process.leader)
        if seen != self._leader_seen:
            self._leader_seen = seen
            changed, self._leader_changed = self._leader_changed, None
            if changed is not None and not changed.done():
                changed.set_result(None)

    def call_raft(self, method: Callable[[RaftNode], Any]) -> Any:
        """Run a `RaftNode` method as one input (membership, transfer); a Raft
        `NotLeader` becomes the store's, with the leader's client address."""
        raft = self.raft
        try:
            return self.host.call(lambda: method(raft))
        except RaftNotLeader:
            raise self.not_leader() from None


def _data(outcome: Outcome) -> bytes:
    if outcome.data is None:
        raise NotApplied(f"the state machine answered without data: {outcome.error or outcome}")
    return outcome.data


class _MemberRaft(RaftNode):
    """`RaftNode` passing what it reports (role, term, configuration changes) to the
    member too (rule 6)."""

    MESSAGES = message_types(RaftNode)  # the mesh decodes Raft's messages for it

    def __init__(self, *args: Any, reported: Callable[[Any], None], **kwargs: Any) -> None:
        self._reported = reported
        super().__init__(*args, **kwargs)

    def report(self, event: Any) -> None:
        super().report(event)
        self._reported(event)


class _MemberMachine(StoreStateMachine):
    """The MVCC machine, telling the watch hub when Raft restores a snapshot into it
    (watch.py rule 5), and the lessor when its lease table changed (lessor.py rule 5:
    a command adds or removes at most one lease, or expires some, so the count moves)."""

    def __init__(self, restored: Callable[[], None]) -> None:
        super().__init__()
        self._restored = restored
        self.leases_changed: Callable[[], None] = _nothing

    def apply(self, command: bytes) -> bytes:
        before = len(self.space.leases.by_id)
        result = super().apply(command)
        if len(self.space.leases.by_id) != before:
            self.leases_changed()
        return result

    def restore(self, data: bytes) -> None:
        super().restore(data)
        self._restored()
        self.leases_changed()


def _nothing() -> None:
    pass
