"""`tejido bench kv`: the records it writes and the pieces it is built from.

The integration test runs the real harness on PySyncObj (3 member processes, separate
load generator processes, a leader killed with SIGKILL) with 1-second windows and checks
the record names, units and that every number is a positive measurement; it asserts
nothing about speed. etcd and ZooKeeper are not installed by ``make test`` (they are
Debian packages: ``make bench-deps``), so they are not run here; PySyncObj is a pip
dependency of the ``test`` extra, so a missing PySyncObj fails this test instead of
skipping it. The unit tests cover option parsing, the key format and the table.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tejido.bench.kv as bench_kv_module
from tejido.bench import kv_load
from tejido.bench.kv import KvBenchError, format_kv_table, parse_clients, parse_systems
from tejido.bench.kv_common import KEY_BYTES, KEY_SPACE, key_for
from tejido.bench.kv_tejido import unavailable

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]
UNITS = {
    "throughput": "ops/s",
    "p50": "ms",
    "p99": "ms",
    "server cpu per 1000 ops": "s",
    "first write after leader kill": "s",
}


@pytest.mark.integration
def test_bench_kv_on_pysyncobj_writes_named_positive_records(tmp_path: Path) -> None:
    out = tmp_path / "kv.json"
    done = subprocess.run(
        [
            *TEJIDO, "bench", "kv", "--systems", "none", "--against", "pysyncobj",
            "--clients", "1,4", "--duration", "1", "--warmup", "0.2", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(out.read_text())
    points = {(r["workload"], r["metric"]) for r in records}
    for workload in ("put c=1", "get c=1", "put c=4", "get c=4"):
        for metric in ("throughput", "p50", "p99", "server cpu per 1000 ops"):
            assert (workload, metric) in points, (workload, metric)
    assert ("failover", "first write after leader kill") in points
    for record in records:
        assert record["system"] == "pysyncobj"
        assert record["unit"] == UNITS[record["metric"]], record
        assert isinstance(record["value"], float), record
        assert record["value"] > 0, record
    throughput = [r for r in records if r["metric"] == "throughput"]
    for record in throughput:
        assert record["fsync"] is False  # recorded beside PySyncObj's numbers
        assert record["clients"] == int(record["workload"].split("=")[1])
        assert record["errors"] >= 0
        assert record["client_cpu_per_1000_ops_s"] > 0
    p50 = {r["workload"]: r["value"] for r in records if r["metric"] == "p50"}
    p99 = {r["workload"]: r["value"] for r in records if r["metric"] == "p99"}
    assert all(p50[w] <= p99[w] for w in p50)
    failover = next(r for r in records if r["workload"] == "failover")
    assert failover["killed_member"] in (0, 1, 2)
    assert "x etcd-leader" in done.stdout  # the table with its ratio columns
    assert "first write after leader kill" in done.stdout


def test_parse_systems_brings_etcd_leader_with_etcd_and_rejects_unknown_names() -> None:
    assert parse_systems("tejido, etcd,pysyncobj") == ["tejido", "etcd", "pysyncobj"]
    assert parse_systems("etcd-leader,etcd") == ["etcd"]
    assert parse_systems("none") == []
    with pytest.raises(KvBenchError, match="unknown system 'redis'"):
        parse_systems("etcd,redis")


def test_parse_clients_takes_positive_counts_only() -> None:
    assert parse_clients("1,16,64,256") == (1, 16, 64, 256)
    for bad in ("0", "1,x", "", "-4"):
        with pytest.raises(KvBenchError, match="--clients"):
            parse_clients(bad)


def test_keys_are_sixteen_bytes_and_wrap_around_the_key_space() -> None:
    assert {len(key_for(i)) for i in range(0, 5 * KEY_SPACE, 7)} == {KEY_BYTES}
    assert key_for(3) == key_for(3 + KEY_SPACE)
    assert len({key_for(i) for i in range(KEY_SPACE)}) == KEY_SPACE


def test_the_table_shows_ratios_to_etcd_leader_and_pysyncobj() -> None:
    def point(system: str, ops: float) -> list[dict[str, object]]:
        common = {"system": system, "workload": "put c=16"}
        return [
            {**common, "metric": "throughput", "value": ops, "unit": "ops/s"},
            {**common, "metric": "p99", "value": 12.5, "unit": "ms"},
        ]

    records = [*point("tejido", 3000.0), *point("etcd-leader", 1500.0), *point("pysyncobj", 600.0)]
    records.append(
        {"system": "etcd", "workload": "failover", "metric": "first write after leader kill",
         "value": 1.25, "unit": "s"}
    )  # fmt: skip
    table = format_kv_table(records).splitlines()
    tejido = next(line for line in table if line.startswith("tejido"))
    assert tejido.split()[-2:] == ["2.00", "5.00"]
    assert "12.5" in tejido
    assert any("failover" in line and "1.250 s" in line for line in table)


def test_tejido_is_left_out_with_a_clear_reason_until_its_client_exists() -> None:
    reason = unavailable()
    try:
        from tejido.kv import Client  # noqa: F401
    except ImportError:
        assert reason is not None
        assert reason.startswith("tejido store not available yet")
    else:
        assert reason is None


def test_targets_compare_tejido_with_the_anchors_point_by_point() -> None:
    def ops(system: str, workload: str, value: float) -> dict[str, object]:
        return {
            "system": system, "workload": workload, "metric": "throughput",
            "value": value, "unit": "ops/s",
        }  # fmt: skip

    records = [
        ops("tejido", "put c=256", 12_000.0),
        ops("etcd-leader", "put c=256", 11_000.0),
        ops("etcd", "put c=256", 9_000.0),
        ops("pysyncobj", "put c=256", 5_000.0),
        {"system": "tejido", "workload": "failover", "metric": "first write after leader kill",
         "value": 2.5, "unit": "s"},
    ]  # fmt: skip
    lines = bench_kv_module.target_lines(records)
    assert any("put c=256 >= etcd-leader: PASS (1.09 x" in line for line in lines)
    assert any("put c=256 >= 2 x pysyncobj: PASS (2.40 x" in line for line in lines)
    assert any("put c=256 >= 1.5 x etcd: FAIL (1.33 x" in line for line in lines)
    assert any("failover <= 2 s: FAIL (2.500 s" in line for line in lines)
    assert bench_kv_module.target_lines([]) == ["targets: n/a (tejido not measured)"]


class _BrokenAdapter:
    system = "pysyncobj"
    module = "tejido.bench.kv_syncobj"
    notes: dict[str, object] = {}  # noqa: RUF012 (a stand-in, never mutated)

    def unavailable(self) -> str | None:
        return None

    def start(self) -> object:
        raise KvBenchError("member 0 exited with status 1 while starting")


class _MissingAdapter(_BrokenAdapter):
    system = "zookeeper"

    def unavailable(self) -> str | None:
        return "no ZooKeeper here"


def test_a_system_that_fails_or_is_missing_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []

    def adapter_for(system: str) -> object:
        made.append(system)
        return _BrokenAdapter() if system == "pysyncobj" else _MissingAdapter()

    monkeypatch.setattr(bench_kv_module, "adapter_for", adapter_for)
    heard: list[str] = []
    failures: list[str] = []
    records = bench_kv_module.bench_kv(
        ["pysyncobj", "zookeeper"], progress=heard.append, failures=failures
    )
    assert records == []
    assert made == ["pysyncobj", "zookeeper"]
    assert failures == ["pysyncobj: member 0 exited with status 1 while starting"]
    assert "zookeeper left out: no ZooKeeper here" in heard


def test_the_etcd_messages_compile_and_carry_etcds_field_numbers(tmp_path: Path) -> None:
    from tejido.bench.kv_etcd import compile_proto, load_proto

    compile_proto(tmp_path)
    pb = load_proto(str(tmp_path))
    # A protobuf tag is (field number << 3) | wire type; 2 = length-delimited, 0 = varint.
    put = pb.PutRequest(key=b"k", value=b"v").SerializeToString()
    assert put == bytes([1 << 3 | 2, 1]) + b"k" + bytes([2 << 3 | 2, 1]) + b"v"
    serializable = pb.RangeRequest(key=b"k", serializable=True).SerializeToString()
    assert serializable.endswith(bytes([7 << 3 | 0, 1]))  # etcd: serializable = 7
    status = pb.StatusResponse.FromString(
        bytes([4 << 3 | 0, 9]) + bytes([1 << 3 | 2, 2, 2 << 3, 5])
    )
    assert (status.leader, status.header.member_id) == (9, 5)
    reply = pb.RangeResponse.FromString(
        bytes([2 << 3 | 2, 3, 5 << 3 | 2, 1]) + b"x"
    )  # kvs[0].value = b"x"
    assert reply.kvs[0].value == b"x"


class _HangsOnce:
    """A store whose first put is never answered; `enough` is set at the fourth put."""

    def __init__(self) -> None:
        self.calls = 0
        self.enough = asyncio.Event()

    async def put(self, key: bytes, value: bytes) -> None:
        self.calls += 1
        if self.calls == 1:
            await asyncio.Event().wait()
        if self.calls >= 4:
            self.enough.set()
        await asyncio.sleep(0)  # a reply comes in a later loop turn, as from a socket

    async def get(self, key: bytes) -> bytes | None:
        return None

    async def close(self) -> None:
        pass


def _put_run() -> kv_load._Run:
    plan = kv_load.Plan(
        module="none", spec={}, routes=[["a"]], mode="put", clients=1, duration_s=60.0
    )
    return kv_load._Run(plan, time.time())


def test_a_request_past_the_timeout_counts_as_an_error_and_the_client_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kv_load, "REQUEST_TIMEOUT_S", 0.05)
    monkeypatch.setattr(kv_load, "_SWEEP_S", 0.01)

    async def main() -> tuple[kv_load._Run, _HangsOnce]:
        store, run = _HangsOnce(), _put_run()
        run.start_sweeping()
        task = asyncio.create_task(kv_load._client(run, 0, store))
        await asyncio.wait_for(store.enough.wait(), 10)
        run.stop = True
        await asyncio.wait_for(task, 10)  # ends by itself: the timeout was not a stop
        run.stop_sweeping()
        return run, store

    run, store = asyncio.run(main())
    assert run.result.errors == 1
    assert "no answer within" in run.result.first_error
    assert run.result.ops == store.calls - 1
    assert run.inflight == {}
    assert run.expired == set()


def test_cancelling_a_client_that_waits_within_its_timeout_stops_it() -> None:
    async def main() -> kv_load._Run:
        store, run = _HangsOnce(), _put_run()
        run.start_sweeping()
        task = asyncio.create_task(kv_load._client(run, 0, store))
        await asyncio.wait_for(_until(lambda: 0 in run.inflight), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        run.stop_sweeping()
        return run

    run = asyncio.run(main())
    assert run.result.errors == 0
    assert run.inflight == {}


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0)  # yield to the client task until it has issued its request
