"""The Bully election: the highest live id becomes coordinator, and takes over on recovery.

H. Garcia-Molina, "Elections in a Distributed Computing System", IEEE Transactions on
Computers C-31(1), 1982; in the form taught by Coulouris et al., *Distributed Systems*,
section 15.3 (Election, Answer, Coordinator messages).

Assumptions: a **synchronous** system: every message arrives within a known bound and a
process answers within a known time, so a missing answer means a crash (the timeouts
below encode the bound). Channels are reliable. Processes fail by crashing and may recover
(with no memory: a recovered process starts an election). Every process knows every id.

Rules:

1. Failure detection: every ``ping_interval_s`` a node pings its coordinator; no ``Pong``
   within ``ping_timeout_s`` means the coordinator crashed, and the node starts an
   election. A ``Pong`` saying the coordinator no longer leads also starts one.
2. An election: send ``Election`` to every node with a higher id (not to the coordinator
   just detected dead). With no higher id to ask, become coordinator (rule 4).
3. A node receiving ``Election`` from a lower id replies ``Answer`` and starts its own
   election (if it is not already running one). The initiator that gets an ``Answer``
   waits ``coordinator_timeout_s`` for a ``Coordinator`` message, and starts over if none
   comes; with no ``Answer`` within ``answer_timeout_s`` it becomes coordinator.
   3a. A coordinator receiving ``Election`` answers it and re-asserts itself with a
   ``Coordinator`` to that node alone, rather than running a new election: its own
   election would end the same way, and re-running it on every late ``Election`` makes
   elections cascade (every lower node re-electing, the winner re-announcing each time).
4. The new coordinator sends ``Coordinator`` to every lower id (and to higher ids other
   than the one detected dead, which would bully it back if alive).
5. ``Coordinator`` from a higher id is accepted; from a lower id the receiver starts an
   election instead (a recovered higher id "bullies" its way back).
6. A node that (re)starts starts an election: the highest live id always wins.
7. A coordinator pings the ids above it (none, normally: the coordinator is the highest);
   a ``Pong`` from one means it was wrongly presumed dead, and a new election lets it lead.

Guarantees (under the assumptions): after the last crash or recovery, every live node
ends with the highest live id as its coordinator.

Messages: Election, Answer and Coordinator are the algorithm's messages; Ping and Pong
are the failure detector's and are not counted by the textbook formulas. When the
second-highest id detects the coordinator's crash it elects itself at once and sends
n-2 Coordinator messages: **n-2 messages**. When the lowest id detects it, O(n²).
"""

from __future__ import annotations

from dataclasses import dataclass

from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = [
    "Answer",
    "BullyConfig",
    "BullyNode",
    "Coordinator",
    "Election",
    "ELECTION_MESSAGES",
    "Ping",
    "Pong",
]

ANSWER_TIMER = TimerName("answer")
COORDINATOR_TIMER = TimerName("coordinator")
PING_TIMER = TimerName("ping")
PONG_TIMER = TimerName("pong")


class Election(Message, frozen=True):
    def describe(self) -> str:
        return "Election"


class Answer(Message, frozen=True):
    def describe(self) -> str:
        return "Answer"


class Coordinator(Message, frozen=True):
    def describe(self) -> str:
        return "Coordinator"


class Ping(Message, frozen=True):
    def describe(self) -> str:
        return "Ping"


class Pong(Message, frozen=True):
    leading: bool

    def describe(self) -> str:
        return f"Pong leading={self.leading}"


ELECTION_MESSAGES = ("Election", "Answer", "Coordinator")
"""The message kinds the textbook message counts include."""


class Elected(Event, frozen=True):
    """This node became coordinator."""

    term: int

    def describe(self) -> str:
        return "ELECTED (coordinator)"


class CoordinatorKnown(Event, frozen=True):
    leader: int

    def describe(self) -> str:
        return f"coordinator is {self.leader}"


class ElectionStarted(Event, frozen=True):
    reason: str

    def describe(self) -> str:
        return f"election ({self.reason})"


@dataclass(frozen=True, slots=True)
class BullyConfig:
    answer_timeout_s: float = 0.1
    """2 x the message delay bound + processing time (Garcia-Molina's T)."""
    coordinator_timeout_s: float = 0.3
    ping_interval_s: float = 0.1
    ping_timeout_s: float = 0.1


