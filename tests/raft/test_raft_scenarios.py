"""Golden scenario files in tests/raft/testdata (rewrite with TEJIDO_REWRITE=1)."""

from pathlib import Path

import pytest
from raft_harness import Cluster

from support.scenario import run_file

TESTDATA = Path(__file__).parent / "testdata"


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    run_file(path, Cluster())
