"""The RPC wire: one msgpack frame per call, reply, stream item, credit or cancel.

Every frame is a small array-like msgspec Struct tagged by an integer (its first element),
so a call costs one encode on each side and the receiving side tells the kinds apart with
one decode of a tagged union. Payloads (arguments, results, stream items) are embedded in
the frame as msgpack and kept as `msgspec.Raw` on decode; the receiver then decodes them
with the *method's* types (the `MethodSpec.args_type` Struct, the result type, the stream
item type), which is where validation happens. Nothing is ever unpickled.

Rules of the protocol (both directions share one connection, calls are multiplexed by id):

1. The client opens a call with `Call` (target, relative timeout in seconds, metadata,
   stream window, arguments). Call ids are chosen by the client, are unique among its
   calls in flight, and are > 0; id 0 marks a oneway call (no answer).
   The target names what is called. The first call to a (service, method, object id) on a
   connection spells it out as a `Target`, whose ``slot`` (1 to `MAX_SLOTS`, chosen by the
   client) binds that number to it for the rest of the connection; later calls send just
   the slot number, so a call frame does not carry (nor the server decode and look up)
   three strings. Slot 0 binds nothing (a client that ran out of slots spells every call
   out). A call naming a slot the connection never bound fails with ``protocol``.
2. A unary or client-streaming call ends with exactly one `Reply` or `Failure`. A
   server-streaming call sends any number of `Item` frames and ends with `End` or
   `Failure`.
3. Streams are flow-controlled by credit, counted in items: the sender of a stream starts
   with `window` credits (the server's window comes in `Call.window`, the client's is
   `CLIENT_STREAM_WINDOW`), spends one per `Item`, and waits for `Credit` frames from the
   receiver, which grants credit as its consumer takes items. A receiver that gets more
   items than it granted treats it as a protocol violation.
4. `Cancel` from the client ends a call early; the server cancels the implementation and
   sends nothing more for that id (a reply already in flight may still arrive and is
   ignored). A client stream ends with `End` from the client.
5. A frame that cannot be decoded is a protocol violation: the server sends `Goaway` with
   the reason and closes that connection; other connections are unaffected.
6. A `ClientBatch` or `ServerBatch` carries several frames in one (senders close a batch
   at about `BATCH_BYTES`; a batch is never inside another); the receiver handles them in order
   exactly as if they had arrived one by one. Senders batch what one loop iteration
   produces (calls from many tasks, the replies to one read), which saves a frame header,
   a decode call and a slice per frame; `batch_frame` builds one from frames already
   encoded, without encoding them again.

Timeouts travel as *relative* seconds rather than absolute times so that clock skew
between hosts does not matter (the same choice as gRPC's ``grpc-timeout`` header, see
https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "BATCH_BYTES",
    "ClientBatch",
    "ServerBatch",
    "batch_frame",
    "batched",
    "CLIENT_STREAM_WINDOW",
    "SERVER_STREAM_WINDOW",
    "Call",
    "Cancel",
    "ClientFrame",
    "Code",
    "Credit",
    "End",
    "Failure",
    "Goaway",
    "Item",
    "MAX_SLOTS",
    "Reply",
    "ServerFrame",
    "Target",
    "encoder",
    "from_client",
    "from_server",
]

#: Items a client may send on a client stream before the server grants more.
CLIENT_STREAM_WINDOW: Final = 64
#: Items a server may send on a server stream before the client grants more (default).
SERVER_STREAM_WINDOW: Final = 64
#: Method slots a connection may bind (bounds the server's per-connection table).
MAX_SLOTS: Final = 4096

# Tags (first element of every frame).
CALL: Final = 0
CANCEL: Final = 1
ITEM: Final = 2
END: Final = 3
CREDIT: Final = 4
REPLY: Final = 5
FAILURE: Final = 6
GOAWAY: Final = 7
BATCH: Final = 8


class Target(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What a call names, spelled out; binds `slot` to it unless `slot` is 0 (rule 1)."""

    slot: int
    service: str
    method: str
    object: str


class Call(msgspec.Struct, array_like=True, tag=CALL, gc=False):
    """Client -> server: open a call of `target` (a `Target`, or a slot bound earlier)."""

    id: int
    target: int | Target
    timeout: float | None
    metadata: dict[str, str] | None
    window: int
    args: msgspec.Raw


