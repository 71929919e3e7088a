"""Test helper: drive a `StoreStateMachine` through the same encoded envelopes the Raft
node hands it (``Operation(f="store"|"read", data=...)``) and decode the answers."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from tejido.core.operations import Operation, Outcome
from tejido.mvcc.api import (
    STORE_OPERATION,
    Command,
    Query,
    Request,
    Result,
    StoreError,
    decode_result,
    encode_command,
    encode_query,
)
from tejido.mvcc.machine import StoreStateMachine

_encode = msgspec.msgpack.Encoder().encode
_decode_outcome = msgspec.msgpack.Decoder(Outcome).decode

T = TypeVar("T")


def command_bytes(op: Request, client_id: int = 0, seq: int = 0, time: float = 0.0) -> bytes:
    command = Command(op, client_id=client_id, seq=seq, time=time)
    return _encode(Operation(f=STORE_OPERATION, data=encode_command(command)))


def query_bytes(query: Query) -> bytes:
    return _encode(Operation(f="read", data=encode_query(query)))


def result_of(answer: bytes) -> Result:
    outcome = _decode_outcome(answer)
    assert outcome.type == "ok", outcome
    assert outcome.data is not None
    return decode_result(outcome.data)


class Driver:
    """One machine plus typed shortcuts."""

    def __init__(self, machine: StoreStateMachine | None = None) -> None:
        self.machine = machine or StoreStateMachine()
        self.sent: list[bytes] = []

    def write(self, op: Request, client_id: int = 0, seq: int = 0, time: float = 0.0) -> Result:
        data = command_bytes(op, client_id, seq, time)
        self.sent.append(data)
        return result_of(self.machine.apply(data))

    def query(self, query: Query) -> Result:
        return result_of(self.machine.read(query_bytes(query)))

    def ok(self, op: Request, kind: type[T], **kw: float) -> T:
        """`write` expecting a response of type `kind`."""
        result = self.write(op, **kw)  # type: ignore[arg-type]
        assert isinstance(result, kind), result
        return result

    def read_ok(self, query: Query, kind: type[T]) -> T:
        result = self.query(query)
        assert isinstance(result, kind), result
        return result

    def error(self, op: Request, code: str, **kw: float) -> StoreError:
        result = self.write(op, **kw)  # type: ignore[arg-type]
        assert isinstance(result, StoreError), result
        assert result.code == code, result
        return result
