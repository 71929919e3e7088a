"""`tejido bench raft`: committed entries per second of the pure Raft core.

Three `RaftNode`s in one process, driven directly through their hooks: messages are taken
from the outboxes and delivered in FIFO order; every sync completes at once (an in-memory
disk that drops what it is given), reported with one `Durable` for the newest token (group
commit: `on_durable` takes a token as covering every earlier one); timers never fire (no
time passes, so the leader stays the leader). Node 1 campaigns, then each round proposes
`batch` key-value writes (128 bytes encoded) to it before any output is processed, and the
round's outputs are carried out until the cluster is quiet. The number reported is the
leader's commit index advance per wall-clock second: the cost of the algorithm (log,
progress tracking, quorum, encoding entries for storage, applying them to the key-value
state machine, the applied digest, events), without a network or a disk. The default
`RaftConfig` is used.
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


def measure_throughput(batch: int, entries: int = 20_000, seed: int = 1) -> float:
    """Committed entries per wall second, proposing `batch` commands per round."""
    cluster = RaftCoreCluster(seed=seed)
    commands = [_write_command(f"k{i % 8}", i) for i in range(batch)]
    rounds = max(1, entries // batch)
    start_commit = cluster.leader.log.commit
    started = time.perf_counter()
    for _ in range(rounds):
        cluster.propose_batch(commands)
    wall = time.perf_counter() - started
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
    """The `top` functions by cumulative time for one measurement at `batch`."""
    profiler = cProfile.Profile()
    profiler.enable()
    measure_throughput(batch, entries)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()
