"""The simulator's mechanics: clocks, timers, pauses, crashes, syncs, hooks, budgets."""

from __future__ import annotations

import random
from typing import ClassVar

import pytest

from tejido.core import Env, Message, NodeId, Process, Recovered, TimerName
from tejido.sim.network import Network, Partition
from tejido.sim.trace import Trace
from tejido.sim.world import Simulator


class Hello(Message, frozen=True):
    n: int


class Recorder(Process):
    """Logs what happens to it (into a shared list) and does what tests tell it to."""

    log: ClassVar[list[tuple[float, int, str]]] = []

    def on_start(self, recovered: Recovered) -> None:
        Recorder.log.append((self.now(), self.node_id, f"start {len(recovered.state)}"))

    def on_message(self, src: NodeId, message: Message) -> None:
        assert isinstance(message, Hello)
        Recorder.log.append((self.now(), self.node_id, f"got {message.n} from {src}"))

    def on_timer(self, name: TimerName) -> None:
        Recorder.log.append((self.now(), self.node_id, f"timer {name}"))

    def on_durable(self, token: int) -> None:
        Recorder.log.append((self.now(), self.node_id, f"durable {token}"))


def make_sim(nodes: int = 2, **kwargs: object) -> Simulator:
    Recorder.log = []
    ids = [NodeId(i) for i in range(1, nodes + 1)]
    network = Network(
        random.Random(1), {(a, b): 0.01 for a in ids for b in ids}, 0.0, 0.0, 0.0, 0.0
    )
    return Simulator(lambda env: Recorder(env), ids, network, seed=1, trace=Trace(), **kwargs)  # type: ignore[arg-type]


def process(sim: Simulator, n: int) -> Recorder:
    p = sim.nodes[NodeId(n)].process
    assert isinstance(p, Recorder)
    return p


def test_timers_run_on_the_nodes_own_drifting_clock() -> None:
    sim = make_sim(rates={NodeId(1): 0.25, NodeId(2): -0.2}, offsets={NodeId(2): 100.0})
    sim.start()
    process(sim, 1).set_timer("t", 1.0)
    sim._flush(sim.nodes[NodeId(1)])
    process(sim, 2).set_timer("t", 1.0)
    sim._flush(sim.nodes[NodeId(2)])
    sim.run_until(5.0)
    fired = [(t, n) for t, n, what in Recorder.log if what == "timer t"]
    # local time = offset + t * (1 + rate): both timers fire when their own clock read +1 s
    assert fired[0] == (pytest.approx(1.0), 1)
    assert fired[1] == (pytest.approx(101.0), 2)
    assert sim.now == 5.0


def test_a_replaced_or_cancelled_timer_does_not_fire() -> None:
    sim = make_sim()
    sim.start()
    p = process(sim, 1)
    p.set_timer("a", 1.0)
    p.set_timer("a", 2.0)  # replaces
    p.set_timer("b", 1.0)
    p.cancel_timer("b")
    sim._flush(sim.nodes[NodeId(1)])
    sim.run_until(10.0)
    assert [(round(t, 6), what) for t, _, what in Recorder.log if what.startswith("timer")] == [
        (2.0, "timer a")
    ]


def test_a_paused_node_processes_its_backlog_in_order_on_resume() -> None:
    sim = make_sim()
    sim.start()
    sim.pause(NodeId(2))
    for i in range(3):
        process(sim, 1).send(NodeId(2), Hello(i))
    sim._flush(sim.nodes[NodeId(1)])
    sim.run_until(1.0)
    assert not [e for e in Recorder.log if e[2].startswith("got")]
    sim.resume(NodeId(2))
    assert [what for _, _, what in Recorder.log if what.startswith("got")] == [
        "got 0 from 1",
        "got 1 from 1",
        "got 2 from 1",
    ]


def test_a_crash_loses_in_flight_messages_timers_and_syncs() -> None:
    sim = make_sim()
    sim.start()
    p2 = process(sim, 2)
    p2.set_timer("t", 0.5)
    p2.put("k", b"v")
    p2.sync()
    sim._flush(sim.nodes[NodeId(2)])
    process(sim, 1).send(NodeId(2), Hello(1))
    sim._flush(sim.nodes[NodeId(1)])
    sim.crash(NodeId(2), power_loss=True, torn_probability=0.0)
    sim.run_until(1.0)
    sim.restart(NodeId(2))
    sim.run_until(2.0)
    node2 = [what for _, n, what in Recorder.log if n == 2]
    assert "timer t" not in node2
    assert not any(w.startswith(("got", "durable")) for w in node2)
    drops = [r for r in sim.trace.records if r["kind"] == "drop"]  # type: ignore[union-attr]
    assert [d["reason"] for d in drops] == ["crashed"]


