"""Ring election (Chang-Roberts), skipping crashed members of the ring.

E. Chang and R. Roberts, "An Improved Algorithm for Decentralized Extrema-Finding in
Circular Configurations of Processes", CACM 22(5), 1979. LCR (Le Lann, Chang and Roberts,
as N. Lynch, *Distributed Algorithms*, section 3.3, names it) is the variant in which every
process initiates at once; that is what happens here when the nodes start together, and
it is the setting of the message-count formulas.

Assumptions: a unidirectional ring ordered by id (``order="ascending"``: each node sends
to the next higher id, wrapping; ``"descending"``: to the next lower); unique ids; reliable
channels; processes fail by crashing and may recover. Crash detection is by timeouts (a
synchronous bound): every ring message is acknowledged hop by hop (``HopAck``); no
acknowledgement within ``ack_timeout_s`` means the successor crashed, and the sender
tries the node after it, as in Tanenbaum and van Steen's ring algorithm.

Rules:

1. A node starts an election when it starts, when its coordinator fails to answer a
   ``Ping``, or when an election it takes part in does not finish within
   ``election_timeout_s``: it marks itself a participant and sends ``Election(me)``.
2. On ``Election(c)``: if ``c > me``, become a participant and forward it; if ``c < me``
   and not a participant, become one and send ``Election(me)`` instead; if ``c < me`` and a
   participant, discard it; if ``c == me``, this node won: it sends ``Elected(me)``.
3. On ``Elected(c)``: record ``c`` as coordinator, stop participating, and forward it
   unless ``c == me``. If ``c < me`` the announcement is stale (this node missed the
   election while down): start a new election instead of forwarding it.
4. A message whose successor does not acknowledge goes to the next node around the ring.
   If the node that does not acknowledge is the candidate an ``Election`` carries, the
   candidate crashed: drop its message and start an own election. An ``Elected`` whose
   coordinator does not acknowledge is dropped, and an election starts.

Guarantees: after the last crash or recovery, every live node ends with the highest live
id as its coordinator.

Messages (the formulas count ``Election`` and ``Elected`` only; ``HopAck``, ``Ping`` and
``Pong`` belong to the failure detector, which the original algorithm does not have):
with every node initiating, n(n+1)/2 ``Election`` messages when the ids decrease along
the ring (``order="descending"``), 2n-1 when they increase (``"ascending"``), plus n
``Elected`` messages for the announcement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = [
    "ELECTION_MESSAGES",
    "HopAck",
    "RingConfig",
    "RingElection",
    "RingElected",
    "RingElectionMessage",
    "RingPing",
    "RingPong",
]

ELECTION_TIMER = TimerName("election")
PING_TIMER = TimerName("ping")
PONG_TIMER = TimerName("pong")


class RingElectionMessage(Message, frozen=True):
    candidate: int
    hop: int

    def describe(self) -> str:
        return f"Election {self.candidate}"


class RingElected(Message, frozen=True):
    leader: int
    hop: int

    def describe(self) -> str:
        return f"Elected {self.leader}"


class HopAck(Message, frozen=True):
    hop: int

    def describe(self) -> str:
        return "HopAck"


class RingPing(Message, frozen=True):
    def describe(self) -> str:
        return "Ping"


class RingPong(Message, frozen=True):
    leading: bool

    def describe(self) -> str:
        return f"Pong leading={self.leading}"


ELECTION_MESSAGES = ("RingElectionMessage", "RingElected")
"""The message kinds the textbook message counts include."""


class LeaderElected(Event, frozen=True):
    leader: int

    def describe(self) -> str:
        return "ELECTED (coordinator)" if self.leader < 0 else f"coordinator is {self.leader}"


class RingElectionStarted(Event, frozen=True):
    reason: str

    def describe(self) -> str:
        return f"election ({self.reason})"


@dataclass(frozen=True, slots=True)
class RingConfig:
    order: Literal["ascending", "descending"] = "ascending"
    ack_timeout_s: float = 0.1
    election_timeout_s: float = 1.0
    ping_interval_s: float = 0.1
    ping_timeout_s: float = 0.1


@dataclass(slots=True)
class _InFlight:
    """A ring message this node is handing to its successor, and who it tried."""

    message: RingElectionMessage | RingElected
    target: NodeId
    skipped: list[NodeId] = field(default_factory=list)


class RingElection(Process):
    __slots__ = (
        "_hop",
        "awaiting_pong",
        "config",
        "elections",
        "in_flight",
        "leader",
        "participant",
        "ring",
    )

    def __init__(self, env: Env, config: RingConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or RingConfig()
        ring = list(env.nodes)
        if self.config.order == "descending":
            ring.reverse()
        self.ring: tuple[NodeId, ...] = tuple(ring)
        """The nodes in the direction messages travel."""
        self.leader: NodeId | None = None
        self.awaiting_pong = False
        self.participant = False
        self.elections = 0
        self.in_flight: dict[int, _InFlight] = {}
        self._hop = 0

    def _after(self, node: NodeId) -> NodeId:
        return self.ring[(self.ring.index(node) + 1) % len(self.ring)]

    def on_start(self, recovered: Recovered) -> None:
        self.set_timer(PING_TIMER, self.config.ping_interval_s)
        self.start_election("start")

    def on_command(self, request: RequestId, operation: Operation) -> None:
        """``suspect``: the failure detector reports the coordinator crashed (tests, demos)."""
        if operation.f != "suspect":
            self.reply(request, Outcome("fail", error="ring takes 'suspect' only"))
            return
        self.leader = None
        self.start_election("coordinator suspected")
        self.reply(request, Outcome("ok", None))

    # Rule 1 -------------------------------------------------------------------------------
    def start_election(self, reason: str) -> None:
        self.elections += 1
        self.participant = True
        self.leader = None
        self._stop_probe()
        self.report(RingElectionStarted(reason))
        self.set_timer(ELECTION_TIMER, self.config.election_timeout_s)
        self._forward(RingElectionMessage(self.node_id, 0))

    def _won(self) -> None:
        self.leader = self.node_id
        self.participant = False
        self.cancel_timer(ELECTION_TIMER)
        self.report(LeaderElected(-1))
        self._forward(RingElected(self.node_id, 0))

    # Rule 4: hop-by-hop hand-over ------------------------------------------------------------
    def _forward(self, message: RingElectionMessage | RingElected) -> None:
        target = self._after(self.node_id)
        if target == self.node_id:  # a ring of one
            self._handle(message)
            return
        self._hop += 1
        self.in_flight[self._hop] = _InFlight(message, target)
        self._send_hop(self._hop)

    def _send_hop(self, hop: int) -> None:
        flight = self.in_flight[hop]
        message = flight.message
        if isinstance(message, RingElectionMessage):
            self.send(flight.target, RingElectionMessage(message.candidate, hop))
        else:
            self.send(flight.target, RingElected(message.leader, hop))
        self.set_timer(f"hop:{hop}", self.config.ack_timeout_s)

    def _hop_timed_out(self, hop: int) -> None:
        flight = self.in_flight.get(hop)
        if flight is None:
            return
        dead = flight.target
        message = flight.message
        origin = message.candidate if isinstance(message, RingElectionMessage) else message.leader
        if dead == origin:
            del self.in_flight[hop]
            if dead == self.leader:
                self.leader = None
            self.start_election(f"{dead} crashed")
            return
        flight.skipped.append(dead)
        flight.target = self._after(dead)
        if flight.target == self.node_id:  # everyone else is down
            del self.in_flight[hop]
            self._handle(message)
            return
        self._send_hop(hop)

    # Rules 2 and 3 -----------------------------------------------------------------------------
    def _handle(self, message: RingElectionMessage | RingElected) -> None:
        me = self.node_id
        if isinstance(message, RingElectionMessage):
            candidate = message.candidate
            if candidate > me:
                self.participant = True
                self.set_timer(ELECTION_TIMER, self.config.election_timeout_s)
                self._forward(message)
            elif candidate < me:
                if not self.participant:
                    self.start_election(f"election for {candidate}")
            else:
                self._won()
            return
        leader = NodeId(message.leader)
        if leader == me:
            return  # the announcement went all the way round
        if leader < me:
            self.start_election(f"stale coordinator {leader}")
            return
        self.leader = leader
        self.participant = False
        self.cancel_timer(ELECTION_TIMER)
        self._stop_probe()
        self.report(LeaderElected(leader))
        self._forward(message)

    def _stop_probe(self) -> None:
        self.awaiting_pong = False
        self.cancel_timer(PONG_TIMER)

    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case RingElectionMessage(hop=hop) | RingElected(hop=hop):
                self.send(src, HopAck(hop))
                self._handle(message)
            case HopAck(hop=hop):
                if self.in_flight.pop(hop, None) is not None:
                    self.cancel_timer(f"hop:{hop}")
            case RingPing():
                self.send(src, RingPong(self.leader == self.node_id))
            case RingPong(leading=leading):
                if src == self.leader:
                    self._stop_probe()
                    if not leading:
                        self.start_election(f"{src} no longer leads")
            case _:
                pass

    def on_timer(self, name: TimerName) -> None:
        if name.startswith("hop:"):
            self._hop_timed_out(int(name[4:]))
        elif name == ELECTION_TIMER:
            if self.participant:
                self.start_election("election timed out")
        elif name == PING_TIMER:
            self.set_timer(PING_TIMER, self.config.ping_interval_s)
            if self.leader is not None and self.leader != self.node_id:
                if not self.awaiting_pong:  # one probe at a time: its timeout must run out
                    self.awaiting_pong = True
                    self.send(self.leader, RingPing())
                    self.set_timer(PONG_TIMER, self.config.ping_timeout_s)
            elif self.leader is None and not self.participant:
                self.start_election("no coordinator")
        elif name == PONG_TIMER:
            self.awaiting_pong = False
            self.leader = None
            self.start_election("coordinator silent")
