"""Suite-wide test settings.

Hypothesis: no per-example deadline. The suite runs with `pytest -n 2` on shared 2-core
machines, where an example's wall time says nothing about correctness (a deadline there
only produces flaky failures); examples stay bounded by their own sizes and timeouts.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("tejido", deadline=None)
settings.load_profile("tejido")
