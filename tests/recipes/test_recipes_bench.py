"""`tejido.bench.recipes` runs end to end on a small scale: tejido's fenced lock and, when
Debian's etcd is installed, etcd's lock service over gRPC, with the same record names side
by side (the numbers themselves are not judged: the machine is shared)."""

from __future__ import annotations

import shutil

import pytest

from tejido.bench.recipes import bench_recipes

SIDE_BY_SIDE = {
    ("uncontended lock", "acquire+release (lease reused)"),
    ("uncontended lock", "grant+acquire+release+revoke"),
    ("contended hand-off", "median"),
    ("contended hand-off", "p90"),
}


@pytest.mark.integration
def test_the_lock_benchmark_measures_tejido_and_etcd_side_by_side() -> None:
    with_etcd = shutil.which("etcd") is not None and shutil.which("etcdctl") is not None
    records = bench_recipes(against_etcd=with_etcd, locks=10, handoffs=3, cli_runs=0)
    systems = {"tejido", "etcd"} if with_etcd else {"tejido"}
    assert {str(r["system"]) for r in records} == systems
    for system in systems:
        mine = {(r["workload"], r["metric"]): r for r in records if r["system"] == system}
        assert set(mine) == SIDE_BY_SIDE
        for record in mine.values():
            assert isinstance(record["value"], float)
            assert record["value"] > 0
        assert mine[("contended hand-off", "median")]["n"] == 3
        assert mine[("uncontended lock", "acquire+release (lease reused)")]["unit"] == "ops/s"