def test_partitions_drop_messages_in_flight_and_new_ones() -> None:
    sim = make_sim()
    sim.start()
    process(sim, 1).send(NodeId(2), Hello(1))
    sim._flush(sim.nodes[NodeId(1)])
    sim.partition(Partition.split([NodeId(1)], [NodeId(2)], "split"))
    process(sim, 1).send(NodeId(2), Hello(2))
    sim._flush(sim.nodes[NodeId(1)])
    sim.run_until(1.0)
    sim.heal()
    process(sim, 1).send(NodeId(2), Hello(3))
    sim._flush(sim.nodes[NodeId(1)])
    sim.run_until(2.0)
    assert [w for _, _, w in Recorder.log if w.startswith("got")] == ["got 3 from 1"]


def test_sync_completions_arrive_in_order_even_when_slow() -> None:
    sim = make_sim()
    sim.slow_fsync_s = 0.5
    sim.slow_fsync_probability = 1.0
    sim.start()
    p = process(sim, 1)
    p.put("a", b"1")
    p.sync()
    sim._flush(sim.nodes[NodeId(1)])
    sim.slow_fsync_probability = 0.0  # the next fsync is fast but must wait for the first
    p.put("a", b"2")
    p.sync()
    sim._flush(sim.nodes[NodeId(1)])
    sim.run_until(2.0)
    durable = [(t, w) for t, n, w in Recorder.log if w.startswith("durable")]
    assert [w for _, w in durable] == ["durable 1", "durable 2"]
    assert durable[1][0] >= durable[0][0] >= 0.5


def test_after_event_hook_runs_after_every_event() -> None:
    sim = make_sim(nodes=3)
    calls: list[int] = []
    sim.after_event = lambda: calls.append(sim.events)
    sim.start()
    for n in (1, 2, 3):
        process(sim, n).broadcast(Hello(n))
        sim._flush(sim.nodes[NodeId(n)])
    sim.run_until(1.0)
    assert sim.events == 6
    assert calls == list(range(1, 7))


def test_messages_are_stamped_with_lamport_and_vector_clocks() -> None:
    sim = make_sim()
    sim.start()
    process(sim, 1).send(NodeId(2), Hello(1))
    sim._flush(sim.nodes[NodeId(1)])
    sim.run_until(1.0)
    process(sim, 2).send(NodeId(1), Hello(2))
    sim._flush(sim.nodes[NodeId(2)])
    sim.run_until(2.0)
    records = sim.trace.records  # type: ignore[union-attr]
    sends = [r for r in records if r["kind"] == "send"]
    delivers = [r for r in records if r["kind"] == "deliver"]
    assert [(s["lamport"], s["vc"]) for s in sends] == [(1, {"1": 1}), (3, {"1": 1, "2": 2})]
    assert [(d["lamport"], d["vc"]) for d in delivers] == [
        (2, {"1": 1, "2": 1}),
        (4, {"1": 2, "2": 2}),
    ]


def test_env_gives_each_incarnation_a_fresh_random_stream() -> None:
    draws: dict[tuple[int, int], float] = {}

    class Drawer(Process):
        def on_start(self, recovered: Recovered) -> None:
            draws[(self.node_id, len(draws))] = self.env.rng.random()

    ids = [NodeId(1)]
    sim = Simulator(
        lambda env: Drawer(env), ids, Network(random.Random(1), {}, 0.0, 0.0, 0.0, 0.0), seed=9
    )
    sim.start()
    sim.crash(NodeId(1), power_loss=False, torn_probability=0.0)
    sim.restart(NodeId(1))
    first, second = draws.values()
    assert first != second


def test_env_exposes_members_and_peers() -> None:
    env = Env(NodeId(2), (NodeId(1), NodeId(2), NodeId(3)), random.Random(0), lambda: 0.0)
    assert env.peers == (NodeId(1), NodeId(3))
