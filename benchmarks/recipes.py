"""Fenced locks side by side with etcd's: ``python benchmarks/recipes.py [--against etcd]``.

The same as ``tejido bench recipes`` (same options); the harness lives in
`tejido.bench.recipes`.
"""

from __future__ import annotations

import sys

from tejido.cli.bench import app

if __name__ == "__main__":
    sys.exit(app(["recipes", *sys.argv[1:]]))
