"""The pure protocol contract: a node's logic as a state machine with no I/O.

A `Process` is one node's instance of a protocol. Runtimes (the simulator, the asyncio
runtime) feed it inputs and carry out the outputs it leaves in its `Outbox`.

Inputs (local; distinct from the protocol's wire messages)::

    Start(recovered)        the node (re)starts with what its storage held
    Receive(src, message)   a wire message from another node
    TimerFired(name)        a timer the process set has expired (on the node's own clock)
    Command(request, op)    a client asks for something; answer with `reply`
    Durable(token)          every storage operation emitted before `sync()` returned
                            `token` is now durable
    on_idle()               the batch that asked for it (`request_idle`) has been carried
                            out: its messages have left; work put off until then runs now

Outputs (collected in the outbox until the runtime takes them with `ready()`)::

    messages    (dst, message) pairs, sent in order; no delivery guarantee
    storage     storage operations, applied in order (see tejido.core.storage)
    syncs       sync tokens; each is answered by Durable(token), in order
    timers      set / cancel by name; setting a name again replaces the timer
    replies     (request, outcome) answers to commands
    events      reported events for traces, diagrams and invariant checkers
    idle        call `on_idle` once this batch is carried out (the simulator at once, the
                asyncio runtime in a later loop callback, after any outputs of inputs that
                arrived in between have left)

Ordering contract: a message leaves as soon as the runtime takes the batch, regardless of
pending syncs. A message that must not leave before some state is durable (a vote, an
acknowledgement) is sent from `on_durable`, never alongside the write. This is the only
rule a runtime needs to know; protocols state which of their messages depend on it.

Time and randomness come from outside: `Env.clock` reads the node's local clock and
`Env.rng` is a generator the runtime seeds. Nothing in a protocol may read the wall clock,
draw from the global `random`, or iterate a `set` of strings in an order that matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol
from typing import TypeVar

from tejido.core.errors import LocalProtocolError
from tejido.core.ids import NodeId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.storage import LogAppend, LogCompact, LogTruncate, Put, Recovered, StorageOp

__all__ = [
    "Clock",
    "Command",
    "Durable",
    "Env",
    "Input",
    "Outbox",
    "Process",
    "Receive",
    "Rng",
    "Start",
    "TimerFired",
]

T = TypeVar("T")


class Rng(TypingProtocol):
    """The part of `random.Random` a protocol may use; the runtime seeds it per node."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...


