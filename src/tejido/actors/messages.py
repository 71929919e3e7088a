"""Messages the actor system itself produces: `Terminated` and dead-letter records.

- `Terminated(ref, cause)` reaches every watcher of an actor once, after the actor's
  ``stopped`` hook ran. ``cause`` says why: ``STOPPED`` (asked to stop, or its parent
  stopped), ``FAILED`` (its supervisor stopped it after a failure) or ``NODE_LOST``
  (reserved for remote references: the node hosting the actor is gone). The rule follows
  Akka's death watch (doc.akka.io, "Lifecycle Monitoring aka DeathWatch"): watching an actor
  that is already dead yields `Terminated` at once, and it is sent exactly once per watcher.
- `DeadLetter(message, recipient, reason)`: a message that was not delivered, kept by the
  system (`ActorSystem.dead_letters`, the most recent ones) and logged at debug level on
  the ``tejido.actors`` logger.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from tejido.actors.ref import ActorPath, ActorRef

__all__ = ["DeadLetter", "DeadLetterReason", "Terminated", "TerminationCause"]


class TerminationCause(enum.Enum):
    STOPPED = "stopped"
    FAILED = "failed"
    NODE_LOST = "node-lost"


@dataclass(frozen=True, slots=True)
class Terminated:
    """The watched actor `ref` has stopped, for `cause`."""

    ref: ActorRef[Any]
    cause: TerminationCause = TerminationCause.STOPPED


class DeadLetterReason(enum.Enum):
    STOPPED = "recipient stopped"
    STOPPING = "recipient stopping"
    MAILBOX_FULL = "mailbox full"
    UNHANDLED = "unhandled"
    NO_ROUTEES = "no routees"
    NODE_UNREACHABLE = "node unreachable"
    UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that was not delivered to `recipient`, and why."""

    message: object
    recipient: ActorPath
    reason: DeadLetterReason
