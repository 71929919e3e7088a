"""Token-ring mutual exclusion, with token-loss detection and safe regeneration.

The ring: Le Lann, "Distributed Systems — Towards a Formal Approach", IFIP 1977. Loss
detection by a timeout and regeneration by a claim that must travel the whole ring follow
the idea of Misra's "Detecting Termination of Distributed Computations Using Markers"
(PODC 1983) and the generation numbers of Le Lann's and Chang-Roberts' ring protocols;
the concrete rules below are this module's own.

Assumptions: asynchronous system; the channels may lose, duplicate and reorder messages
(a lost token is exactly the fault this algorithm repairs); processes may pause but do not
crash (a crashed node would break the ring; the election modules show how a ring skips
dead members). Timeouts are used only for liveness: a wrong suspicion never breaks safety.

State per node: ``floor``, the highest ``(gen, creator)`` it has committed to, and
``seen``, the highest token ``(gen, creator, serial)`` it has accepted.

Rules:

1. One token exists at the start, created by the lowest id: ``Token(gen=0, creator,
   serial=0)``. Passing it to the ring successor (next higher id, wrapping) increments
   ``serial``.
2. A node accepts a token only if its ``(gen, creator)`` is at least ``floor`` and its
   ``(gen, creator, serial)`` is above ``seen``; anything else is a stale copy or a
   duplicate and is discarded. A node that wants the CS keeps the token while inside.
3. Loss detection: a node that has not accepted a token for ``loss_timeout_s`` claims a
   new generation: ``Claim(gen = max gen it knows + 1, creator = itself)``, raising its
   own ``floor`` to it, and sends the claim to its successor.
4. A node receiving a claim drops it if it holds the token or if the claim is below its
   ``floor``; otherwise it raises ``floor`` to the claim and forwards it.
5. When its own claim comes back, still equal to its ``floor``, the claimer creates
   ``Token(gen, itself, serial=0)``.

Why there is never more than one usable token: a claim returns only after every node
raised its ``floor`` to it, so none holds an older token then and every older token still
on the wire is refused on arrival (rule 2); two claims of one generation are ordered by
creator, and the lower one cannot pass a node that forwarded the higher one.

Messages per entry: between 0 (the token is already here) and n (one full rotation);
under no load the token keeps circulating, n messages per rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

from tejido.algorithms.mutex_base_a1 import MutexProcess
from tejido.core.ids import NodeId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.protocol import Env
from tejido.core.storage import Recovered

__all__ = ["Claim", "Token", "TokenRing", "TokenRingConfig"]

LOSS_TIMER = TimerName("token-loss")
PASS_TIMER = TimerName("pass")


class Token(Message, frozen=True):
    gen: int
    creator: int
    serial: int

    def describe(self) -> str:
        return f"Token gen={self.gen}.{self.creator} serial={self.serial}"


class Claim(Message, frozen=True):
    gen: int
    creator: int

    def describe(self) -> str:
        return f"Claim gen={self.gen}.{self.creator}"


class TokenRegenerated(Event, frozen=True):
    gen: int

    def describe(self) -> str:
        return f"TOKEN REGENERATED gen={self.gen}"


class TokenDiscarded(Event, frozen=True):
    gen: int
    creator: int
    serial: int

    def describe(self) -> str:
        return f"discard stale token gen={self.gen}.{self.creator} serial={self.serial}"


@dataclass(frozen=True, slots=True)
class TokenRingConfig:
    hold_s: float = 0.002
    pass_delay_s: float = 0.001
    """An idle node keeps the token this long before passing it (keeps idle rings calm)."""
    loss_timeout_s: float = 0.5
    """No token for this long (local clock) means it is presumed lost (rule 3)."""


class TokenRing(MutexProcess):
    __slots__ = ("config", "floor", "holding", "my_claim", "seen", "seen_since_check")

    def __init__(self, env: Env, config: TokenRingConfig | None = None) -> None:
        self.config = config or TokenRingConfig()
        super().__init__(env, self.config.hold_s)
        self.floor: tuple[int, int] = (0, 0)
        self.seen: tuple[int, int, int] = (-1, 0, 0)
        self.holding: Token | None = None
        self.my_claim: tuple[int, int] | None = None
        self.seen_since_check = False

    @property
    def successor(self) -> NodeId:
        nodes = self.env.nodes
        return nodes[(nodes.index(self.node_id) + 1) % len(nodes)]

    def on_start(self, recovered: Recovered) -> None:
        self.set_timer(LOSS_TIMER, self.config.loss_timeout_s)
        if self.node_id == min(self.env.nodes):  # rule 1
            self._accept(Token(gen=0, creator=self.node_id, serial=0))

    # The token ---------------------------------------------------------------------------
    def _accept(self, token: Token) -> None:  # rule 2
        key = (token.gen, token.creator)
        if key < self.floor or (token.gen, token.creator, token.serial) <= self.seen:
            self.report(TokenDiscarded(token.gen, token.creator, token.serial))
            return
        self.floor = key
        self.seen = (token.gen, token.creator, token.serial)
        self.seen_since_check = True
        self.holding = token
        if self.requesting:
            self.enter_cs()
        else:
            self.set_timer(PASS_TIMER, self.config.pass_delay_s)

    def _pass(self) -> None:
        token = self.holding
        if token is None or self.in_cs:
            return
        self.holding = None
        self.send(self.successor, Token(token.gen, token.creator, token.serial + 1))

    def request_cs(self) -> None:
        if self.holding is not None:
            self.cancel_timer(PASS_TIMER)
            self.enter_cs()

    def release_cs(self) -> None:
        self._pass()

    # Loss detection and regeneration ----------------------------------------------------------
    def on_algorithm_timer(self, name: TimerName) -> None:
        if name == PASS_TIMER:
            self._pass()
            return
        if name != LOSS_TIMER:
            return
        self.set_timer(LOSS_TIMER, self.config.loss_timeout_s)
        if self.holding is None and not self.seen_since_check:  # rule 3
            gen = max(self.floor[0], self.seen[0]) + 1
            self.my_claim = self.floor = (gen, self.node_id)
            self.send(self.successor, Claim(gen, self.node_id))
        self.seen_since_check = False

    def _on_claim(self, claim: Claim) -> None:
        key = (claim.gen, claim.creator)
        if self.holding is not None or key < self.floor:  # rule 4
            return
        if claim.creator == self.node_id:  # rule 5
            if key == self.my_claim == self.floor and self.seen[:2] < key:
                self.my_claim = None
                self.report(TokenRegenerated(claim.gen))
                self._accept(Token(claim.gen, self.node_id, 0))
            return
        self.floor = key
        self.send(self.successor, claim)

    def on_message(self, src: NodeId, message: Message) -> None:
        match message:
            case Token():
                self._accept(message)
            case Claim():
                self._on_claim(message)
            case _:
                pass
