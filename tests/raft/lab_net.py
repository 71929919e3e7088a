"""A 6.5840-style test network over the in-memory harness, for `test_raft_lab.py`.

The MIT 6.5840 Raft lab drives real goroutines with a lossy RPC layer (`labrpc`) and a
wall clock; this is the same vocabulary -- connect, disconnect, crash, restart, Start,
`one`, `check_one_leader` -- over `raft_harness.Cluster` with virtual time, so every test
is deterministic from its seed and runs in milliseconds:

- time moves only inside `run_for`, which fires the nodes' timers and delivers in-flight
  messages in deadline order (ties broken by insertion order);
- every storage sync completes at once (a node's disk never lags), so a crash loses only
  what was never written;
- a message leaves its sender when the sender's output is taken; it is lost when either
  end is disconnected (at sending or at delivery) or the destination is down. A reliable
  network delivers in order on each link after 0.5-2 ms; an unreliable one drops 10 % of
  messages and delays the rest by 0-27 ms; "long reordering" delays two thirds of them by
  0.2-2.2 s (labrpc's numbers);
- `Start` is `RaftNode.propose` with forwarding off, so it fails on a non-leader, as the
  lab's `Start` returns isLeader=false.

`Cluster` (with `check=True`) runs `SafetyHistory.check` after every step, so every test
also proves the safety invariants held throughout.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import replace

import msgspec
from raft_harness import Cluster

from tejido.core.ids import NodeId, TimerName
from tejido.core.messages import Message
from tejido.core.protocol import Receive, TimerFired
from tejido.raft import NotLeader, ProposalRefused, RaftConfig, Role
from tejido.raft.messages import AppendEntriesResponse

ELECTION_TIMEOUT_S = 1.0
"""The lab's RaftElectionTimeout; also our configured election timeout."""

_encoder = msgspec.msgpack.Encoder()