class Cancel(msgspec.Struct, array_like=True, tag=CANCEL, gc=False):
    """Client -> server: abandon call `id`."""

    id: int


class Item(msgspec.Struct, array_like=True, tag=ITEM, gc=False):
    """Either direction: one stream item of call `id`."""

    id: int
    value: msgspec.Raw


class End(msgspec.Struct, array_like=True, tag=END, gc=False):
    """Either direction: the stream of call `id` is complete."""

    id: int


class Credit(msgspec.Struct, array_like=True, tag=CREDIT, gc=False):
    """Either direction: the receiver of call `id`'s stream takes `count` more items."""

    id: int
    count: int


class Reply(msgspec.Struct, array_like=True, tag=REPLY, gc=False):
    """Server -> client: call `id` returned `value`."""

    id: int
    value: msgspec.Raw


class Failure(msgspec.Struct, array_like=True, tag=FAILURE, gc=False):
    """Server -> client: call `id` failed; `code` says who decided (see `Code`)."""

    id: int
    code: str
    error_type: str
    message: str
    traceback: str


class Goaway(msgspec.Struct, array_like=True, tag=GOAWAY, gc=False):
    """Server -> client: the connection is being closed, and why."""

    reason: str


class Code:
    """Values of `Failure.code`: which kind of error the caller gets."""

    SERVICE: Final = "service"  #: a declared ServiceError; `type` is its class name
    REMOTE: Final = "remote"  #: anything else the implementation raised
    DEADLINE: Final = "deadline"
    CANCELLED: Final = "cancelled"
    UNAVAILABLE: Final = "unavailable"
    UNKNOWN: Final = "unknown"  #: unknown service, object or method
    BAD_ARGUMENTS: Final = "bad_arguments"
    PROTOCOL: Final = "protocol"
    DENIED: Final = "denied"  #: an interceptor refused the call


ClientFrame = Call | Cancel | Item | End | Credit
ServerFrame = Reply | Failure | Item | End | Credit | Goaway

#: A sender starts a new batch rather than let one grow past this many bytes.
BATCH_BYTES: Final = 64 * 1024


class ClientBatch(msgspec.Struct, array_like=True, tag=BATCH, gc=False):
    """Client -> server: several frames, handled in order (rule 6)."""

    frames: list[ClientFrame]


class ServerBatch(msgspec.Struct, array_like=True, tag=BATCH, gc=False):
    """Server -> client: several frames, handled in order (rule 6)."""

    frames: list[ServerFrame]


_BATCH_TAG: Final = bytes([0x92, BATCH])  # a 2-element array, then the tag


def batch_frame(frames: list[bytes]) -> bytes:
    """The batch (either direction) of `frames`, each already an encoded frame (rule 6)."""
    count = len(frames)
    if count < 16:
        head = bytes([0x90 | count])
    elif count < 0x10000:
        head = b"\xdc" + count.to_bytes(2, "big")
    else:
        head = b"\xdd" + count.to_bytes(4, "big")
    return b"".join((_BATCH_TAG, head, *frames))


def batched(frames: list[bytes]) -> list[bytes]:
    """`frames` (already encoded) as few payloads: batches of about `BATCH_BYTES` at most."""
    if len(frames) == 1:
        return frames
    out: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for frame in frames:
        if group and size + len(frame) > BATCH_BYTES:
            out.append(batch_frame(group) if len(group) > 1 else group[0])
            group = []
            size = 0
        group.append(frame)
        size += len(frame)
    if group:
        out.append(batch_frame(group) if len(group) > 1 else group[0])
    return out


#: One shared encoder: frames are encoded from plain tuples (tag first) on the hot path,
#: which msgpack lays out exactly like the array-like Structs above.
encoder: Final = msgspec.msgpack.Encoder()
#: Decodes frames a client sends (used by servers).
from_client: Final = msgspec.msgpack.Decoder(ClientFrame | ClientBatch)
#: Decodes frames a server sends (used by clients).
from_server: Final = msgspec.msgpack.Decoder(ServerFrame | ServerBatch)
