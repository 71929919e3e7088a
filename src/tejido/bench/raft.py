"""`tejido bench raft`: committed entries per second of the pure Raft core.

Three `RaftNode`s in one process, driven directly through their hooks, with an in-memory
transport (messages handed over as objects) and an in-memory disk that drops what it is
given: every sync completes at once, reported with one `Durable` for the newest token
(group commit: `on_durable` takes a token as covering every earlier one). Timers never
fire (no time passes, so the leader stays the leader). Node 1 campaigns first.

The measurement (`measure_throughput`, `RaftCoreCluster.pump`) drives the nodes the way an
event loop does: they take turns, leader first; at its turn a node handles every message
waiting in its inbox, the leader then takes the next batch of `batch` key-value writes
(128 bytes encoded, distinct values) as one input (`RaftNode.propose_batch`, or `propose`
for a batch of one), and the node's outputs are carried out. So proposals are pipelined:
a batch is proposed while the previous one is being acknowledged, and the commit index
rides on the next AppendEntries (replication.py rule 2b). When every batch is proposed
the cluster runs until quiet, and `RaftCoreCluster.verify` checks that every entry is
committed and applied on all three nodes, with identical state machines and applied
digests. The number reported is the leader's commit index advance per wall-clock second:
the cost of the algorithm (log, progress tracking, quorum, encoding entries for storage,
applying them to the key-value state machine on every node, events), without a network
or a disk. The applied digest, a checker aid computed on demand, is read once by
`verify`, after the clock stops. The default `RaftConfig` is used.

`measure_throughput(..., pipelined=False)` runs strict rounds instead: each batch is
carried out until the cluster is quiet (messages in FIFO order) before the next.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import statistics
import time
from collections import deque

from tejido.bench.records import Record
from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.core.operations import Operation
from tejido.core.protocol import Env
from tejido.core.storage import Recovered
from tejido.raft.config import RaftConfig
from tejido.raft.kv import encode_operation
from tejido.raft.node import RaftNode
from tejido.raft.types import Role

__all__ = ["BATCHES", "RaftCoreCluster", "bench_raft", "measure_throughput", "profile_summary"]

BATCHES = (1, 16, 256)
PAYLOAD_BYTES = 128


class RaftCoreCluster:
    """Three cores, an in-memory transport and an in-memory (discarding) disk."""

    def __init__(
        self,
        nodes: int = 3,
        seed: int = 1,
        max_append_bytes: int = 64 * 1024,
        config: RaftConfig | None = None,
    ) -> None:
        ids = tuple(NodeId(i) for i in range(1, nodes + 1))
        config = config or RaftConfig(max_append_bytes=max_append_bytes)
        self.nodes = {
            n: RaftNode(Env(n, ids, random.Random(f"{seed}:{n}"), lambda: 0.0), config) for n in ids
        }
        self.queue: deque[tuple[NodeId, NodeId, Message]] = deque()
        self.inboxes: dict[NodeId, deque[tuple[NodeId, Message]]] = {n: deque() for n in ids}
        for node in self.nodes.values():
            node.on_start(Recovered())
        self.leader = self.nodes[ids[0]]
        self.leader.campaign()
        self.run()
        if self.leader.role is not Role.LEADER:
            raise RuntimeError("node 1 did not become leader")

    def _carry_out(self, node: RaftNode) -> None:
        """Take the node's messages into the FIFO queue and complete its syncs at once: one
        Durable for the newest token covers every earlier one (group commit). That may
        produce more output, taken in turn. Storage, timers, events and replies are
        dropped when the round ends (`_drop_the_rest`)."""
        out = node.out
        queue = self.queue
        src = node.node_id
        while True:
            if out.messages:
                queue.extend([(src, dst, message) for dst, message in out.messages])
                out.messages.clear()
            syncs = out.syncs
            if not syncs:
                return
            token = syncs[-1]
            syncs.clear()
            node.on_durable(token)

    def _drop_the_rest(self) -> None:
        for node in self.nodes.values():
            out = node.out
            out.storage.clear()
            out.timers.clear()
            out.events.clear()
            out.replies.clear()

    def run(self) -> None:
        """Carry out every output until no node has anything left to do: every message is
        delivered (in FIFO order) and handled, and its receiver's outputs carried out."""
        nodes = self.nodes
        queue = self.queue
        carry_out = self._carry_out
        for node in nodes.values():
            carry_out(node)
        while queue:
            src, dst, message = queue.popleft()
            target = nodes[dst]
            target.on_message(src, message)
            carry_out(target)
        self._drop_the_rest()

    def _hand_over(self, node: RaftNode) -> None:
        """`_carry_out` for `pump`: messages go to their receivers' inboxes."""
        out = node.out
        inboxes = self.inboxes
        src = node.node_id
        while True:
            if out.messages:
                for dst, message in out.messages:
                    inboxes[dst].append((src, message))
                out.messages.clear()
            syncs = out.syncs
            if not syncs:
                return
            token = syncs[-1]
            syncs.clear()
            node.on_durable(token)

    def pump(self, batches: list[list[bytes]]) -> None:
        """Propose `batches` pipelined, the way an event loop drives its nodes: the nodes
        take turns (the leader first); at its turn a node handles every message waiting in
        its inbox, the leader then takes the next batch as one input (a client that keeps
        it busy), and the node's outputs are carried out (messages into the receivers'
        inboxes, its sync completed at once). Ends when every batch is proposed and the
        cluster is quiet."""
        leader = self.leader
        order = [leader, *(n for n in self.nodes.values() if n is not leader)]
        inboxes = self.inboxes
        hand_over = self._hand_over
        pending = deque(batches)
        while True:
            quiet = True
            for node in order:
                inbox = inboxes[node.node_id]
                if inbox:
                    quiet = False
                    on_message = node.on_message
                    while inbox:
                        src, message = inbox.popleft()
                        on_message(src, message)
                if node is leader and pending:
                    quiet = False
                    commands = pending.popleft()
                    if len(commands) == 1:
                        leader.propose(commands[0])
                    else:
                        leader.propose_batch(commands)
                hand_over(node)
            if quiet:
                break
        self._drop_the_rest()

    def propose_batch(self, commands: list[bytes]) -> None:
        """One round: the commands in one `propose_batch` input (one `propose` for a batch of
        one), then everything carried out until the cluster is quiet."""
        if len(commands) == 1:
            self.leader.propose(commands[0])
        else:
            self.leader.propose_batch(commands)
        self.run()

    def verify(self) -> None:
        """Every entry committed, applied on all three nodes, with the same results."""
        leader_log = self.leader.log
        for node in self.nodes.values():
            log = node.log
            if not log.applied == log.commit == log.last_index == leader_log.last_index:
                raise RuntimeError(
                    f"node {node.node_id}: applied {log.applied}, commit {log.commit}, "
                    f"last {log.last_index}; leader's last {leader_log.last_index}"
                )
        machines = {node.node_id: node.sm.snapshot() for node in self.nodes.values()}
        digests = {node.node_id: node.applied_digest for node in self.nodes.values()}
        if len(set(machines.values())) != 1 or len(set(digests.values())) != 1:
            raise RuntimeError("the state machines differ")


