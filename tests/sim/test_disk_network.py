"""The simulated disk keeps exactly the storage contract's promises; partitions have the
shapes they claim."""

from __future__ import annotations

import random

import pytest

from tejido.core import LogAppend, LogTruncate, NodeId, Put
from tejido.sim.disk import SimDisk
from tejido.sim.network import Partition


def test_synced_writes_survive_power_loss() -> None:
    disk = SimDisk()
    disk.write(LogAppend((b"a", b"b")))
    disk.write(Put("term", b"3"))
    disk.complete_sync(disk.sync_point())
    disk.write(LogAppend((b"c",)))
    for seed in range(50):
        clone = SimDisk()
        clone.write(LogAppend((b"a", b"b")))
        clone.write(Put("term", b"3"))
        clone.complete_sync(clone.sync_point())
        clone.write(LogAppend((b"c",)))
        clone.crash(random.Random(seed), power_loss=True, torn_probability=1.0)
        recovered = clone.recover()
        assert recovered.records[:2] == (b"a", b"b")
        assert recovered.state["term"] == b"3"


def test_process_crash_keeps_every_write() -> None:
    disk = SimDisk()
    disk.write(LogAppend((b"a",)))
    disk.write(Put("k", b"v"))
    report = disk.crash(random.Random(1), power_loss=False, torn_probability=1.0)
    assert report.lost == 0
    assert disk.recover().records == (b"a",)
    assert disk.recover().state == {"k": b"v"}


def test_power_loss_keeps_a_prefix_of_the_log_and_of_each_key() -> None:
    seen_logs: set[tuple[bytes, ...]] = set()
    seen_torn = False
    for seed in range(300):
        disk = SimDisk()
        disk.write(LogAppend((b"1",)))
        disk.write(Put("k", b"v1"))
        disk.write(LogAppend((b"2", b"3", b"4")))
        disk.write(Put("k", b"v2"))
        disk.write(LogTruncate(1))
        disk.write(LogAppend((b"5",)))
        report = disk.crash(random.Random(seed), power_loss=True, torn_probability=0.5)
        recovered = disk.recover()
        seen_logs.add(recovered.records)
        seen_torn |= report.torn
        assert recovered.records in {
            (),
            (b"1",),
            (b"1", b"2"),
            (b"1", b"2", b"3"),
            (b"1", b"2", b"3", b"4"),
            (b"1", b"5"),
        }
        assert recovered.state.get("k") in (None, b"v1", b"v2")
        if report.torn:
            assert recovered.records in {(b"1", b"2"), (b"1", b"2", b"3")}
    assert seen_torn
    assert len(seen_logs) == 6  # every allowed outcome shows up


def test_crash_drops_pending_sync_coverage() -> None:
    disk = SimDisk()
    disk.write(Put("a", b"1"))
    point = disk.sync_point()
    disk.crash(random.Random(3), power_loss=True, torn_probability=0.0)
    disk.complete_sync(point)  # a stale completion after the crash changes nothing
    assert disk.unsynced == 0


NODES = [NodeId(i) for i in range(1, 6)]


@pytest.mark.parametrize("seed", range(40))
def test_partition_shapes(seed: int) -> None:
    part = Partition.draw(random.Random(seed), NODES)
    blocked = part.blocked
    for a, b in blocked:
        assert a != b
    kind = part.desc.split()[0]
    if kind in ("split", "majority", "isolate"):
        assert all((b, a) in blocked for a, b in blocked)  # symmetric
    if kind == "one-way":
        assert len(blocked) == 1
    if kind == "isolate":
        lone = NodeId(int(part.desc.split()[1]))
        assert {(lone, n) for n in NODES if n != lone} <= blocked
        assert len(blocked) == 2 * (len(NODES) - 1)
    if kind == "bridge":
        bridge = NodeId(int(part.desc.split()[1].rstrip(":")))
        assert not any(bridge in link for link in blocked)  # the bridge talks to everyone
        assert blocked  # but the two halves cannot talk to each other
    if kind == "majority":
        reachable = {n: {m for m in NODES if (n, m) not in blocked} for n in NODES}
        assert max(len(r) for r in reachable.values()) >= 3
