"""Benchmark RPC against the anchors: ``python benchmarks/rpc.py [--against grpc,pyro5]``.

The same as ``tejido bench rpc`` (same options); the driver lives in `tejido.bench.rpc`.
"""

from __future__ import annotations

import sys

from tejido.cli.bench import app

if __name__ == "__main__":
    sys.exit(app(["rpc", *sys.argv[1:]]))
