"""A trivial protocol: tokens hop between random nodes forever.

It exists to measure the simulator itself (`tejido bench sim`): each delivery costs the
protocol almost nothing, so the rate of deliveries is the simulator's own speed.
"""

from __future__ import annotations

from tejido.core.ids import NodeId
from tejido.core.messages import Message
from tejido.core.protocol import Env, Process
from tejido.core.storage import Recovered

__all__ = ["Relay", "Token"]


class Token(Message, frozen=True):
    hops: int


class Relay(Process):
    """Starts `tokens` tokens; forwards every token it receives to a random peer."""

    __slots__ = ("_peers", "_random", "tokens")

    def __init__(self, env: Env, tokens: int = 4) -> None:
        super().__init__(env)
        self.tokens = tokens
        self._peers = env.peers
        self._random = env.rng.random

    def on_start(self, recovered: Recovered) -> None:
        if not self._peers:
            return
        for _ in range(self.tokens):
            self._forward(0)

    def on_message(self, src: NodeId, message: Message) -> None:
        if isinstance(message, Token):
            self._forward(message.hops + 1)

    def _forward(self, hops: int) -> None:
        peers = self._peers
        self.out.messages.append((peers[int(self._random() * len(peers))], Token(hops)))
