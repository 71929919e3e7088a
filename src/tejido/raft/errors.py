"""Errors a Raft node raises to its caller (the application or the runtime host).

Both mean "this request certainly had no effect", so a client may report them as ``fail``.
"""

from __future__ import annotations

from tejido.core.errors import TejidoError
from tejido.core.ids import NodeId

__all__ = ["NotLeader", "ProposalRefused"]


class NotLeader(TejidoError):
    """Only the leader accepts this request; `leader` is who this node believes leads."""

    def __init__(self, leader: NodeId | None) -> None:
        hint = f"leader={leader}" if leader is not None else "no known leader"
        super().__init__(f"not leader ({hint})")
        self.leader = leader


class ProposalRefused(TejidoError):
    """The leader refused a proposal: "busy" (flow control), a transfer or a pending
    configuration change; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
