"""Mailbox settings: unbounded (the default) or bounded with an overflow policy.

A mailbox is a FIFO queue (a `collections.deque`) that the actor drains one message at a
time; local delivery puts the message object itself in it, without copying or encoding.
A *bounded* mailbox holds at most ``capacity`` messages (the message being processed and
stashed messages do not count). When a message arrives at a full one, ``overflow`` decides:

- ``DROP_NEW`` (default): the arriving message becomes a dead letter (an ask fails at once
  with `MailboxFull`); the sender is not told otherwise, as befits fire and forget.
- ``DROP_OLDEST``: the oldest queued message becomes a dead letter and the new one is queued
  (for "latest value wins" feeds such as sensor readings).
- ``FAIL``: ``tell`` raises `MailboxFull` in the sender, a synchronous back-pressure signal.

System messages (stop requests, escalations, timers' own bookkeeping) are never refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["MailboxConfig", "Overflow", "UNBOUNDED"]


class Overflow(enum.Enum):
    DROP_NEW = "drop-new"
    DROP_OLDEST = "drop-oldest"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class MailboxConfig:
    """``capacity=None`` is unbounded; otherwise at least 1."""

    capacity: int | None = None
    overflow: Overflow = Overflow.DROP_NEW

    def __post_init__(self) -> None:
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {self.capacity}")


UNBOUNDED = MailboxConfig()
