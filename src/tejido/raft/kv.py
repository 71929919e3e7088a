"""The application interface (`StateMachine`) and a pure key-value state machine.

Rules (paper §8 "Client interaction", thesis §6):

1. `apply` is deterministic: every replica applies the same committed commands in the same
   order and so reaches the same state and returns the same results (State Machine Safety,
   paper §5.4.3). It never reads a clock or randomness.
2. `read` never changes the state; the node calls it only once its applied index has
   reached a read index confirmed by ReadIndex or a lease (thesis §6.4).
3. ``restore(snapshot())`` reproduces the state exactly (paper §7).
4. A state machine may also offer ``apply_batch(commands, results)`` (`BatchStateMachine`):
   the same as calling `apply` on each command in order, returning the results only when
   asked for (the node asks only when a client waits for one of them). The node hands it
   every committed range at once; without it the node calls `apply` per command.

Commands and results handed to the state machine are bytes. For client `Operation`s the
node encodes the operation with msgspec (msgpack) and expects an encoded `Outcome` back;
`KeyValueStateMachine` implements that convention:

- ``read k`` -> ok with the value (None when absent);
- ``write k v`` -> ok;
- ``cas k (expected, new)`` -> ok if the value equalled `expected` and was swapped, else fail;
- ``append k v`` -> ok; the value becomes ``old + v`` (``v`` when absent); fail (no effect)
  when either is not a string, as in the checker's register model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import msgspec

from tejido.core.operations import Operation, Outcome

__all__ = [
    "BatchApply",
    "BatchStateMachine",
    "KeyValueStateMachine",
    "StateMachine",
    "batch_apply",
    "decode_outcome",
    "encode_operation",
]

_operation_decoder = msgspec.msgpack.Decoder(Operation)
_decode_operation = _operation_decoder.decode


class _ScalarWrite(msgspec.Struct, frozen=True, gc=False):
    """An encoded `Operation` decodes as this exactly when it is a write of a scalar to a
    named key (the fields, names and types of `Operation`, narrowed): the command whose
    effect `apply_batch` can take without `_apply`."""

    f: Literal["write"]
    key: str
    value: int | str | None = None


_decode_scalar_write = msgspec.msgpack.Decoder(_ScalarWrite).decode
_outcome_decoder = msgspec.msgpack.Decoder(Outcome)
_state_decoder = msgspec.msgpack.Decoder(dict[str, int | str | None])
_encoder = msgspec.msgpack.Encoder()
_encode = _encoder.encode


class StateMachine(Protocol):
    """What the application gives Raft: apply, read, snapshot and restore."""

    def apply(self, command: bytes) -> bytes:
        """Apply one committed command; return its result (rule 1)."""
        ...

    def read(self, query: bytes) -> bytes:
        """Answer a read-only query from the current state (rule 2)."""
        ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


class BatchStateMachine(StateMachine, Protocol):
    """A state machine that applies a committed range in one call (rule 4)."""

    def apply_batch(self, commands: Sequence[bytes], results: bool) -> list[bytes]:
        """Apply `commands` in order, exactly as `apply` one by one would; return their
        results when `results` is true, else an empty list."""
        ...


BatchApply = Callable[[Sequence[bytes], bool], list[bytes]]


def batch_apply(machine: StateMachine) -> BatchApply:
    """`machine.apply_batch` if it has one, else `apply` command by command (rule 4)."""
    if isinstance(machine, KeyValueStateMachine):
        return machine.apply_batch
    method: BatchApply | None = getattr(machine, "apply_batch", None)
    if method is not None:
        return method
    apply = machine.apply

    def one_by_one(commands: Sequence[bytes], results: bool) -> list[bytes]:
        if results:
            return [apply(command) for command in commands]
        for command in commands:
            apply(command)
        return []

    return one_by_one


# msgspec raises UnicodeDecodeError, not DecodeError, for a string that is not UTF-8.
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError)


def encode_operation(operation: Operation) -> bytes:
    return _encoder.encode(operation)


def decode_outcome(data: bytes) -> Outcome:
    return _outcome_decoder.decode(data)


class KeyValueStateMachine:
    """Registers keyed by string (``None`` is the key of the single-register workload)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, int | str | None] = {}

    def apply(self, command: bytes) -> bytes:
        try:
            operation = _operation_decoder.decode(command)
        except _UNDECODABLE:
            # Deterministic on every replica: an opaque command changes nothing.
            return _encoder.encode(Outcome("fail", error="not a key-value operation"))
        return _encoder.encode(self._apply(operation))

    def apply_batch(self, commands: Sequence[bytes], results: bool) -> list[bytes]:
        """Rule 4: decode every command first (any that is not an operation: one by one),
        then apply them in order; a write of a scalar to a named key, the common case, is
        stored here as `_apply` would. When no result is wanted and every command is such
        a write (each decoded on its own, so command boundaries are never in doubt), the
        values are simply stored; any other command sends the whole range down the general
        path, which gives the same state."""
        if not results:
            try:
                writes = list(map(_decode_scalar_write, commands))
            except _UNDECODABLE:  # (ValidationError included) not only such writes
                pass
            else:
                stored = self.values
                for write in writes:
                    stored[write.key] = write.value
                return []
        try:
            operations = list(map(_decode_operation, commands))
        except _UNDECODABLE:
            applied = [self.apply(command) for command in commands]
            return applied if results else []
        apply = self._apply
        if results:
            return [_encode(apply(operation)) for operation in operations]
        values: dict[str, Any] = self.values  # (the check below keeps it to scalars)
        for operation in operations:
            key = operation.key
            value = operation.value
            if operation.f == "write" and key is not None and value.__class__ is not tuple:
                values[key] = value
            else:
                apply(operation)
        return []

    def read(self, query: bytes) -> bytes:
        try:
            operation = _operation_decoder.decode(query)
        except _UNDECODABLE:
            return _encoder.encode(Outcome("fail", error="not a key-value operation"))
        if operation.f != "read":
            return _encoder.encode(Outcome("fail", error=f"not a read: {operation.f}"))
        return _encoder.encode(Outcome("ok", self.values.get(_key(operation))))

    def _apply(self, op: Operation) -> Outcome:
        key = _key(op)
        current = self.values.get(key)
        match op.f:
            case "read":
                return Outcome("ok", current)
            case "write":
                value = op.value
                if isinstance(value, tuple | list):
                    return Outcome("fail", error="write takes an int, a string or None")
                self.values[key] = value
                return Outcome("ok", value)
            case "cas":
                if not isinstance(op.value, tuple | list) or len(op.value) != 2:
                    return Outcome("fail", op.value, error="cas needs (expected, new)")
                expected, new = op.value
                if current != expected:
                    return Outcome("fail", op.value)
                self.values[key] = new
                return Outcome("ok", op.value)
            case "append":
                if not isinstance(op.value, str) or not isinstance(current, str | None):
                    return Outcome("fail", op.value, error="append needs strings")
                self.values[key] = (current or "") + op.value
                return Outcome("ok", op.value)
            case _:
                return Outcome("fail", op.value, error=f"unknown operation {op.f!r}")

    def snapshot(self) -> bytes:
        return _encoder.encode(dict(sorted(self.values.items())))

    def restore(self, data: bytes) -> None:
        self.values = dict(_state_decoder.decode(data)) if data else {}


def _key(operation: Operation) -> str:
    return "" if operation.key is None else operation.key
