"""kill -9 during a write load: every acknowledged record survives, in order, without gaps.

A child process (wal_crash_child.py) appends with group commit from 16 writers and prints
what each sync made durable; we SIGKILL it after a random number of acknowledgements
(seeded), reopen its directory, check the log, and let the next life continue from there.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from wal_fixtures import reopen

from tejido.net.wal import WalStorage

CHILD = Path(__file__).with_name("wal_crash_child.py")
LIVES = 8


def _check_log(directory: Path, acknowledged: int) -> int:
    """The recovered log holds str(i) at every index i, then maybe junk; returns its end."""
    recovered = reopen(WalStorage, directory)
    records = list(recovered.records)
    while records and records[-1] == b"junk":
        records.pop()  # appended, and its truncation not synced yet: the child cuts it
    first = recovered.first_index
    assert records == [str(i).encode() for i in range(first, first + len(records))]
    end = first + len(records)
    assert end >= acknowledged, f"acknowledged up to {acknowledged}, recovered to {end}"
    return end


def _life(directory: Path, seed: int, kill_after: int) -> tuple[str, int]:
    """Run the child until `kill_after` acknowledgements, SIGKILL it; (start line, acked)."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(seed), "16"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, child.kill)  # a hung child fails the test, not the suite
    watchdog.start()
    try:
        assert child.stdout is not None
        start = child.stdout.readline().strip()
        acked, seen = 0, 0
        while seen < kill_after:
            line = child.stdout.readline()
            if not line:
                break
            seen += 1
            acked = max(acked, int(line.split()[1]))
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate()  # lines it printed before it died count too
    finally:
        watchdog.cancel()
    assert child.returncode == -signal.SIGKILL, errors
    for line in rest.splitlines():
        acked = max(acked, int(line.split()[1]))
    return start, acked


@pytest.mark.integration
def test_nothing_acknowledged_is_lost_across_kill_9(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    end = 0
    acked_total = 0
    for life in range(LIVES):
        kill_after = rng.choice([0, 1, rng.randint(2, 50), rng.randint(50, 600)])
        start, acked = _life(tmp_path, rng.randrange(1 << 30), kill_after)
        # the child recovered exactly what we checked after its previous life
        assert start.startswith("start "), (life, start)
        assert int(start.split()[2]) == end, (life, start)
        end = _check_log(tmp_path, acked)
        assert end >= acked
        acked_total = max(acked_total, acked)
    assert acked_total > 0  # the load really ran
