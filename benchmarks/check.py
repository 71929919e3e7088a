"""Benchmark the linearizability checker: ``python benchmarks/check.py [--sweep] [--json FILE]``.

Without ``--sweep``: the same as ``tejido bench check``. With it: every generated workload
over seeds 0-4 (median and max per workload), as quoted in docs/checker.md. The workloads
live in `tejido.check.bench`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tejido.bench.records import print_table, write_json
from tejido.check.bench import bench_check, bench_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None, help="write the records as JSON")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per workload")
    parser.add_argument("--sweep", action="store_true", help="seeds 0-4, median and max")
    args = parser.parse_args()
    records = bench_sweep() if args.sweep else bench_check(repeats=args.repeats)
    print_table(records)
    if args.sweep:
        for record in records:
            print(f"{record['workload']}: max {record['max']} s")
    if args.json is not None:
        write_json(records, args.json)


if __name__ == "__main__":
    main()
