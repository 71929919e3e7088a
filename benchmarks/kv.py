"""Replicated stores side by side: ``python benchmarks/kv.py [--against etcd,pysyncobj]``.

The same as ``tejido bench kv`` (same options); the harness lives in `tejido.bench.kv`.
"""

from __future__ import annotations

import sys

from tejido.cli.bench import app

if __name__ == "__main__":
    sys.exit(app(["kv", *sys.argv[1:]]))
