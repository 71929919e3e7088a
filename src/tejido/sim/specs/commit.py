"""Two-phase commit in the simulator: workload, atomicity invariant, message counts.

Every fault kind is allowed: 2PC is a crash-recovery protocol with durable logs, and it
resends Prepare votes, decisions and decision requests over a lossy network. The
atomicity invariant (`tejido.check.commit`) reads each live process's durable decisions
after every event; a crashed node's decisions were read while it was up, and what it
recovers must agree with them (AC2).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tejido.algorithms.two_phase_commit import CommitConfig, TwoPhaseCommitNode
from tejido.check.commit import AtomicityChecker
from tejido.core.errors import InvariantViolation
from tejido.core.ids import NodeId, RequestId
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Process
from tejido.sim.counts import CountCase
from tejido.sim.network import Network
from tejido.sim.spec import Invariant, ProtocolSpec
from tejido.sim.trace import Trace
from tejido.sim.world import Simulator

__all__ = [
    "COUNTS",
    "SPECS",
    "Atomicity",
    "BlockingScenario",
    "CommitWorkload",
    "blocking_scenario",
    "measure_commit_messages",
    "timeline",
]


@dataclass(slots=True)
class CommitWorkload:
    """``commit key txn``: each transaction writes (and locks) one item at every participant;
    transaction ids are unique, so a history names each transaction once."""

    keys: Sequence[str] = ("x", "y")
    _counter: int = 0

    def next_operation(self, rng: random.Random) -> Operation:
        self._counter += 1
        return Operation("commit", self.keys[rng.randrange(len(self.keys))], self._counter)


class Atomicity(Invariant):
    """AC1/AC2 over every decision any coordinator or participant made durable."""

    name = "atomicity"

    def __init__(self) -> None:
        self.checker = AtomicityChecker()
        self.read: dict[NodeId, tuple[Process, int]] = {}

    def check(self, sim: Simulator) -> None:
        read = self.read
        for node, sim_node in sim.nodes.items():
            process = sim_node.process
            if not isinstance(process, TwoPhaseCommitNode):
                continue
            log = process.durable_log
            seen = read.get(node)
            if seen is not None and seen[0] is process and seen[1] == len(log):
                continue  # nothing new (the common case: checked after every event)
            upto = seen[1] if seen is not None and seen[0] is process else 0
            for txn, role, outcome in log[upto:]:
                self.checker.observe(txn, f"{role} {node}", outcome)
                self.checker.observe(txn, f"node {node}", outcome)
            read[node] = (process, len(log))


def measure_commit_messages(participants: int) -> tuple[int, dict[str, int]]:
    """Messages of one failure-free transaction with `participants` participants, in total
    and by kind (the no-vote probability is 0, so the transaction commits)."""
    sim = _quiet_cluster(participants + 1)
    ids = sim.node_ids
    trace = sim.trace
    if trace is None:
        raise InvariantViolation("count-trace", "the count cluster records no trace")
    sim.submit(ids[0], RequestId(1), Operation("commit", "x", 1), 0.0)
    sim.run_until(5.0)
    kinds: dict[str, int] = {}
    for record in trace.records:
        if record["kind"] == "send":
            kind = str(record["type"])
            kinds[kind] = kinds.get(kind, 0) + 1
    return sim.sent, kinds


def _quiet_cluster(nodes: int) -> Simulator:
    """`nodes` 2PC nodes on a reliable network with a fixed 1 ms latency, recording a trace."""
    ids = [NodeId(i) for i in range(1, nodes + 1)]
    network = Network(random.Random(0), {(a, b): 0.001 for a in ids for b in ids}, 0.0, 0, 0, 0)
    config = CommitConfig(no_vote_probability=0.0)
    sim = Simulator(
        lambda env: TwoPhaseCommitNode(env, config), ids, network, seed=0, trace=Trace()
    )
    sim.record({"t": 0.0, "kind": "meta", "protocol": "two-phase-commit", "nodes": list(ids)})
    sim.start()
    return sim


@dataclass(slots=True)
class BlockingScenario:
    """What `blocking_scenario` observed, for the test and the docs."""

    sim: Simulator
    outcomes: dict[int, str]
    """Client outcome per transaction id (``ok`` = committed, ``fail`` = aborted)."""
    blocked_during_outage: dict[int, tuple[str, int | None]]
    """Participant -> (its state for t1, the transaction holding item x) at 0.9 s."""


def blocking_scenario() -> BlockingScenario:
    """2PC's blocking case, deterministically, on 3 nodes (coordinator 1; participants 2, 3).

    - 0 ms: a client asks node 1 to commit t1 (writes x). Node 1 logs begin, sends Prepare.
    - 2 ms: both participants have voted yes (logged, locked x); node 1 crashes with power
      loss before their votes arrive. Participants 2 and 3 are now *blocked*: they may
      neither commit nor abort, and keep x locked, asking node 1 every 250 ms.
    - 100 ms: t2 (also writes x) at node 2: participant 3 votes no (x is locked) -> aborted.
    - 1 s: node 1 restarts, finds t1 logged as begun but undecided, aborts it (rule 8),
      and the participants release x.
    - 1.5 s: t3 (writes x) at node 3 commits.
    """
    sim = _quiet_cluster(3)
    outcomes: dict[int, str] = {}
    requests: dict[RequestId, int] = {}

    def on_reply(request: RequestId, outcome: Outcome) -> None:
        outcomes[requests[request]] = outcome.type

    sim.reply_handler = on_reply

    def submit(node: int, txn: int) -> None:
        requests[RequestId(txn)] = txn
        sim.submit(NodeId(node), RequestId(txn), Operation("commit", "x", txn), 0.0)

    blocked: dict[int, tuple[str, int | None]] = {}

    def look() -> None:
        for n in (2, 3):
            process = sim.nodes[NodeId(n)].process
            if not isinstance(process, TwoPhaseCommitNode):
                raise InvariantViolation("scenario", f"node {n} is down at 0.9 s")
            record = process.participating.get(1)
            blocked[n] = (record.state if record else "unknown", process.locks.get("x"))

    submit(1, 1)
    sim.call_at(0.002, lambda: sim.crash(NodeId(1), power_loss=True, torn_probability=0.0))
    sim.call_at(0.1, lambda: submit(2, 2))
    sim.call_at(0.9, look)
    sim.call_at(1.0, lambda: sim.restart(NodeId(1)))
    sim.call_at(1.5, lambda: submit(3, 3))
    sim.run_until(2.5)
    return BlockingScenario(sim, outcomes, blocked)


def timeline(records: Sequence[dict[str, object]]) -> list[str]:
    """A plain-text space-time listing of a 2PC trace (sends, crashes, restarts, events)."""
    lines: list[str] = []
    for r in records:
        at = f"{float(str(r['t'])) * 1000:8.1f} ms"
        kind = r["kind"]
        if kind == "send":
            lines.append(f"{at}  {r['src']} -> {r['dst']}  {r['msg']}")
        elif kind in ("crash", "restart"):
            lines.append(f"{at}  node {r['node']} {kind.upper()}")
        elif kind == "event":
            lines.append(f"{at}  node {r['node']}: {r['event']}")
        elif kind == "drop":
            lines.append(f"{at}  {r['src']} -> {r['dst']}  (lost: {r['reason']})")
    return lines


SPECS: list[ProtocolSpec] = [
    ProtocolSpec(
        name="two-phase-commit",
        summary="two-phase commit with durable logs and recovery (atomicity checked)",
        factory=lambda env: TwoPhaseCommitNode(env),
        workload=lambda: CommitWorkload(),
        invariants=lambda: [Atomicity()],
        min_nodes=2,
    )
]

COUNTS: list[CountCase] = [
    CountCase(
        algorithm="two-phase-commit",
        scenario="one transaction that commits; n = participants (the coordinator is not one)",
        counted="Prepare, Vote, Decision, Ack",
        formula="4n",
        expected=lambda n: 4 * n,
        measure=lambda n: measure_commit_messages(n)[0],
        sizes=(1, 2, 3, 5, 8),
    )
]
