"""Glue between the node and the machine's vocabulary (`tejido.mvcc.api`).

Everything the node asks the machine goes through the machine's own public interface:
commands through Raft, queries through `read` (`LeaseLeases` gives the current revision
and the lease table without reaching into the machine), watch history through
`events(start, key, range_end)`.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from tejido.core.operations import Operation
from tejido.mvcc import api
from tejido.mvcc.keyspace import StoreErrorRaised
from tejido.raft.kv import decode_outcome, encode_operation
from tejido.store.errors import NotApplied, StoreError

__all__ = [
    "check_result",
    "command",
    "expire_command",
    "machine_events",
    "machine_leases",
    "machine_query",
    "machine_revision",
]


def command(op: api.Request, client_id: int = 0, seq: int = 0) -> bytes:
    """Encode a write, stamped with this leader-or-forwarder's wall clock (the machine's
    only notion of time: session expiry)."""
    return api.encode_command(api.Command(op, client_id=client_id, seq=seq, time=time.time()))


def expire_command(leases: list[int]) -> bytes:
    return command(api.LeaseExpire(ids=list(leases)))


def check_result(data: bytes) -> api.Response:
    """Decode a machine result; a `StoreError` value becomes the `StoreError` exception."""
    try:
        result = api.decode_result(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NotApplied(f"undecodable result from the state machine: {exc}") from None
    if isinstance(result, api.StoreError):
        raise StoreError(result.message, result.code)
    return result


def machine_query(machine: Any, query: bytes) -> bytes:
    """Ask the local machine (a serializable read): `read` takes an encoded
    ``Operation(f="read", data=query)`` and returns an encoded `Outcome`."""
    if machine is None:
        raise NotApplied("the node is not started")
    outcome = decode_outcome(machine.read(encode_operation(Operation("read", data=query))))
    if outcome.type != "ok" or outcome.data is None:
        raise NotApplied(f"the state machine refused the query: {outcome.error}")
    return outcome.data


def _leases_response(machine: Any) -> api.LeaseLeasesResponse:
    result = check_result(machine_query(machine, api.encode_query(api.LeaseLeases())))
    if not isinstance(result, api.LeaseLeasesResponse):
        raise NotApplied(f"unexpected answer to LeaseLeases: {type(result).__name__}")
    return result


def machine_revision(machine: Any) -> int:
    return _leases_response(machine).header_revision


def machine_leases(machine: Any) -> dict[int, int]:
    return {lease.id: lease.ttl for lease in _leases_response(machine).leases}


def machine_events(machine: Any, start: int, key: bytes, range_end: bytes) -> list[api.Event]:
    """Applied events from revision `start` on; `StoreError(compacted)` when gone."""
    try:
        events: list[api.Event] = list(machine.events(start, key, range_end))
    except StoreErrorRaised as exc:
        raise StoreError(exc.error.message, exc.error.code) from None
    return events
