"""The replicated-store benchmark's report: one table, and the Store issue's targets.

`format_kv_table` prints one row per system and point (throughput, p50, p99, server CPU
per 1,000 ops) with the throughput as a ratio to ``etcd-leader`` and to ``pysyncobj`` at
the same point, and one row per failover. `target_lines` checks tejido against the
issue's Performance targets: at every concurrency, put and get throughput at least
etcd-leader's and at least 2x PySyncObj's; at 256 clients at least 1.5x etcd's (spread);
p99 at 64 clients no worse than etcd's; failover (kill to first write) at most 2 s.
"""

from __future__ import annotations

from collections.abc import Sequence

from tejido.bench.kv_common import (
    ETCD,
    ETCD_LEADER,
    FAILOVER,
    FAILOVER_METRIC,
    PYSYNCOBJ,
    TEJIDO,
)
from tejido.bench.records import Record

__all__ = [
    "MS",
    "OPS_S",
    "P50",
    "P99",
    "SECONDS",
    "SERVER_CPU",
    "THROUGHPUT",
    "format_kv_table",
    "target_lines",
]

THROUGHPUT, OPS_S = "throughput", "ops/s"
P50, P99, MS = "p50", "p99", "ms"
SERVER_CPU, SECONDS = "server cpu per 1000 ops", "s"
_RATIO_TO = (ETCD_LEADER, PYSYNCOBJ)


def _value(records: Sequence[Record], system: str, workload: str, metric: str) -> float | None:
    for record in records:
        if (record["system"], record["workload"], record["metric"]) == (system, workload, metric):
            value = record["value"]
            return float(value) if isinstance(value, int | float) else None
    return None


def format_kv_table(records: Sequence[Record]) -> str:
    """One row per system and point, with throughput ratios to etcd-leader and pysyncobj."""
    headers = [
        "system", "workload", "ops/s", "p50 ms", "p99 ms", "server cpu s/1000 ops",
        *(f"x {other}" for other in _RATIO_TO),
    ]  # fmt: skip
    rows: list[list[str]] = []
    for record in records:
        system, workload = str(record["system"]), str(record["workload"])
        if record["metric"] == FAILOVER_METRIC:
            value = record["value"]
            shown = f"{value:.3f} s" if isinstance(value, float) else "none"
            rows.append([system, workload, f"first write after leader kill: {shown}"])
            continue
        if record["metric"] != THROUGHPUT:
            continue

        def cell(metric: str, digits: int) -> str:
            found = _value(records, system, workload, metric)  # noqa: B023 (used at once)
            return "n/a" if found is None else f"{found:,.{digits}f}"

        mine = _value(records, system, workload, THROUGHPUT) or 0.0
        ratios = []
        for other in _RATIO_TO:
            theirs = _value(records, other, workload, THROUGHPUT)
            ratios.append("n/a" if not theirs else f"{mine / theirs:.2f}")
        rows.append(
            [
                system, workload, f"{mine:,.0f}", cell(P50, 1), cell(P99, 1),
                cell(SERVER_CPU, 3), *ratios,
            ]
        )  # fmt: skip
    widths = [
        max(len(h), *(len(r[i]) for r in rows if len(r) > 3 and i < len(r)), 0)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        if len(row) == 3:
            lines.append(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}")
            continue
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


#: The Store issue's targets for tejido.
TARGET_FAILOVER_S = 2.0
TARGET_VS_PYSYNCOBJ = 2.0
TARGET_VS_ETCD_AT_256 = 1.5


def target_lines(records: Sequence[Record]) -> list[str]:
    """The issue's targets for tejido, each PASS, FAIL or n/a with the numbers behind it."""
    lines: list[str] = []
    workloads = sorted(
        {
            str(r["workload"])
            for r in records
            if r["system"] == TEJIDO and r["metric"] == THROUGHPUT
        },
        key=lambda w: (int(w.split("=")[1]), w),
    )

    def check(title: str, mine: float | None, theirs: float | None, factor: float) -> None:
        if mine is None or not theirs:
            lines.append(f"target: {title}: n/a (not measured)")
            return
        ratio = mine / theirs
        verdict = "PASS" if ratio >= factor else "FAIL"
        lines.append(f"target: {title}: {verdict} ({ratio:.2f} x: {mine:,.0f} vs {theirs:,.0f})")

    def ops(system: str, workload: str) -> float | None:
        return _value(records, system, workload, THROUGHPUT)

    if not workloads:
        return ["targets: n/a (tejido not measured)"]
    for workload in workloads:
        mine = ops(TEJIDO, workload)
        check(f"tejido {workload} >= etcd-leader", mine, ops(ETCD_LEADER, workload), 1.0)
        check(
            f"tejido {workload} >= {TARGET_VS_PYSYNCOBJ:g} x pysyncobj",
            mine,
            ops(PYSYNCOBJ, workload),
            TARGET_VS_PYSYNCOBJ,
        )
        if workload.endswith("c=256"):
            check(
                f"tejido {workload} >= {TARGET_VS_ETCD_AT_256:g} x etcd",
                mine,
                ops(ETCD, workload),
                TARGET_VS_ETCD_AT_256,
            )
        if workload.endswith("c=64"):
            mine_p99, etcd_p99 = (_value(records, s, workload, P99) for s in (TEJIDO, ETCD))
            if mine_p99 is None or etcd_p99 is None:
                lines.append(f"target: tejido {workload} p99 <= etcd's: n/a (not measured)")
            else:
                verdict = "PASS" if mine_p99 <= etcd_p99 else "FAIL"
                lines.append(
                    f"target: tejido {workload} p99 <= etcd's: {verdict} "
                    f"({mine_p99:.1f} vs {etcd_p99:.1f} ms)"
                )
    failover = _value(records, TEJIDO, FAILOVER, FAILOVER_METRIC)
    title = f"target: tejido failover <= {TARGET_FAILOVER_S:g} s"
    if failover is None:
        lines.append(f"{title}: n/a (not measured, or no write succeeded)")
    else:
        etcd = _value(records, ETCD, FAILOVER, FAILOVER_METRIC)
        beside = "" if etcd is None else f"; etcd {etcd:.3f} s"
        verdict = "PASS" if failover <= TARGET_FAILOVER_S else "FAIL"
        lines.append(f"{title}: {verdict} ({failover:.3f} s{beside})")
    return lines