class Clock(TypingProtocol):
    """Reads the node's local clock in seconds. It may drift from other nodes' clocks."""

    def __call__(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Env:
    """Everything a process learns from its runtime at construction."""

    node_id: NodeId
    nodes: tuple[NodeId, ...]
    """Every member of the cluster, this node included, in increasing order."""
    rng: Rng
    clock: Clock

    @property
    def peers(self) -> tuple[NodeId, ...]:
        return tuple(n for n in self.nodes if n != self.node_id)


# Inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    recovered: Recovered


@dataclass(frozen=True, slots=True)
class Receive:
    src: NodeId
    message: Message


@dataclass(frozen=True, slots=True)
class TimerFired:
    name: TimerName


@dataclass(frozen=True, slots=True)
class Command:
    request: RequestId
    operation: Operation


@dataclass(frozen=True, slots=True)
class Durable:
    token: int


Input = Start | Receive | TimerFired | Command | Durable


# Outputs -------------------------------------------------------------------------------


@dataclass(slots=True)
class Outbox:
    """One batch of outputs; see the module docstring for how a runtime carries it out."""

    messages: list[tuple[NodeId, Message]] = field(default_factory=list)
    storage: list[StorageOp] = field(default_factory=list)
    syncs: list[int] = field(default_factory=list)
    timers: list[tuple[TimerName, float | None]] = field(default_factory=list)
    """(name, delay in seconds on the local clock) to set, or (name, None) to cancel."""
    replies: list[tuple[RequestId, Outcome]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    idle: bool = False
    """Call `Process.on_idle` once this batch is carried out."""

    def __bool__(self) -> bool:
        return bool(
            self.messages
            or self.storage
            or self.syncs
            or self.timers
            or self.replies
            or self.events
            or self.idle
        )


class Process:
    """Base class for one node's protocol instance.

    Subclasses implement the ``on_*`` hooks and call the output helpers (`send`, `append`,
    `sync`, `set_timer`, `reply`, `report`). A runtime calls `step` (or, on its hot path,
    the hooks directly) and then `ready()` to take the outputs.
    """

    __slots__ = ("_next_sync_token", "env", "out")

    def __init__(self, env: Env) -> None:
        self.env = env
        self.out = Outbox()
        self._next_sync_token = 1

    # The verbs a runtime uses ------------------------------------------------------------
    @property
    def node_id(self) -> NodeId:
        return self.env.node_id

    def step(self, event: Input) -> None:
        match event:
            case Receive(src, message):
                self.on_message(src, message)
            case TimerFired(name):
                self.on_timer(name)
            case Command(request, operation):
                self.on_command(request, operation)
            case Durable(token):
                self.on_durable(token)
            case Start(recovered):
                self.on_start(recovered)

    def ready(self) -> Outbox:
        """Take the outputs produced since the last call (the outbox starts empty again)."""
        out = self.out
        self.out = Outbox()
        return out

    # Hooks for subclasses -----------------------------------------------------------------
    def on_start(self, recovered: Recovered) -> None:
        """The node starts, for the first time or after a crash; `recovered` is its disk."""

    def on_message(self, src: NodeId, message: Message) -> None:
        raise LocalProtocolError(f"{type(self).__name__} does not accept messages")

    def on_timer(self, name: TimerName) -> None:
        raise LocalProtocolError(f"{type(self).__name__} set no timer named {name!r}")

    def on_command(self, request: RequestId, operation: Operation) -> None:
        self.reply(request, Outcome("fail", error=f"{type(self).__name__} takes no commands"))

    def on_durable(self, token: int) -> None:
        """Everything emitted before `sync()` returned `token` is durable."""

    def on_idle(self) -> None:
        """The batch that called `request_idle` has been carried out (see the module
        docstring); the default does nothing."""

    # Output helpers ------------------------------------------------------------------------
    def send(self, dst: NodeId, message: Message) -> None:
        self.out.messages.append((dst, message))

    def broadcast(self, message: Message) -> None:
        """Send to every other member of the cluster."""
        messages = self.out.messages
        for peer in self.env.nodes:
            if peer != self.env.node_id:
                messages.append((peer, message))

    def append(self, *records: bytes) -> None:
        self.out.storage.append(LogAppend(records))

    def truncate_log(self, from_index: int) -> None:
        self.out.storage.append(LogTruncate(from_index))

    def compact_log(self, before_index: int) -> None:
        self.out.storage.append(LogCompact(before_index))

    def put(self, key: str, value: bytes | None) -> None:
        self.out.storage.append(Put(key, value))

    def sync(self) -> int:
        """Ask for everything emitted so far to become durable; `on_durable(token)` follows."""
        token = self._next_sync_token
        self._next_sync_token = token + 1
        self.out.syncs.append(token)
        return token

    def set_timer(self, name: TimerName | str, delay_s: float) -> None:
        if delay_s < 0:
            raise LocalProtocolError(f"timer {name!r}: negative delay {delay_s}")
        self.out.timers.append((TimerName(name), delay_s))

    def cancel_timer(self, name: TimerName | str) -> None:
        self.out.timers.append((TimerName(name), None))

    def reply(self, request: RequestId, outcome: Outcome) -> None:
        self.out.replies.append((request, outcome))

    def request_idle(self) -> None:
        """Ask for `on_idle` once this batch's outputs are carried out."""
        self.out.idle = True

    def report(self, event: Event) -> None:
        self.out.events.append(event)

    def now(self) -> float:
        """The node's local clock, in seconds."""
        return self.env.clock()
