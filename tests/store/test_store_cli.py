"""`tejido up`, `tejido status --json` and `tejido kv put/get` as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TEJIDO = [sys.executable, "-m", "tejido.cli.main"]


def _tejido(cwd: Path, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TEJIDO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _wait_for_file(path: Path, process: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"tejido up exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.05)  # polling for a file another process writes


@pytest.mark.integration
def test_up_status_put_get_and_a_clean_stop(tmp_path: Path) -> None:
    up = subprocess.Popen(
        [*TEJIDO, "up", "--nodes", "3", "--no-table", "--refresh", "0.5"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_file(tmp_path / ".tejido" / "cluster.json", up, 60)
        cluster = json.loads((tmp_path / ".tejido" / "cluster.json").read_text())
        assert len(cluster["endpoints"]) == 3
        pids = [m["pid"] for m in cluster["members"]]

        put = _tejido(tmp_path, "kv", "put", "greeting", "hello")  # finds the cluster itself
        assert put.returncode == 0, put.stderr
        revision = json.loads(put.stdout)["revision"]
        get = _tejido(tmp_path, "kv", "get", "greeting")
        assert get.returncode == 0, get.stderr
        record = json.loads(get.stdout)
        assert record["value"] == "hello"
        assert record["mod_revision"] == revision

        status = _tejido(tmp_path, "status", "--json")
        assert status.returncode == 0, status.stderr
        members = json.loads(status.stdout)
        assert sorted(m["pid"] for m in members) == sorted(pids)
        leaders = {m["leader"] for m in members}
        assert len(leaders) == 1
        assert [m["role"] for m in members].count("leader") == 1
        assert all(m["applied"] >= 1 for m in members)

        other = _tejido(
            tmp_path,
            "kv",
            "get",
            "greeting",
            "--endpoints",
            cluster["endpoints"][1],
            "--serializable",
        )
        assert other.returncode == 0, other.stderr

        missing = _tejido(tmp_path, "kv", "get", "absent")
        assert missing.returncode == 1
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=30)
    assert up.returncode == 0, output
    assert "member 1: exit code 0" in output
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_client_commands_without_a_cluster_say_how_to_start_one(tmp_path: Path) -> None:
    result = _tejido(tmp_path, "kv", "get", "k")
    assert result.returncode == 2
    assert "tejido up" in result.stderr


@pytest.mark.integration
def test_demo_survives_killing_the_leader(tmp_path: Path) -> None:
    result = _tejido(tmp_path, "demo", "--dir", str(tmp_path / "demo"), "--keys", "5", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["verified"] is True
    assert summary["keys"] == 11
    assert summary["new_leader"] != summary["killed_leader"]
    assert summary["failover_s"] > 0
    assert "-9" in result.stdout  # the killed leader's exit status is reported
