"""examples/store/quickstart.py runs as a program and prints what each step did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "store" / "quickstart.py"


@pytest.mark.integration
def test_quickstart_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "put config/colour at revision 2",
        "get config/colour = blue version 1",
        "cas blue->green succeeded: True",
        "cas again succeeded: False",
        "after revoke, workers/a is None",
        "history of config/: PUT blue, PUT green",
    ]