class BullyNode(Process):
    __slots__ = (
        "awaiting_pong",
        "config",
        "electing",
        "elections",
        "leader",
        "waiting_for_coordinator",
    )

    def __init__(self, env: Env, config: BullyConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or BullyConfig()
        self.leader: NodeId | None = None
        self.awaiting_pong = False
        self.electing = False
        self.waiting_for_coordinator = False
        self.elections = 0
        """Elections this node started (for tests and benchmarks)."""

    def on_start(self, recovered: Recovered) -> None:  # rule 6
        self.set_timer(PING_TIMER, self.config.ping_interval_s)
        self.start_election("start")

    def on_command(self, request: RequestId, operation: Operation) -> None:
        """``suspect``: the failure detector reports the coordinator crashed (tests, demos)."""
        if operation.f != "suspect":
            self.reply(request, Outcome("fail", error="bully takes 'suspect' only"))
            return
        self._coordinator_failed()
        self.reply(request, Outcome("ok", self.leader))

    # Rule 2 and 3: elections ------------------------------------------------------------------
    def start_election(self, reason: str, dead: NodeId | None = None) -> None:
        if self.electing:
            return
        self.elections += 1
        self.electing = True
        self.waiting_for_coordinator = False
        self.leader = None
        self._stop_probe()
        self.report(ElectionStarted(reason))
        higher = [n for n in self.env.nodes if n > self.node_id and n != dead]
        if not higher:
            self._become_coordinator(dead)
            return
        for node in higher:
            self.send(node, Election())
        self.set_timer(ANSWER_TIMER, self.config.answer_timeout_s)

    def _become_coordinator(self, dead: NodeId | None) -> None:  # rule 4
        self.leader = self.node_id
        self.electing = self.waiting_for_coordinator = False
        self.cancel_timer(ANSWER_TIMER)
        self.cancel_timer(COORDINATOR_TIMER)
        self.report(Elected(self.elections))
        for node in self.env.peers:
            if node != dead:
                self.send(node, Coordinator())

    def on_timer(self, name: TimerName) -> None:
        if name == ANSWER_TIMER and self.electing and not self.waiting_for_coordinator:
            self._become_coordinator(None)
        elif name == COORDINATOR_TIMER and self.waiting_for_coordinator:
            self.electing = self.waiting_for_coordinator = False
            self.start_election("no coordinator message")
        elif name == PING_TIMER:
            self.set_timer(PING_TIMER, self.config.ping_interval_s)
            if self.leader is not None and self.leader != self.node_id:
                if not self.awaiting_pong:  # one probe at a time: its timeout must run out
                    self.awaiting_pong = True
                    self.send(self.leader, Ping())
                    self.set_timer(PONG_TIMER, self.config.ping_timeout_s)
            elif self.leader == self.node_id:
                for node in self.env.nodes:
                    if node > self.node_id:  # rule 7: is a higher id alive after all?
                        self.send(node, Ping())
            elif self.leader is None and not self.electing:
                self.start_election("no coordinator")
        elif name == PONG_TIMER:
            self.awaiting_pong = False
            self._coordinator_failed()

    def _coordinator_failed(self) -> None:  # rule 1
        dead = self.leader if self.leader != self.node_id else None
        self._stop_probe()
        self.electing = False
        self.start_election(f"coordinator {dead} failed", dead)

    # Messages ---------------------------------------------------------------------------------
    def _stop_probe(self) -> None:
        self.awaiting_pong = False
        self.cancel_timer(PONG_TIMER)

    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case Election():
                if src < self.node_id:  # rule 3
                    self.send(src, Answer())
                    if self.leader == self.node_id and not self.electing:
                        self.send(src, Coordinator())  # rule 3a
                    else:
                        self.start_election(f"election from {src}")
            case Answer():
                if self.electing and not self.waiting_for_coordinator:
                    self.waiting_for_coordinator = True
                    self.cancel_timer(ANSWER_TIMER)
                    self.set_timer(COORDINATOR_TIMER, self.config.coordinator_timeout_s)
            case Coordinator():
                self._on_coordinator(src)
            case Ping():
                self.send(src, Pong(self.leader == self.node_id))
            case Pong(leading=leading):
                if self.leader == self.node_id and src > self.node_id:
                    self.start_election(f"{src} is alive")  # rule 7
                elif src == self.leader:
                    self._stop_probe()
                    if not leading:
                        self.start_election(f"{src} no longer leads")
            case _:
                pass

    def _on_coordinator(self, src: NodeId) -> None:  # rule 5
        if src < self.node_id:
            self.electing = False
            self.start_election(f"coordinator {src} is lower")
            return
        self.leader = src
        self.electing = self.waiting_for_coordinator = False
        self.cancel_timer(ANSWER_TIMER)
        self.cancel_timer(COORDINATOR_TIMER)
        self._stop_probe()
        self.report(CoordinatorKnown(src))
