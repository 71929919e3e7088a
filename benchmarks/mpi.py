"""Benchmark tejido.mpi against mpi4py and a raw socket: ``python benchmarks/mpi.py``.

The same as ``tejido bench mpi`` (same options); the driver lives in `tejido.bench.mpi`.
"""

from __future__ import annotations

import sys

from tejido.cli.bench import app

if __name__ == "__main__":
    sys.exit(app(["mpi", *sys.argv[1:]]))
