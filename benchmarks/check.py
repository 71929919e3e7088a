"""Benchmark the linearizability checker: ``python benchmarks/check.py [--json FILE]``.

The same as ``tejido bench check``; the workloads live in `tejido.check.bench`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tejido.bench.records import print_table, write_json
from tejido.check.bench import bench_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None, help="write the records as JSON")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per workload")
    args = parser.parse_args()
    records = bench_check(repeats=args.repeats)
    print_table(records)
    if args.json is not None:
        write_json(records, args.json)


if __name__ == "__main__":
    main()
