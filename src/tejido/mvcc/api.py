"""The store's command, query and result vocabulary: typed msgspec Structs mirroring etcd's
v3 API (``etcdserverpb`` / ``mvccpb``: KV, Txn, Lease), plus exactly-once sessions.

How the node wraps them (the contract between `tejido.mvcc` and the store node):

- A write (anything that may change the state: put, delete range, txn, compaction, lease
  grant / revoke / expire, session open / close) travels through the Raft log as
  ``Operation(f="store", data=encode_command(Command(op, client_id, seq, time)))``.
  The leader stamps ``time`` (seconds, any epoch, never decreasing in practice): it is the
  ONLY notion of time the state machine sees, so every replica computes the same state.
- A linearizable read travels as ``Operation(f="read", data=encode_query(request))`` where
  `request` is a `RangeRequest`, `LeaseTimeToLive` or `LeaseLeases`; the node answers it
  with ``machine.read(...)`` once its read index is applied (ReadIndex / lease read).
  A serializable read is the same call made directly on the local machine.
- Every result comes back as ``Outcome(type="ok", data=encode_result(response))``: the
  Raft outcome is ``ok`` (the command was applied, deterministically, on every replica) and
  ``data`` holds either the typed response or a `StoreError` (``decode_result`` gives
  either). ``Outcome(type="fail")`` is reserved for envelopes the machine cannot decode (and the
  register workload's failed cas/append, see `tejido.mvcc.machine`).

Every response carries ``header_revision``: the store revision after the operation (etcd's
``ResponseHeader.revision``); the node adds cluster id, member id and term itself.

Rules (etcd docs, "API reference" and "KV API guarantees", etcd.io/docs/v3.5/learning/api/):

1. A key range is ``[key, range_end)``; ``range_end == b""`` means the single key `key`;
   ``range_end == b"\\0"`` means every key ``>= key``; ``prefix_end(p)`` gives the range end
   of the prefix `p` (``key=b"\\0", range_end=b"\\0"`` is every key).
2. Revision 0 in a `RangeRequest` means "the current revision".
3. Limits: a request over `MAX_REQUEST_BYTES` (1.5 MiB, etcd's ``--max-request-bytes``
   default) is refused, and a transaction with more than `MAX_TXN_OPS` (128, etcd's
   ``--max-txn-ops`` default) operations in one branch.
4. Errors are values, never exceptions: `StoreError(code, message)` with a code from
   `ErrorCode` and a message naming what was wrong.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_TXN_DEPTH",
    "MAX_TXN_OPS",
    "STORE_OPERATION",
    "Command",
    "CompactionRequest",
    "CompactionResponse",
    "Compare",
    "CompareResult",
    "CompareTarget",
    "CloseSession",
    "CloseSessionResponse",
    "DeleteRangeRequest",
    "DeleteRangeResponse",
    "ErrorCode",
    "Event",
    "EventType",
    "KeyValue",
    "LeaseExpire",
    "LeaseExpireResponse",
    "LeaseGrant",
    "LeaseGrantResponse",
    "LeaseLeases",
    "LeaseLeasesResponse",
    "LeaseRevoke",
    "LeaseRevokeResponse",
    "LeaseStatus",
    "LeaseTimeToLive",
    "LeaseTimeToLiveResponse",
    "OpenSession",
    "OpenSessionResponse",
    "PutRequest",
    "PutResponse",
    "Query",
    "RangeRequest",
    "RangeResponse",
    "Request",
    "RequestOp",
    "Response",
    "ResponseOp",
    "Result",
    "StoreError",
    "TxnRequest",
    "TxnResponse",
    "decode_command",
    "decode_query",
    "decode_result",
    "encode_command",
    "encode_query",
    "encode_result",
    "prefix_end",
]

MAX_REQUEST_BYTES = 1536 * 1024
"""1.5 MiB: etcd's default ``--max-request-bytes``; applies to an encoded command/query."""
MAX_TXN_OPS = 128
"""etcd's default ``--max-txn-ops``: operations per transaction branch (and compares)."""
MAX_TXN_DEPTH = 32
"""Nested transactions deeper than this are refused (etcd sets no documented bound; ours
keeps a hostile request from exhausting the stack, identically on every replica)."""
MAX_KEY_BYTES = MAX_REQUEST_BYTES
"""A key alone may use the whole request budget (etcd has no separate key limit)."""
STORE_OPERATION = "store"
"""The `Operation.f` of a store write; ``"read"`` is a linearizable store query."""

