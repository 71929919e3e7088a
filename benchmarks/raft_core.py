"""Benchmark the pure Raft core: ``python benchmarks/raft_core.py [--json FILE] [--profile]``.

The same as ``tejido bench raft``; the driver lives in `tejido.bench.raft`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tejido.bench.raft import bench_raft, profile_summary
from tejido.bench.records import print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None, help="write the records as JSON")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per workload")
    parser.add_argument("--entries", type=int, default=20_000, help="entries per run")
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()
    records = bench_raft(repeats=args.repeats, entries=args.entries)
    print_table(records)
    if args.profile:
        print(profile_summary(entries=args.entries))
    if args.json is not None:
        write_json(records, args.json)


if __name__ == "__main__":
    main()
