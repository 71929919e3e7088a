"""What every broadcast process shares: client commands, the delivery log, events.

A client command ``broadcast v`` makes the node broadcast ``v`` to the group (itself
included). The node answers the client ``ok`` when it has delivered its own message, so a
completed operation means "delivered here"; that the others deliver it too is checked by
the simulator at the end of the run.

Every broadcast is named by a `BroadcastId`, ``(origin, number)``: the origin's own count
of its broadcasts, from 1. Each node keeps `log`, the broadcasts it originated and the
messages it delivered, in its local order: the ordering checkers
(`tejido.check.order`) read exactly this.
"""

from __future__ import annotations

from typing import Literal

from tejido.core.ids import NodeId, RequestId
from tejido.core.messages import Event
from tejido.core.operations import Operation, OpValue, Outcome
from tejido.core.protocol import Env, Process

__all__ = ["BroadcastId", "BroadcastProcess", "Delivered", "LogEntry"]

BroadcastId = tuple[int, int]
"""(origin node, the origin's broadcast number from 1)."""

LogEntry = tuple[Literal["broadcast", "deliver"], BroadcastId]


class Delivered(Event, frozen=True):
    origin: int
    number: int
    value: int | str | None

    def describe(self) -> str:
        return f"deliver {self.origin}.{self.number} ({self.value!r})"


class BroadcastProcess(Process):
    """Base class: subclasses implement `broadcast` and call `deliver`."""

    __slots__ = ("_waiting", "broadcasts", "log")

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.log: list[LogEntry] = []
        self.broadcasts = 0
        """How many broadcasts this node originated (its last `BroadcastId` number)."""
        self._waiting: dict[BroadcastId, RequestId] = {}

    def on_command(self, request: RequestId, operation: Operation) -> None:
        if operation.f != "broadcast" or isinstance(operation.value, tuple):
            self.reply(
                request,
                Outcome("fail", error=f"{type(self).__name__} takes 'broadcast VALUE'"),
            )
            return
        self.broadcasts += 1
        bid: BroadcastId = (self.node_id, self.broadcasts)
        self._waiting[bid] = request
        self.log.append(("broadcast", bid))
        self.broadcast_value(bid, operation.value)

    def deliver(self, bid: BroadcastId, value: OpValue) -> None:
        """Hand a message to the application (here: the log, an event, a client reply)."""
        self.log.append(("deliver", bid))
        scalar = value if not isinstance(value, tuple) else None
        self.report(Delivered(bid[0], bid[1], scalar))
        request = self._waiting.pop(bid, None)
        if request is not None:
            self.reply(request, Outcome("ok", scalar))

    def broadcast_value(self, bid: BroadcastId, value: int | str | None) -> None:
        raise NotImplementedError

    def origin_of(self, bid: BroadcastId) -> NodeId:
        return NodeId(bid[0])