EventType = Literal["PUT", "DELETE"]
CompareTarget = Literal["VALUE", "VERSION", "CREATE", "MOD", "LEASE"]
CompareResult = Literal["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]
ErrorCode = Literal[
    "compacted",
    "future_revision",
    "lease_not_found",
    "lease_exists",
    "too_many_ops",
    "duplicate_key_in_txn",
    "key_too_large",
    "value_too_large",
    "request_too_large",
    "empty_key",
    "bad_request",
    "session_expired",
]


# ---------------------------------------------------------------- data (mvccpb)


class KeyValue(msgspec.Struct, frozen=True, gc=False):
    """mvccpb.KeyValue: a key's value at one revision. ``version`` counts the puts since
    the key's generation began (1 after its creation); a deleted key has no KeyValue."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes = b""
    lease: int = 0


class Event(msgspec.Struct, frozen=True, gc=False):
    """mvccpb.Event. For a DELETE, ``kv`` holds the key and the deletion's revision as its
    ``mod_revision`` (version 0, empty value), as etcd reports it."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


class LeaseStatus(msgspec.Struct, frozen=True, gc=False):
    """A lease as the machine knows it: its id and granted TTL (seconds)."""

    id: int
    ttl: int


# ---------------------------------------------------------------- requests


class _Tagged(msgspec.Struct, frozen=True, gc=False, tag=True, omit_defaults=True):
    """Base of every request/response: a tagged union decodes with one Decoder."""


class RangeRequest(_Tagged, frozen=True, tag="range"):
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    keys_only: bool = False
    count_only: bool = False


class PutRequest(_Tagged, frozen=True, tag="put"):
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    """Keep the current value (error bad_request when the key does not exist)."""
    ignore_lease: bool = False
    """Keep the current lease (error bad_request when the key does not exist)."""


class DeleteRangeRequest(_Tagged, frozen=True, tag="delete_range"):
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


class Compare(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """etcdserverpb.Compare: ``target`` of every key in [key, range_end) compared with the
    given value by ``result``. A missing key has version, create and mod revision 0 and
    lease 0; a VALUE compare on a missing key is false (etcd's behaviour)."""

    key: bytes
    target: CompareTarget
    result: CompareResult = "EQUAL"
    range_end: bytes = b""
    value: bytes = b""
    version: int = 0
    create_revision: int = 0
    mod_revision: int = 0
    lease: int = 0


class TxnRequest(_Tagged, frozen=True, tag="txn"):
    """If every compare holds, apply `success` in order, else `failure`; one revision.
    Nested transactions are allowed (etcd 3.3+); no key may be put twice in one txn."""

    compare: list[Compare] = []
    success: list[RequestOp] = []
    failure: list[RequestOp] = []


class CompactionRequest(_Tagged, frozen=True, tag="compact"):
    revision: int


class LeaseGrant(_Tagged, frozen=True, tag="lease_grant"):
    ttl: int
    id: int = 0
    """0: the machine picks one (deterministically)."""


class LeaseRevoke(_Tagged, frozen=True, tag="lease_revoke"):
    id: int


class LeaseExpire(_Tagged, frozen=True, tag="lease_expire"):
    """Proposed by the leader's lessor when leases ran out; same effect as revoking each."""

    ids: list[int]


class LeaseTimeToLive(_Tagged, frozen=True, tag="lease_ttl"):
    id: int
    keys: bool = False


class LeaseLeases(_Tagged, frozen=True, tag="lease_leases"):
    pass


class OpenSession(_Tagged, frozen=True, tag="open_session"):
    """Open an exactly-once session (Raft thesis §6.3); the response names its client id."""


class CloseSession(_Tagged, frozen=True, tag="close_session"):
    client_id: int


RequestOp = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest
"""What a transaction branch may hold (etcdserverpb.RequestOp)."""

Request = (
    RangeRequest
    | PutRequest
    | DeleteRangeRequest
    | TxnRequest
    | CompactionRequest
    | LeaseGrant
    | LeaseRevoke
    | LeaseExpire
    | LeaseTimeToLive
    | LeaseLeases
    | OpenSession
    | CloseSession
)
"""Anything a `Command` may carry."""

Query = RangeRequest | LeaseTimeToLive | LeaseLeases
"""What a read (``Operation(f="read")``) may carry."""


class Command(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A write through the log. ``client_id``/``seq`` (both > 0) make it exactly-once in
    that session; ``time`` is the leader's clock in seconds when it proposed it."""

    op: Request
    client_id: int = 0
    seq: int = 0
    time: float = 0.0


# ---------------------------------------------------------------- responses


class RangeResponse(_Tagged, frozen=True, tag="range_response"):
    header_revision: int
    kvs: list[KeyValue] = []
    more: bool = False
    count: int = 0


class PutResponse(_Tagged, frozen=True, tag="put_response"):
    header_revision: int
    prev_kv: KeyValue | None = None


class DeleteRangeResponse(_Tagged, frozen=True, tag="delete_range_response"):
    header_revision: int
    deleted: int = 0
    prev_kvs: list[KeyValue] = []


class TxnResponse(_Tagged, frozen=True, tag="txn_response"):
    header_revision: int
    succeeded: bool = False
    responses: list[ResponseOp] = []


class CompactionResponse(_Tagged, frozen=True, tag="compact_response"):
    header_revision: int


class LeaseGrantResponse(_Tagged, frozen=True, tag="lease_grant_response"):
    header_revision: int
    id: int
    ttl: int


class LeaseRevokeResponse(_Tagged, frozen=True, tag="lease_revoke_response"):
    header_revision: int


class LeaseExpireResponse(_Tagged, frozen=True, tag="lease_expire_response"):
    header_revision: int
    expired: list[int] = []
    """The ids that existed and are now gone (others had already been revoked)."""


class LeaseTimeToLiveResponse(_Tagged, frozen=True, tag="lease_ttl_response"):
    """``granted_ttl`` only: the remaining TTL is the node's lessor's business."""

    header_revision: int
    id: int
    granted_ttl: int
    keys: list[bytes] = []


class LeaseLeasesResponse(_Tagged, frozen=True, tag="lease_leases_response"):
    header_revision: int
    leases: list[LeaseStatus] = []


class OpenSessionResponse(_Tagged, frozen=True, tag="open_session_response"):
    header_revision: int
    client_id: int


class CloseSessionResponse(_Tagged, frozen=True, tag="close_session_response"):
    header_revision: int


class StoreError(_Tagged, frozen=True, tag="error"):
    """A refused request: nothing changed. ``code`` says what kind, ``message`` what."""

    code: ErrorCode
    message: str
    header_revision: int = 0


ResponseOp = RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse

Response = (
    RangeResponse
    | PutResponse
    | DeleteRangeResponse
    | TxnResponse
    | CompactionResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
    | LeaseExpireResponse
    | LeaseTimeToLiveResponse
    | LeaseLeasesResponse
    | OpenSessionResponse
    | CloseSessionResponse
)

Result = Response | StoreError
"""What `decode_result` gives."""


# ---------------------------------------------------------------- helpers

_encoder = msgspec.msgpack.Encoder()
_command_decoder = msgspec.msgpack.Decoder(Command)
_query_decoder = msgspec.msgpack.Decoder(Query)
_result_decoder = msgspec.msgpack.Decoder(Result)


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(data: bytes) -> Command:
    """Raises msgspec.DecodeError (or ValidationError) on malformed input."""
    return _command_decoder.decode(data)


def encode_query(query: Query) -> bytes:
    return _encoder.encode(query)


def decode_query(data: bytes) -> Query:
    result: Query = _query_decoder.decode(data)
    return result


def encode_result(result: Result) -> bytes:
    return _encoder.encode(result)


def decode_result(data: bytes) -> Result:
    result: Result = _result_decoder.decode(data)
    return result


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with `prefix` (etcd's
    ``clientv3.GetPrefixRangeEnd``): drop trailing 0xff bytes, then add one to the last
    byte; an empty or all-0xff prefix gives ``b"\\0"`` (every key >= prefix)."""
    end = bytearray(prefix)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return b"\0"
    end[-1] += 1
    return bytes(end)
