"""The store's errors, as the client sees them. Each says who is to blame and whether the
operation took effect:

- `NotApplied`: the operation certainly did not take effect (refused before it was
  proposed, Raft refused it, or the machine rejected it); safe to retry.
- `OutcomeUnknown`: it may or may not have taken effect (no answer within the deadline,
  the connection was lost with the request in flight). A history records it as ``info``.
- `NotLeader` (a `NotApplied`): only the leader serves this request; the message carries
  the leader's id and client address, which `parse_not_leader` reads back (RPC errors
  cross the wire as class name and message).
- `StoreError` (a `NotApplied`): the machine refused the request; ``code`` is the
  machine's error code (``compacted``, ``lease_not_found``, ``too_many_ops``...).
- `WatchCancelled`: the server ended a watch (a slow watcher, compaction); ``code`` says why.
"""

from __future__ import annotations

import re

from tejido import rpc

__all__ = [
    "NotApplied",
    "NotLeader",
    "OutcomeUnknown",
    "StoreError",
    "WatchCancelled",
    "parse_not_leader",
]


class NotApplied(rpc.ServiceError):
    """The operation certainly did not take effect."""


class OutcomeUnknown(rpc.ServiceError):
    """The operation may or may not have taken effect."""


class NotLeader(NotApplied):
    """Only the leader serves this; the message names the leader and its client address."""

    def __init__(self, leader: int | str | None = None, address: str | None = None) -> None:
        if isinstance(leader, str):  # rebuilt from the wire: the message itself
            super().__init__(leader)
            self.leader, self.address = parse_not_leader(leader)
            return
        leader_text = "unknown" if leader is None else str(leader)
        super().__init__(f"not leader; leader={leader_text} address={address or 'unknown'}")
        self.leader = leader
        self.address = address


_NOT_LEADER = re.compile(r"leader=(\d+|unknown) address=(\S+)")


def parse_not_leader(message: str) -> tuple[int | None, str | None]:
    match = _NOT_LEADER.search(message)
    if match is None:
        return None, None
    leader = None if match[1] == "unknown" else int(match[1])
    address = None if match[2] == "unknown" else match[2]
    return leader, address


class StoreError(NotApplied):
    """The machine refused the request: ``code: message``."""

    def __init__(self, message: str, code: str | None = None) -> None:
        if code is None:  # rebuilt from the wire
            code, _, _ = message.partition(":")
            super().__init__(message)
        else:
            super().__init__(f"{code}: {message}")
        self.code = code


class WatchCancelled(rpc.ServiceError):
    """The server ended the watch: ``code: reason`` (slow, compacted, ...)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        if code is None:
            code, _, _ = message.partition(":")
            super().__init__(message)
        else:
            super().__init__(f"{code}: {message}")
        self.code = code
