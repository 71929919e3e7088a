"""The pure core: ids, messages, clocks, errors, the protocol and storage contracts.

Nothing here does I/O, reads a clock or draws global randomness (import-linter enforces it).

The names below load on first use (module ``__getattr__``, PEP 562): importing one
submodule, say `tejido.core.errors`, does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "BadInput": "tejido.core.errors",
    "Causality": "tejido.core.clocks",
    "Command": "tejido.core.protocol",
    "Durable": "tejido.core.protocol",
    "Env": "tejido.core.protocol",
    "Event": "tejido.core.messages",
    "Input": "tejido.core.protocol",
    "InvariantViolation": "tejido.core.errors",
    "LamportClock": "tejido.core.clocks",
    "LocalProtocolError": "tejido.core.errors",
    "LogAppend": "tejido.core.storage",
    "LogCompact": "tejido.core.storage",
    "LogTruncate": "tejido.core.storage",
    "Message": "tejido.core.messages",
    "NodeId": "tejido.core.ids",
    "Operation": "tejido.core.operations",
    "Outbox": "tejido.core.protocol",
    "Outcome": "tejido.core.operations",
    "Process": "tejido.core.protocol",
    "ProcessId": "tejido.core.ids",
    "Put": "tejido.core.storage",
    "Receive": "tejido.core.protocol",
    "Recovered": "tejido.core.storage",
    "RemoteProtocolError": "tejido.core.errors",
    "RequestId": "tejido.core.ids",
    "Start": "tejido.core.protocol",
    "StorageOp": "tejido.core.storage",
    "StorageState": "tejido.core.storage",
    "TejidoError": "tejido.core.errors",
    "TimerFired": "tejido.core.protocol",
    "TimerName": "tejido.core.ids",
    "VectorClock": "tejido.core.clocks",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tejido.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
