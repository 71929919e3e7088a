"""Store member configuration: TOML files and their errors; `tejido node start` flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tejido.core.errors import BadInput
from tejido.store.config import load_config

GOOD = """
id = 2
cluster = "prod"
data_dir = "n2"
voters = [1, 2]
[members]
1 = { peer = "127.0.0.1:7001", client = "127.0.0.1:8001" }
2 = { peer = "127.0.0.1:7002", client = "127.0.0.1:8002" }
3 = { peer = "127.0.0.1:7003", client = "127.0.0.1:8003" }
[raft]
election_timeout_s = 0.5
heartbeat_interval_s = 0.05
"""


def test_a_toml_file_gives_the_member_its_addresses_and_timings(tmp_path: Path) -> None:
    path = tmp_path / "n2.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.member_id == 2
    assert config.cluster == "prod"
    assert config.data_dir == tmp_path / "n2"  # relative to the file
    assert config.me.client == "127.0.0.1:8002"
    assert config.peers == {1: "127.0.0.1:7001", 3: "127.0.0.1:7003"}
    raft = config.raft_config()
    assert raft.election_timeout_s == 0.5
    assert raft.initial_voters == (1, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("id = 2", "id = 9"), "member id 9 is not in members"),
        (("election_timeout_s = 0.5", "election_timeout_s = 0.01"), "raft timings"),
        (('client = "127.0.0.1:8001"', 'client = "nowhere"'), "member 1 client address"),
        (("voters = [1, 2]", "voters = [1, 7]"), "voters [7]"),
        (('cluster = "prod"', 'colour = "blue"'), "unknown keys ['colour']"),
        (("[raft]", "[raft"), "not valid TOML"),
    ],
)
def test_bad_configuration_is_refused_naming_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(BadInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_node_start_without_config_or_flags_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tejido.cli.main", "node", "start", "--id", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "--config" in result.stderr
