"""A store member's configuration: from a TOML file (`tomllib`) or from flags.

A member has two addresses, like etcd's peer URL (2380) and client URL (2379): the
**peer** address carries Raft traffic over the `tejido.net` mesh, the **client** address
serves the `KV` RPC interface (`tejido.store.service`). Every member knows the whole
address book (`members`): the peer addresses to dial, and the client addresses it names
in `NotLeader` redirects and `member_list`.

The file::

    id = 1
    cluster = "tejido"
    data_dir = ".tejido/n1"
    voters = [1, 2, 3]            # optional: the first configuration (default: every member)
    grpc = "127.0.0.1:2381"       # optional: also serve the client API over gRPC here
    auto_compaction_revisions = 10000  # optional: keep only the last N revisions (0: all)
    [members]
    1 = { peer = "127.0.0.1:2380", client = "127.0.0.1:2379" }
    2 = { peer = "127.0.0.1:2381", client = "127.0.0.1:2378" }
    [raft]
    election_timeout_s = 1.0
    heartbeat_interval_s = 0.1

Rules (checked by `StoreConfig.validate`, which raises `BadInput` naming the field):

1. The member's own id is in `members`; ids are non-negative integers.
2. Addresses look like ``HOST:PORT``; port 0 only for the own member's listen addresses
   (tests), never in another member's entry.
3. `voters` is a subset of `members`; a member outside `voters` starts as a spare that
   waits to be added as a learner (`KV.member_add_learner`). The address book is static:
   a new member must be listed in every member's `members` before it is added.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tejido.core.errors import BadInput
from tejido.core.ids import NodeId
from tejido.raft.config import RaftConfig

__all__ = ["MemberAddress", "StoreConfig", "load_config", "parse_address"]


@dataclass(frozen=True, slots=True)
class MemberAddress:
    peer: str
    client: str


def parse_address(text: str, what: str) -> str:
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise BadInput(f"{what} {text!r} must look like HOST:PORT (e.g. 127.0.0.1:2379)")
    return text


@dataclass(frozen=True, slots=True)
class StoreConfig:
    member_id: NodeId
    members: dict[NodeId, MemberAddress]
    data_dir: Path
    cluster: str = "tejido"
    voters: tuple[NodeId, ...] | None = None
    election_timeout_s: float = 1.0
    heartbeat_interval_s: float = 0.1
    lease_reads: bool = False
    snapshot_threshold_entries: int = 100_000
    """Raft snapshots every this many entries: etcd's default ``--snapshot-count``
    (100,000 since v3.2). Taking one stalls the member's loop while the machine is encoded
    (`tejido.raft.snapshot` rule 1b staggers the members); rarer is cheaper on average."""
    max_request_bytes: int = 3 * 512 * 1024
    """etcd's default limit for one request (1.5 MiB)."""
    watch_buffer_events: int = 10_000
    """Events queued for one watcher before it is cancelled as too slow."""
    progress_interval_s: float = 10.0
    """How often an idle watch gets a progress notification."""
    grpc_address: str | None = None
    """Where this member also serves the client API over gRPC (None: not at all)."""
    auto_compaction_revisions: int = 0
    """Keep this many revisions of history, compacting the rest (0: never;
    `tejido.store.compaction`)."""

    def validate(self) -> None:
        if self.member_id not in self.members:
            raise BadInput(f"member id {self.member_id} is not in members {sorted(self.members)}")
        for ident, address in self.members.items():
            if ident < 0:
                raise BadInput(f"member id {ident} must be a non-negative integer")
            for kind, text in (("peer", address.peer), ("client", address.client)):
                parse_address(text, f"member {ident} {kind} address")
                if ident != self.member_id and text.endswith(":0"):
                    raise BadInput(f"member {ident} {kind} address {text!r} needs a real port")
        if self.grpc_address is not None:
            parse_address(self.grpc_address, "grpc address")
        if (
            not isinstance(self.auto_compaction_revisions, int)
            or self.auto_compaction_revisions < 0
        ):
            raise BadInput(
                f"auto_compaction_revisions must be >= 0, got {self.auto_compaction_revisions}"
            )
        if self.voters is not None:
            unknown = sorted(set(self.voters) - set(self.members))
            if unknown:
                raise BadInput(f"voters {unknown} are not in members {sorted(self.members)}")
        self.raft_config()  # timings: raises naming the field

    @property
    def me(self) -> MemberAddress:
        return self.members[self.member_id]

    @property
    def peers(self) -> dict[NodeId, str]:
        return {i: a.peer for i, a in self.members.items() if i != self.member_id}

    def raft_config(self) -> RaftConfig:
        config = RaftConfig(
            initial_voters=self.voters,
            election_timeout_s=self.election_timeout_s,
            heartbeat_interval_s=self.heartbeat_interval_s,
            lease_reads=self.lease_reads,
            snapshot_threshold_entries=self.snapshot_threshold_entries,
            snapshot_keep_entries=min(1000, self.snapshot_threshold_entries),
            commit_notify_delay_s=0.02,  # the next write carries it (raft replication 4b)
            defer_follower_apply=True,  # acknowledge before applying (raft replication 5c)
        )
        try:
            config.validate()
        except Exception as exc:
            raise BadInput(f"raft timings: {exc}") from None
        return config