def _write_command(key: str, value: int) -> bytes:
    """A key-value write whose encoding is exactly `PAYLOAD_BYTES` long."""
    base = encode_operation(Operation("write", key, f"{value}:"))
    pad = PAYLOAD_BYTES - len(base)
    data = encode_operation(Operation("write", key, f"{value}:" + "x" * pad))
    while len(data) > PAYLOAD_BYTES:  # a longer string may need a longer length prefix
        pad -= 1
        data = encode_operation(Operation("write", key, f"{value}:" + "x" * pad))
    return data


def measure_throughput(
    batch: int,
    entries: int = 20_000,
    seed: int = 1,
    pipelined: bool = True,
    profiler: cProfile.Profile | None = None,
) -> float:
    """Committed entries per wall second, proposing `batch` commands per input: pipelined
    (`RaftCoreCluster.pump`), or in strict rounds (each batch carried out until the cluster
    is quiet before the next). A `profiler` runs while the clock does."""
    cluster = RaftCoreCluster(seed=seed)
    rounds = max(1, entries // batch)
    batches = [
        [_write_command(f"k{i % 8}", i) for i in range(r * batch, (r + 1) * batch)]
        for r in range(rounds)
    ]
    start_commit = cluster.leader.log.commit
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    if pipelined:
        cluster.pump(batches)
    else:
        for commands in batches:
            cluster.propose_batch(commands)
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    committed = cluster.leader.log.commit - start_commit
    if committed != rounds * batch:
        raise RuntimeError(f"committed {committed} of {rounds * batch} entries")
    cluster.verify()
    return committed / wall


def bench_raft(repeats: int = 3, entries: int = 20_000) -> list[Record]:
    records: list[Record] = []
    for batch in BATCHES:
        rates = [measure_throughput(batch, entries) for _ in range(repeats)]
        records.append(
            {
                "system": "tejido-raft-core",
                "workload": f"batch={batch}",
                "metric": "throughput",
                "value": round(statistics.median(rates)),
                "unit": "entries/s",
                "runs": repeats,
                "nodes": 3,
                "payload_bytes": PAYLOAD_BYTES,
            }
        )
    return records


def profile_summary(batch: int = 256, entries: int = 20_000, top: int = 25) -> str:
    """The `top` functions by cumulative time, then by their own time, for one
    measurement at `batch` (the timed part only: not the setup, not `verify`)."""
    profiler = cProfile.Profile()
    measure_throughput(batch, entries, profiler=profiler)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()