class LabCluster(Cluster):
    """The harness cluster, remembering how far each node ever applied (the lab's per-server
    applied logs survive crashes in the tester)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed, check=True)
        self.applied_mark: dict[NodeId, int] = {}

    def collect(self, node_id: NodeId) -> None:
        super().collect(node_id)
        node = self.slots[node_id].node
        if node is not None and node.log.applied > self.applied_mark.get(node_id, 0):
            self.applied_mark[node_id] = node.log.applied


class LabNet:
    def __init__(
        self,
        servers: int,
        seed: int,
        *,
        reliable: bool = True,
        snapshot_interval: int = 0,
        config: RaftConfig | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.cluster = LabCluster(seed)
        self.reliable = reliable
        self.long_reordering = False
        self.connected: set[NodeId] = set()
        self.inflight: list[tuple[float, int, NodeId, NodeId, Message]] = []
        self.seq = 0
        self.link_clock: dict[tuple[NodeId, NodeId], float] = {}
        self.rpcs = 0
        """Requests sent (messages whose kind does not end in Response), as labrpc counts."""
        self.bytes = 0
        """Encoded size of every message sent."""
        self.kinds: dict[str, int] = {}
        """Messages delivered, by kind."""
        base = config or RaftConfig()
        self.config = replace(
            base,
            election_timeout_s=ELECTION_TIMEOUT_S,
            forward_proposals=False,
            snapshot_threshold_entries=snapshot_interval,
        )
        nodes = tuple(NodeId(i) for i in range(1, servers + 1))
        for _ in nodes:
            node_id = self.cluster.add_node(self.config, nodes)
            self.connected.add(node_id)
        self.ids = nodes
        self._pump()

    # Time and messages ---------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.cluster.now

    def _send(self, src: NodeId, dst: NodeId, message: Message) -> None:
        if not type(message).__name__.endswith("Response"):
            self.rpcs += 1
        self.bytes += len(_encoder.encode(message))
        if src not in self.connected or dst not in self.connected:
            return
        if not self.reliable and self.rng.random() < 0.1:
            return
        if self.long_reordering and self.rng.random() < 2 / 3:
            at = self.now + self.rng.uniform(0.2, 2.2)
        elif self.reliable:  # in order on each link, like a TCP connection
            at = max(self.now + self.rng.uniform(0.0005, 0.002), self.link_clock.get((src, dst), 0))
            self.link_clock[src, dst] = at
        else:
            at = self.now + self.rng.uniform(0.0, 0.027)
        self.seq += 1
        heapq.heappush(self.inflight, (at, self.seq, src, dst, message))

    def _pump(self) -> None:
        """Complete every sync and put every emitted message in flight, until quiet."""
        cluster = self.cluster
        while True:
            progressed = False
            for node_id in cluster.up():
                progressed |= cluster.complete_syncs(node_id)
            queue, cluster.queue = cluster.queue, []
            for src, dst, message in queue:
                self._send(src, dst, message)
            if not progressed and not queue:
                return

    def _next_timer(self) -> tuple[float, NodeId, TimerName] | None:
        best: tuple[float, NodeId, TimerName] | None = None
        for node_id, slot in self.cluster.slots.items():
            if slot.node is None:
                continue
            for name, deadline in slot.timers.items():
                if best is None or deadline < best[0]:
                    best = (deadline, node_id, name)
        return best

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        cluster = self.cluster
        while True:
            timer = self._next_timer()
            at_message = self.inflight[0][0] if self.inflight else float("inf")
            at_timer = timer[0] if timer is not None else float("inf")
            at = min(at_message, at_timer)
            if at > end:
                break
            cluster.now = max(cluster.now, at)
            if at_message <= at_timer:
                _, _, src, dst, message = heapq.heappop(self.inflight)
                if src in self.connected and dst in self.connected and dst in cluster.up():
                    kind = type(message).__name__
                    if isinstance(message, AppendEntriesResponse) and not message.success:
                        kind += "-reject"
                    self.kinds[kind] = self.kinds.get(kind, 0) + 1
                    cluster.step(dst, Receive(src, message))
            else:
                assert timer is not None
                _, node_id, name = timer
                del cluster.slots[node_id].timers[name]
                cluster.step(node_id, TimerFired(name))
            self._pump()
        cluster.now = end

    # The tester's verbs ---------------------------------------------------------------------
    def disconnect(self, node_id: NodeId) -> None:
        self.connected.discard(node_id)

    def connect(self, node_id: NodeId) -> None:
        self.connected.add(node_id)

    def crash(self, node_id: NodeId) -> None:
        self.disconnect(node_id)
        if self.cluster.slots[node_id].node is not None:
            self.cluster.crash(node_id)

    def restart(self, node_id: NodeId) -> None:
        """Crash (if up) and start again from what the disk holds; then connect."""
        self.crash(node_id)
        self.cluster.start(node_id)
        self._pump()
        self.connect(node_id)

    def start(self, node_id: NodeId, command: bytes) -> int | None:
        """The lab's Start(command): the index if `node_id` leads (and is up), else None."""
        node = self.cluster.slots[node_id].node
        if node is None:
            return None
        try:
            index = node.propose(command)
        except (NotLeader, ProposalRefused):
            index = None
        self.cluster.collect(node_id)
        self._pump()
        return index

    def n_committed(self, index: int) -> tuple[int, bytes | None]:
        """How many nodes applied `index` (ever), and the command there. The harness already
        asserts that every node applied the same command at each index."""
        count = sum(1 for mark in self.cluster.applied_mark.values() if mark >= index)
        return count, self.cluster.applied_data.get(index)

    def leaders(self) -> dict[int, list[NodeId]]:
        by_term: dict[int, list[NodeId]] = {}
        for node_id in self.cluster.up():
            node = self.cluster.node(node_id)
            if node_id in self.connected and node.role is Role.LEADER:
                by_term.setdefault(node.term, []).append(node_id)
        return by_term

    def check_one_leader(self) -> NodeId:
        """Exactly one leader among connected nodes in the newest term (lab: checkOneLeader)."""
        for _ in range(10):
            self.run_for(self.rng.uniform(0.45, 0.55))
            by_term = self.leaders()
            for term, nodes in by_term.items():
                assert len(nodes) == 1, f"term {term} has {len(nodes)} leaders: {nodes}"
            if by_term:
                return by_term[max(by_term)][0]
        raise AssertionError("expected one leader, got none")

    def check_terms(self) -> int:
        terms = {self.cluster.node(n).term for n in self.cluster.up() if n in self.connected}
        assert len(terms) == 1, f"servers disagree on the term: {sorted(terms)}"
        return terms.pop()

    def check_no_leader(self) -> None:
        assert not self.leaders(), f"unexpected leader: {self.leaders()}"

    def one(self, command: bytes, expected: int, retry: bool = True) -> int:
        """Agree on `command` (lab: cfg.one): offer it to the nodes in turn until a leader
        takes it, then wait up to 2 s for `expected` nodes to apply it; give up after 10 s."""
        deadline = self.now + 10.0
        turn = 0
        while self.now < deadline:
            index = None
            for _ in self.ids:
                turn = turn % len(self.ids) + 1
                if NodeId(turn) in self.connected:
                    index = self.start(NodeId(turn), command)
                    if index is not None:
                        break
            if index is not None:
                waited = self.now + 2.0
                while self.now < waited:
                    count, data = self.n_committed(index)
                    if count >= expected and data == command:
                        return index
                    self.run_for(0.02)
                if not retry:
                    raise AssertionError(f"one({command!r}) failed to reach agreement")
            else:
                self.run_for(0.05)
        raise AssertionError(f"one({command!r}) failed to reach agreement")

    def wait(self, index: int, expected: int) -> bytes:
        """Wait until `expected` nodes applied `index` (lab: cfg.wait)."""
        for _ in range(500):
            count, data = self.n_committed(index)
            if count >= expected and data is not None:
                return data
            self.run_for(0.02)
        raise AssertionError(f"only {self.n_committed(index)[0]} nodes applied {index}")

    def command(self) -> bytes:
        return f"cmd-{self.rng.getrandbits(48)}".encode()