_RAFT_KEYS = {"election_timeout_s", "heartbeat_interval_s", "lease_reads"}
_TOP_KEYS = {
    "id",
    "cluster",
    "data_dir",
    "voters",
    "members",
    "raft",
    "max_request_bytes",
    "watch_buffer_events",
    "progress_interval_s",
    "snapshot_threshold_entries",
    "auto_compaction_revisions",
    "grpc",
}


def load_config(path: Path) -> StoreConfig:
    """Read a TOML file (format in the module docstring); `BadInput` names what is wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise BadInput(f"cannot read config {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"config {str(path)!r} is not valid TOML: {exc}") from None
    return config_from_dict(data, base=path.parent, where=str(path))


def config_from_dict(data: dict[str, Any], *, base: Path, where: str) -> StoreConfig:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise BadInput(f"{where}: unknown keys {unknown} (known: {sorted(_TOP_KEYS)})")
    try:
        member_id = NodeId(int(data["id"]))
        raw_members = data["members"]
        data_dir = Path(data["data_dir"])
    except KeyError as exc:
        raise BadInput(f"{where}: missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{where}: bad id: {exc}") from None
    if not isinstance(raw_members, dict):
        raise BadInput(f"{where}: members must be a table of id = {{peer=..., client=...}}")
    members: dict[NodeId, MemberAddress] = {}
    for key, entry in raw_members.items():
        if not str(key).isdigit() or not isinstance(entry, dict):
            raise BadInput(f"{where}: members.{key} must be ID = {{ peer = ..., client = ... }}")
        try:
            members[NodeId(int(key))] = MemberAddress(str(entry["peer"]), str(entry["client"]))
        except KeyError as exc:
            raise BadInput(f"{where}: members.{key} lacks {exc.args[0]!r}") from None
    raft = data.get("raft", {})
    if not isinstance(raft, dict) or set(raft) - _RAFT_KEYS:
        raise BadInput(f"{where}: [raft] takes only {sorted(_RAFT_KEYS)}")
    voters = data.get("voters")
    options: dict[str, Any] = {
        k: data[k]
        for k in (
            "max_request_bytes",
            "watch_buffer_events",
            "progress_interval_s",
            "snapshot_threshold_entries",
            "auto_compaction_revisions",
        )
        if k in data
    }
    config = StoreConfig(
        member_id=member_id,
        members=members,
        data_dir=data_dir if data_dir.is_absolute() else base / data_dir,
        cluster=str(data.get("cluster", "tejido")),
        voters=tuple(NodeId(int(v)) for v in voters) if voters is not None else None,
        election_timeout_s=float(raft.get("election_timeout_s", 1.0)),
        heartbeat_interval_s=float(raft.get("heartbeat_interval_s", 0.1)),
        lease_reads=bool(raft.get("lease_reads", False)),
        grpc_address=str(data["grpc"]) if "grpc" in data else None,
        **options,
    )
    config.validate()
    return config
