"""`tejido bench actors`: the records it produces (names, units, positive measurements) and
its option errors. Nothing here asserts speed."""

from __future__ import annotations

import pytest

from tejido.bench.actors import ActorBenchError, bench_actors, parse_against, target_lines


def test_parse_against_names_and_errors() -> None:
    assert parse_against("pykka, thespian,pykka") == ("pykka", "thespian")
    assert parse_against("none") == ()
    with pytest.raises(ActorBenchError, match="unknown system 'akka'"):
        parse_against("akka")


def test_a_tiny_run_produces_every_record() -> None:
    lines: list[str] = []
    records = bench_actors(
        ("pykka", "thespian", "ray"),
        repeats=1,
        messages=2000,
        asks=200,
        idle=200,
        spawn=500,
        remote=False,
        progress=lines.append,
    )
    throughput = {(r["system"], r["workload"]): r for r in records if r["metric"] == "throughput"}
    assert set(throughput) == {
        (system, workload)
        for system in ("tejido", "pykka", "thespian")
        for workload in ("local tell", "local ask")
    }
    for record in throughput.values():
        assert record["unit"] == "msg/s"
        assert isinstance(record["value"], float)
        assert record["value"] > 0
    [memory] = [r for r in records if r["metric"] == "memory"]
    assert isinstance(memory["value"], float)
    assert 0 < memory["value"] < 100_000
    [spawn] = [r for r in records if r["metric"] == "spawn_time"]
    assert spawn["workload"] == "spawn 500"
    assert any(line.startswith("ray left out") for line in lines)
    targets = target_lines(records)
    assert len(targets) == 2
    assert all(("PASS" in line) or ("FAIL" in line) for line in targets)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ActorBenchError, match="must be >= 1"):
        bench_actors((), repeats=0)


@pytest.mark.integration
def test_a_tiny_remote_run_measures_tejido_and_the_asyncio_floor() -> None:
    records = bench_actors(
        (),
        repeats=1,
        messages=100,
        asks=20,
        idle=10,
        spawn=10,
        remote_asks=50,
        remote_messages=200,
    )
    throughput = {(r["system"], r["workload"]): r for r in records if r["metric"] == "throughput"}
    for key in (
        ("tejido", "remote ask"),
        ("tejido", "remote tell"),
        ("asyncio-echo", "remote ask"),
        ("asyncio-echo-await", "remote ask"),
    ):
        assert key in throughput
        assert isinstance(throughput[key]["value"], float)
        assert throughput[key]["value"] > 0
    cpu = {(r["system"], r["metric"]) for r in records if r["unit"] == "us/msg"}
    assert ("tejido", "client_cpu") in cpu
    assert ("asyncio-echo", "server_cpu") in cpu
    assert ("asyncio-echo-await", "client_cpu") in cpu
    lines = target_lines(records)
    assert any("remote ask >= 0.8 x asyncio-echo:" in line for line in lines)
    assert any(line.startswith("floor: tejido remote ask / asyncio-echo-await") for line in lines)
    assert any("thespian not measured" in line for line in lines)
