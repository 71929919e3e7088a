"""examples/rpc/calculator.py runs as a program and prints what each call returned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rpc" / "calculator.py"


@pytest.mark.integration
def test_calculator_example_runs_its_demo() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "add(1, 2) = 3",
        "count(5) = [0, 1, 2, 3, 4]",
        "divide(1, 0) raised DivisionByZero: cannot divide 1.0 by zero",
        "slow_square(3) missed its 0.05 s deadline",
        "slow_square(4) = 16",
    ]
