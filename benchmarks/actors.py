"""Benchmark local actors against pykka and Thespian:
``python benchmarks/actors.py [--against pykka,thespian] [--json FILE]``.

The same as ``tejido bench actors`` (same options); the driver lives in `tejido.bench.actors`.
"""

from __future__ import annotations

import sys

from tejido.cli.bench import app

if __name__ == "__main__":
    sys.exit(app(["actors", *sys.argv[1:]]))
