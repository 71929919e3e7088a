"""The pure core: ids, messages, clocks, errors, the protocol and storage contracts.

Nothing here does I/O, reads a clock or draws global randomness (import-linter enforces it).
"""

from tejido.core.clocks import Causality, LamportClock, VectorClock
from tejido.core.errors import (
    BadInput,
    InvariantViolation,
    LocalProtocolError,
    RemoteProtocolError,
    TejidoError,
)
from tejido.core.ids import NodeId, ProcessId, RequestId, TimerName
from tejido.core.messages import Event, Message
from tejido.core.operations import Operation, Outcome
from tejido.core.protocol import (
    Command,
    Durable,
    Env,
    Input,
    Outbox,
    Process,
    Receive,
    Start,
    TimerFired,
)
from tejido.core.storage import (
    LogAppend,
    LogCompact,
    LogTruncate,
    Put,
    Recovered,
    StorageOp,
    StorageState,
)

__all__ = [
    "BadInput",
    "Causality",
    "Command",
    "Durable",
    "Env",
    "Event",
    "Input",
    "InvariantViolation",
    "LamportClock",
    "LocalProtocolError",
    "LogAppend",
    "LogCompact",
    "LogTruncate",
    "Message",
    "NodeId",
    "Operation",
    "Outbox",
    "Outcome",
    "Process",
    "ProcessId",
    "Put",
    "Receive",
    "Recovered",
    "RemoteProtocolError",
    "RequestId",
    "Start",
    "StorageOp",
    "StorageState",
    "TejidoError",
    "TimerFired",
    "TimerName",
    "VectorClock",
]
