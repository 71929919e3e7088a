"""Exactly-once client sessions (Raft dissertation §6.3, "Implementing linearizable
semantics"): the state machine remembers, per client session, the last request number it
applied and that request's response, so a retried request is answered from the record
instead of being applied twice.

Rules:

1. `OpenSession` opens a session; its id is a replicated counter (deterministic).
2. A command with ``client_id``/``seq``: an unknown or expired session -> the
   ``session_expired`` error (the client must open a new session and knows the request's
   outcome is unknown); ``seq`` equal to the last applied -> the recorded response;
   ``seq`` below it -> ``bad_request`` (only the last response is kept: a client has one
   request in flight per session, as the dissertation's clients do); otherwise the command
   is applied and its response recorded.
3. Time is the newest ``Command.time`` the leader stamped (the machine's only clock, never
   going backwards). Every command with a session refreshes its last activity to that
   time; sessions idle for longer than the session TTL are expired when a command
   advances time, in order of last activity, identically on every replica (§6.3: "the
   servers must agree on when sessions expire").
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DEFAULT_SESSION_TTL_S", "Session", "Sessions"]

DEFAULT_SESSION_TTL_S = 300.0


class Session:
    __slots__ = ("last_result", "last_seq", "last_time")

    def __init__(self, last_time: float, last_seq: int = 0, last_result: bytes = b"") -> None:
        self.last_time = last_time
        self.last_seq = last_seq
        self.last_result = last_result


class Sessions:
    """Sessions in order of last activity (rule 3: activity times only grow)."""

    __slots__ = ("by_id", "next_id", "now", "ttl_s")

    def __init__(self, ttl_s: float = DEFAULT_SESSION_TTL_S) -> None:
        self.by_id: OrderedDict[int, Session] = OrderedDict()
        self.next_id = 1
        self.now = 0.0
        self.ttl_s = ttl_s

    def advance(self, time: float) -> None:
        """Rule 3: move the clock forward and expire idle sessions."""
        if time <= self.now:
            return
        self.now = time
        horizon = time - self.ttl_s
        while self.by_id:
            oldest_id = next(iter(self.by_id))
            if self.by_id[oldest_id].last_time >= horizon:
                break
            del self.by_id[oldest_id]

    def open(self) -> int:
        client_id = self.next_id
        self.next_id += 1
        self.by_id[client_id] = Session(self.now)
        return client_id

    def touch(self, client_id: int) -> Session | None:
        session = self.by_id.get(client_id)
        if session is not None:
            session.last_time = self.now
            self.by_id.move_to_end(client_id)
        return session
