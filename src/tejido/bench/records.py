"""The common record shape of every benchmark, a readable table, and the JSON file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

__all__ = ["Record", "print_table", "write_json"]

Record = dict[str, object]
"""``{"system", "workload", "metric", "value", "unit"}`` plus any extra fields."""


def format_table(records: Sequence[Record]) -> str:
    headers = ["system", "workload", "metric", "value", "unit"]
    rows = [
        [
            str(r.get("system", "")),
            str(r.get("workload", "")),
            str(r.get("metric", "")),
            _fmt(r.get("value")),
            str(r.get("unit", "")),
        ]
        for r in records
    ]
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [
            c.rjust(w) if i == 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def print_table(records: Sequence[Record]) -> None:
    print(format_table(records))  # noqa: T201 (a benchmark's report is its output)


def write_json(records: Sequence[Record], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(list(records)), indent=2) + b"\n")
