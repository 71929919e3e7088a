"""A small deterministic in-memory harness that drives `RaftNode` cores directly.

It owns, per node: an in-memory disk (durable `StorageState` + unsynced operations with sync
markers), pending timers (name -> deadline on one manual clock), a seeded `random.Random`;
and one queue of in-flight messages. Nothing is timing-based: time moves only when a
command (or the stress test) says so.

`Cluster.run(command, args)` implements the scenario-file commands (see tests/raft/testdata)
and returns the output lines: delivered messages as ``1->2 <describe()>``, events as
``1: <describe()>``, client replies as ``1: reply #n ok value=...``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Command, Durable, Env, Receive, Start, TimerFired
from tejido.core.storage import LogAppend, Put, Recovered, StorageOp, StorageState
from tejido.raft import (
    ConfState,
    GroupId,
    NodeView,
    RaftConfig,
    RaftNode,
    SafetyHistory,
    view_from_storage,
)
from tejido.raft.errors import NotLeader, ProposalRefused
from tejido.raft.kv import KeyValueStateMachine
from tejido.raft.messages import Applied
from tejido.raft.types import Role


class Disk:
    """Durable image + unsynced operations; `crash` keeps what the storage contract allows."""

    def __init__(self) -> None:
        self.durable = StorageState()
        self.pending: list[StorageOp | int] = []  # an int is a sync marker (its token)

    def write(self, op: StorageOp) -> None:
        self.pending.append(op)

    def sync(self, token: int) -> None:
        self.pending.append(token)

    def has_syncs(self) -> bool:
        return any(isinstance(p, int) for p in self.pending)

    def complete_sync(self) -> int:
        """Make everything before the first sync marker durable; return its token."""
        while True:
            item = self.pending.pop(0)
            if isinstance(item, int):
                return item
            self.durable.apply(item)

    def crash(self, rng: random.Random | None) -> None:
        """Lose unsynced writes: all of them (rng None), or what rules 3-4 of the storage
        contract allow: a prefix of the log operations (the last append possibly torn) and,
        per key, a prefix of its puts."""
        ops = [p for p in self.pending if not isinstance(p, int)]
        self.pending = []
        if rng is None:
            return
        log_ops = [op for op in ops if not isinstance(op, Put)]
        keep_log = rng.randint(0, len(log_ops))
        kept: set[int] = {id(op) for op in log_ops[:keep_log]}
        keys = sorted({op.key for op in ops if isinstance(op, Put)})
        for key in keys:
            puts = [op for op in ops if isinstance(op, Put) and op.key == key]
            kept |= {id(op) for op in puts[: rng.randint(0, len(puts))]}
        survivors = [op for op in ops if id(op) in kept]
        if survivors and keep_log and isinstance(log_ops[keep_log - 1], LogAppend):
            last = log_ops[keep_log - 1]
            assert isinstance(last, LogAppend)
            torn = LogAppend(last.records[: rng.randint(0, len(last.records))])
            survivors = [torn if op is last else op for op in survivors]
        for op in survivors:
            self.durable.apply(op)

    def recovered(self) -> Recovered:
        return self.durable.snapshot()


@dataclass
class Slot:
    """One node's place in the cluster, alive or crashed."""

    env: Env
    config: RaftConfig
    disk: Disk = field(default_factory=Disk)
    node: RaftNode | None = None
    timers: dict[TimerName, float] = field(default_factory=dict)


