"""The ``floor`` system of `tejido bench kv`: the hops of a replicated fsynced store.

The integration tests start the real 3 member processes and drive them through the
benchmark's own generator path (`Generators` and `kv_load` processes, half-second
windows), then check from the members' counters that every put was appended and
fdatasynced by all three, that concurrent puts share fdatasyncs (group commit), that
values read back are those written, and that a put or get needs a follower. Nothing is
asserted about speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tejido.bench.kv as bench_kv_module
from tejido.bench.kv import format_kv_table, parse_systems
from tejido.bench.kv_common import KEY_BYTES, KEY_SPACE, VALUE_BYTES, Cluster, kill_member
from tejido.bench.kv_floor import FloorAdapter, FloorClient, FloorError, connect, statuses
from tejido.bench.kv_floor_server import RECORD

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
RECORD_BYTES = RECORD.size + KEY_BYTES + VALUE_BYTES


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    adapter = FloorAdapter()
    started = adapter.start()
    try:
        yield started
    finally:
        adapter.stop(started)


def _settled(cluster: Cluster) -> list[dict[str, Any]]:
    """The members' counters once both followers hold every record the leader holds."""
    deadline = time.monotonic() + 10
    while True:
        found = statuses(cluster)
        if all(s["records"] == found[0]["records"] for s in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)  # a follower's acknowledgement of the last batch is on its way


def _check_files(cluster: Cluster, found: list[dict[str, Any]]) -> None:
    for i, status in enumerate(found):
        size = (cluster.path / f"member{i}.records").stat().st_size
        assert status["log_bytes"] == size == status["records"] * RECORD_BYTES, status


@pytest.mark.integration
def test_the_floor_takes_the_generator_load_and_fsyncs_every_put(cluster: Cluster) -> None:
    adapter = FloorAdapter()
    heard: list[str] = []
    settings = bench_kv_module._Settings((4,), 0.5, 0.1, None, heard.append)
    assert [s["role"] for s in statuses(cluster)] == ["leader", "follower", "follower"]
    assert [s["records"] for s in statuses(cluster)] == [0, 0, 0]

    bench_kv_module._preload(adapter, cluster, settings)
    preloaded = _settled(cluster)
    assert [s["records"] for s in preloaded] == [KEY_SPACE] * 3
    assert [s["keys"] for s in preloaded] == [KEY_SPACE] * 3
    assert all(1 <= s["fdatasyncs"] <= KEY_SPACE for s in preloaded), preloaded
    _check_files(cluster, preloaded)

    records: list[dict[str, Any]] = []
    for workload in ("put", "get"):
        records += bench_kv_module._point(adapter, cluster, settings, "floor", workload, 4, True)
    throughput = {r["workload"]: r for r in records if r["metric"] == "throughput"}
    assert set(throughput) == {"put c=4", "get c=4"}
    for record in throughput.values():
        assert record["value"] > 0, record
        assert record["errors"] == 0, record
        assert record["note"] == "hops only: no protocol, no log format, fixed leader"
        assert record["fsync"] is True
    after = _settled(cluster)
    puts = throughput["put c=4"]["value"] * 0.5  # counted in the window; more ran around it
    assert after[0]["records"] >= KEY_SPACE + puts
    assert all(s["records"] == after[0]["records"] for s in after)
    assert all(a["fdatasyncs"] > b["fdatasyncs"] for a, b in zip(after, preloaded, strict=True))
    assert after[0]["rounds"] > 0  # the gets went through heartbeat rounds
    assert after[0]["records"] == after[0]["committed"]
    _check_files(cluster, after)


@pytest.mark.integration
def test_values_read_back_are_those_written_and_concurrent_puts_share_fsyncs(
    cluster: Cluster,
) -> None:
    leader, follower = cluster.members[0], cluster.members[1]
    written = {f"key-{i:012d}".encode(): os.urandom(VALUE_BYTES) for i in range(256)}

    async def main() -> tuple[dict[bytes, bytes | None], bytes | None, str]:
        store = await connect(cluster.spec, [follower.client_address])  # still the leader
        keys = list(written)

        async def writer(part: list[bytes]) -> None:
            for key in part:
                await store.put(key, written[key])

        await asyncio.gather(*(writer(keys[i::32]) for i in range(32)))
        values = await asyncio.gather(*(store.get(key) for key in keys))
        missing = await store.get(b"never-written-00")
        await store.close()
        refused = ""
        other = FloorClient(follower.client_address)
        try:
            await other.put(keys[0], b"x")
        except FloorError as exc:
            refused = str(exc)
        await other.close()
        return dict(zip(keys, values, strict=True)), missing, refused

    before = statuses(cluster)[0]
    read, missing, refused = asyncio.run(main())
    after = _settled(cluster)
    assert read == written
    assert missing is None
    assert "not the leader" in refused
    assert after[0]["records"] - before["records"] == len(written)
    assert 1 <= after[0]["fdatasyncs"] - before["fdatasyncs"] < len(written)  # group commit
    _check_files(cluster, after)

    # A put and a get need one follower: with both gone, neither is answered.
    for member in cluster.members[1:]:
        kill_member(member)

    async def alone() -> list[bool]:
        store = FloorClient(leader.client_address)
        answered = []
        for call in (store.put(b"key-000000000001", b"y"), store.get(b"key-000000000001")):
            try:
                await asyncio.wait_for(call, 0.5)
                answered.append(True)
            except TimeoutError:
                answered.append(False)
        await store.close()
        return answered

    assert asyncio.run(alone()) == [False, False]


@pytest.mark.integration
def test_bench_kv_against_floor_prints_its_rows_without_a_failover(tmp_path: Path) -> None:
    out = tmp_path / "kv.json"
    done = subprocess.run(
        [
            *TEJIDO, "bench", "kv", "--systems", "none", "--against", "floor",
            "--clients", "2", "--duration", "0.5", "--warmup", "0.1", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(out.read_text())
    assert {(r["workload"], r["metric"]) for r in records} == {
        (w, m)
        for w in ("put c=2", "get c=2")
        for m in ("throughput", "p50", "p99", "server cpu per 1000 ops")
    }
    assert all(r["system"] == "floor" and r["value"] > 0 for r in records)
    assert "floor: no failover point" in done.stderr
    assert any(line.startswith("floor   put c=2") for line in done.stdout.splitlines())


def test_floor_is_chosen_by_name_and_its_rows_get_ratio_columns() -> None:
    assert parse_systems("floor,pysyncobj") == ["floor", "pysyncobj"]

    def ops(system: str, value: float) -> dict[str, object]:
        return {"system": system, "workload": "put c=1", "metric": "throughput",
                "value": value, "unit": "ops/s"}  # fmt: skip

    table = format_kv_table([ops("floor", 2400.0), ops("pysyncobj", 800.0)]).splitlines()
    floor = next(line for line in table if line.startswith("floor"))
    assert floor.split()[-2:] == ["n/a", "3.00"]