class Cluster:
    def __init__(self, seed: int = 0, check: bool = True) -> None:
        self.seed = seed
        self.now = 0.0
        self.slots: dict[NodeId, Slot] = {}
        self.queue: list[tuple[NodeId, NodeId, Message]] = []
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.lines: list[str] = []
        self.next_request = 1
        self.history = SafetyHistory() if check else None
        self.replies: dict[RequestId, Outcome] = {}
        self.steps = 0
        self.idles = 0
        self.invoked: dict[RequestId, tuple[int, Operation]] = {}
        self.replied_at: dict[RequestId, int] = {}
        self.applied_data: dict[int, bytes] = {}
        """Index -> command of every applied entry (checked equal on every node)."""
        self.applied_step: dict[int, int] = {}
        self.stored_views: dict[NodeId, tuple[Recovered, NodeView]] = {}
        """Views of crashed nodes, reused while their durable image is unchanged."""

    # Plumbing -----------------------------------------------------------------------------
    def add_node(self, config: RaftConfig, nodes: tuple[NodeId, ...]) -> NodeId:
        node_id = NodeId(len(self.slots) + 1)
        rng = random.Random(self.seed * 1000 + node_id)
        env = Env(node_id, nodes, rng, lambda: self.now)
        self.slots[node_id] = Slot(env, config)
        self.start(node_id)
        return node_id

    def start(self, node_id: NodeId) -> None:
        slot = self.slots[node_id]
        slot.node = RaftNode(slot.env, slot.config, KeyValueStateMachine)
        self.step(node_id, Start(slot.disk.recovered()))

    def node(self, node_id: NodeId) -> RaftNode:
        node = self.slots[node_id].node
        if node is None:
            raise KeyError(f"node {node_id} is down")
        return node

    def up(self) -> list[NodeId]:
        return [n for n, s in self.slots.items() if s.node is not None]

    def step(
        self, node_id: NodeId, event: Start | Receive | TimerFired | Command | Durable
    ) -> None:
        self.steps += 1
        self.node(node_id).step(event)
        self.collect(node_id)

    def collect(self, node_id: NodeId) -> None:
        slot = self.slots[node_id]
        out = self.node(node_id).ready()
        for op in out.storage:
            slot.disk.write(op)
        for token in out.syncs:
            slot.disk.sync(token)
        for name, delay in out.timers:
            if delay is None:
                slot.timers.pop(name, None)
            else:
                slot.timers[name] = self.now + delay
        for dst, message in out.messages:
            self.queue.append((node_id, dst, message))
        node = self.node(node_id)
        for event in out.events:
            self.lines.append(f"{node_id}: {event.describe()}")
            if isinstance(event, Applied):
                for index in range(max(event.first, node.log.snapshot_index + 1), event.last + 1):
                    data = node.log.entry(index).data
                    self.applied_step.setdefault(index, self.steps)
                    if self.applied_data.setdefault(index, data) != data:
                        raise AssertionError(f"node {node_id} applied other data at {index}")
        for request, outcome in out.replies:
            self.replies[request] = outcome
            self.replied_at[request] = self.steps
            text = f"{node_id}: reply #{request} {outcome.type}"
            if outcome.value is not None:
                text += f" value={outcome.value!r}"
            if outcome.error:
                text += f" error={outcome.error!r}"
            self.lines.append(text)
        self.check()
        if out.idle:  # the batch is carried out: `on_idle` now, as the simulator does
            self.idles += 1
            node.on_idle()
            self.collect(node_id)

    def views(self) -> list[NodeView]:
        views = []
        for node_id, slot in self.slots.items():
            if slot.node is not None:
                views.append(slot.node.view())
            else:
                group = slot.config.group
                voters = slot.config.initial_voters
                initial = ConfState(slot.env.nodes if voters is None else voters)
                recovered = slot.disk.recovered()
                cached = self.stored_views.get(node_id)
                if cached is None or cached[0] != recovered:
                    view = view_from_storage(node_id, recovered, group, initial)
                    cached = self.stored_views[node_id] = (recovered, view)
                views.append(cached[1])
        return views

    def check(self) -> None:
        if self.history is not None:
            self.history.check(self.views())

    # Actions ----------------------------------------------------------------------------------
    def deliver(self, index: int) -> None:
        src, dst, message = self.queue.pop(index)
        if (src, dst) in self.blocked or self.slots[dst].node is None:
            self.lines.append(f"{src}->{dst} {message.describe()} DROPPED")
            return
        self.lines.append(f"{src}->{dst} {message.describe()}")
        self.step(dst, Receive(src, message))

    def deliver_all(self, only: Iterable[NodeId] | None = None) -> bool:
        targets = set(only) if only is not None else None
        batch = [i for i, (_, dst, _) in enumerate(self.queue) if targets is None or dst in targets]
        if not batch:
            return False
        pending = [self.queue[i] for i in batch]
        self.queue = [m for i, m in enumerate(self.queue) if i not in set(batch)]
        for item in pending:
            self.queue.insert(0, item)
            self.deliver(0)
        return True

    def complete_syncs(self, node_id: NodeId) -> bool:
        slot = self.slots[node_id]
        progressed = False
        while slot.node is not None and slot.disk.has_syncs():
            self.step(node_id, Durable(slot.disk.complete_sync()))
            progressed = True
        return progressed

    def stabilize(self, only: Iterable[NodeId] | None = None) -> None:
        nodes = list(only) if only is not None else list(self.slots)
        for _ in range(10_000):
            progressed = False
            for node_id in nodes:
                progressed |= self.complete_syncs(node_id)
            progressed |= self.deliver_all(nodes)
            if not progressed:
                return
        raise AssertionError("stabilize did not settle")

    def fire(self, node_id: NodeId, name: str) -> None:
        slot = self.slots[node_id]
        timer = TimerName(f"raft/{slot.config.group}/{name}")
        deadline = slot.timers.pop(timer, None)
        if deadline is None:
            self.lines.append(f"{node_id}: no {name} timer set")
            return
        self.now = max(self.now, deadline)
        self.step(node_id, TimerFired(timer))

    def crash(self, node_id: NodeId, rng: random.Random | None = None) -> None:
        slot = self.slots[node_id]
        slot.disk.crash(rng)
        slot.node = None
        slot.timers.clear()

    def command(self, node_id: NodeId, operation: Operation) -> RequestId:
        request = RequestId(self.next_request)
        self.next_request += 1
        self.invoked[request] = (self.steps + 1, operation)
        self.step(node_id, Command(request, operation))
        return request

    def leader(self) -> NodeId | None:
        leaders = [n for n in self.up() if self.node(n).role is Role.LEADER]
        return max(leaders, key=lambda n: self.node(n).term) if leaders else None

    # Scenario commands -------------------------------------------------------------------------
    def run(self, command: str, args: list[str]) -> list[str]:
        self.lines = []
        handler = getattr(self, "cmd_" + command.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown scenario command {command!r}")
        handler(args)
        return self.lines

    def cmd_add_nodes(self, args: list[str]) -> None:
        count = int(args[0])
        options = dict(a.split("=", 1) for a in args[1:] if "=" in a)
        joining = "joining" in args
        first = len(self.slots) + 1
        nodes = tuple(NodeId(i) for i in range(1, first + count))
        if "voters" in options:
            nodes = tuple(sorted({*nodes, *_ids(options["voters"])}))
        overrides: dict[str, object] = {
            k.replace("-", "_"): _value(v) for k, v in options.items() if k != "voters"
        }
        if "voters" in options:
            overrides["initial_voters"] = _ids(options["voters"])
        config = replace(RaftConfig(), **overrides)
        if joining:
            config = replace(config, initial_voters=())
        for _ in range(count):
            self.add_node(config, nodes)

    def cmd_campaign(self, args: list[str]) -> None:
        node_id = NodeId(int(args[0]))
        self.node(node_id).campaign()
        self.collect(node_id)

    def cmd_tick_election(self, args: list[str]) -> None:
        self.fire(NodeId(int(args[0])), "election")

    def cmd_tick_heartbeat(self, args: list[str]) -> None:
        self.fire(NodeId(int(args[0])), "heartbeat")

    def cmd_tick_check_quorum(self, args: list[str]) -> None:
        self.fire(NodeId(int(args[0])), "check-quorum")

    def cmd_advance(self, args: list[str]) -> None:
        self.now += float(args[0])

    def cmd_propose(self, args: list[str]) -> None:
        node_id = NodeId(int(args[0]))
        try:
            index = self.node(node_id).propose(args[1].encode())
            self.lines.append(
                f"{node_id}: proposed at {index}" if index else f"{node_id}: forwarded"
            )
        except (NotLeader, ProposalRefused) as error:
            self.lines.append(f"{node_id}: refused: {error}")
        self.collect(node_id)

    def cmd_put(self, args: list[str]) -> None:
        self.command(NodeId(int(args[0])), Operation("write", args[1], _value(args[2])))

    def cmd_get(self, args: list[str]) -> None:
        self.command(NodeId(int(args[0])), Operation("read", args[1]))

    def cmd_cas(self, args: list[str]) -> None:
        value = (_value(args[2]), _value(args[3]))
        self.command(NodeId(int(args[0])), Operation("cas", args[1], value))  # type: ignore[arg-type]

    def cmd_append(self, args: list[str]) -> None:
        self.command(NodeId(int(args[0])), Operation("append", args[1], _value(args[2])))

    def cmd_deliver_msgs(self, args: list[str]) -> None:
        self.deliver_all([NodeId(int(a)) for a in args] if args else None)

    def cmd_drop_msgs(self, args: list[str]) -> None:
        options = dict(a.split("=", 1) for a in args)
        count = int(options.get("count", "1000000"))
        keep = []
        for src, dst, message in self.queue:
            if (
                count > 0
                and options.get("type", type(message).__name__) == type(message).__name__
                and int(options.get("from", src)) == src
                and int(options.get("to", dst)) == dst
            ):
                count -= 1
                self.lines.append(f"{src}->{dst} {message.describe()} DROPPED")
            else:
                keep.append((src, dst, message))
        self.queue = keep

    def cmd_process_syncs(self, args: list[str]) -> None:
        for node_id in [NodeId(int(a)) for a in args] if args else list(self.slots):
            self.complete_syncs(node_id)

    def cmd_stabilize(self, args: list[str]) -> None:
        self.stabilize([NodeId(int(a)) for a in args] if args else None)

    def cmd_partition(self, args: list[str]) -> None:
        groups = [[NodeId(int(x)) for x in a.strip("()").split(",") if x] for a in args]
        self.blocked = {(a, b) for g in groups for h in groups if g is not h for a in g for b in h}
        self.lines.append("partition " + " ".join(args))

    def cmd_heal(self, args: list[str]) -> None:
        self.blocked = set()

    def cmd_crash(self, args: list[str]) -> None:
        self.crash(NodeId(int(args[0])))

    def cmd_restart(self, args: list[str]) -> None:
        self.start(NodeId(int(args[0])))

    def cmd_status(self, args: list[str]) -> None:
        wanted = {NodeId(int(a)) for a in args}
        for view in self.views():
            if not wanted or view.node in wanted:
                self.lines.append(view.describe() + ("" if view.up else " (down)"))

    def cmd_log(self, args: list[str]) -> None:
        node = self.node(NodeId(int(args[0])))
        parts = [
            f"{e.term}/{e.index}{_kind(e.kind.value)}{_data(e.data)}" for e in node.log.entries
        ]
        prefix = f"{node.node_id}: snap={node.log.snapshot_term}/{node.log.snapshot_index}"
        self.lines.append(prefix + " log=[" + " ".join(parts) + "]")

    def cmd_kv(self, args: list[str]) -> None:
        node = self.node(NodeId(int(args[0])))
        machine = node.sm
        assert isinstance(machine, KeyValueStateMachine)
        items = " ".join(f"{k}={v!r}" for k, v in sorted(machine.values.items()))
        self.lines.append(f"{node.node_id}: applied={node.log.applied} {{{items}}}")

    def cmd_progress(self, args: list[str]) -> None:
        node = self.node(NodeId(int(args[0])))
        for peer, progress in sorted(node.progress.items()):
            self.lines.append(f"{node.node_id}->{peer}: {progress.describe()}")

    def cmd_transfer(self, args: list[str]) -> None:
        node_id = NodeId(int(args[0]))
        self.node(node_id).transfer_leadership(NodeId(int(args[1])))
        self.collect(node_id)

    def cmd_change_voters(self, args: list[str]) -> None:
        node_id = NodeId(int(args[0]))
        voters = tuple(NodeId(int(x)) for x in args[1].strip("()").split(",") if x)
        learners = ()
        if len(args) > 2:
            learners = tuple(NodeId(int(x)) for x in args[2].strip("()").split(",") if x)
        try:
            index = self.node(node_id).change_membership(voters, learners)
            self.lines.append(f"{node_id}: configuration change at {index}")
        except (NotLeader, ProposalRefused, LocalProtocolError) as error:
            self.lines.append(f"{node_id}: refused: {error}")
        self.collect(node_id)

    def cmd_snapshot(self, args: list[str]) -> None:
        node_id = NodeId(int(args[0]))
        self.node(node_id).take_snapshot()
        self.collect(node_id)


def _value(text: str) -> int | str | bool | float | None:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _ids(text: str) -> tuple[NodeId, ...]:
    return tuple(NodeId(int(x)) for x in text.strip("()").split(",") if x)


def _kind(kind: int) -> str:
    return {0: "", 1: " noop", 2: " conf"}[kind]


def _data(data: bytes) -> str:
    if not data:
        return ""
    try:
        text = data.decode()
        if text.isprintable() and len(text) <= 16:
            return f" {text}"
    except UnicodeDecodeError:
        pass
    return f" <{len(data)}B>"


__all__ = ["Cluster", "Disk", "GroupId"]
