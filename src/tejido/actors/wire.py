"""The frames actor systems exchange over ``tejido.net`` connections (purpose ``actors``).

Every frame is one msgspec Struct of the `Frame` union, encoded as a msgpack array with a
small integer tag (``array_like``: no field names on the wire). Two families:

- **membership** (`tejido.actors.cluster`): `Join` (the first frame on every link: who
  dials, where it listens, which incarnation), `Heartbeat` (sent every
  ``heartbeat_s``; it carries the sender's view of the members so that a new node learns
  the others' addresses), `Leave` / `LeaveDone` (a graceful exit) and `Quarantined` (the
  receiver declared this incarnation lost and will not talk to it again).
- **messaging** (`tejido.actors.remote`): `Tell`, `Ask` / `Reply` / `Fail`, `Watch` /
  `Unwatch`, `Spawn`, `StopActor`, `Find`, and for at-least-once delivery `Ack`.

User messages travel as a `Payload`: the name their type was registered under (see
`tejido.actors.remote.TypeRegistry`) and its msgpack bytes (`msgspec.Raw`, decoded by the
receiver against the registered type; nothing is ever unpickled). An actor reference
inside a message travels as a `RefData`.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "Ack",
    "Ask",
    "Fail",
    "Find",
    "Frame",
    "Heartbeat",
    "Join",
    "Leave",
    "LeaveDone",
    "Payload",
    "Quarantined",
    "RefData",
    "Reply",
    "Spawn",
    "StopActor",
    "Tell",
    "Unwatch",
    "Watch",
    "decode_frame",
    "encode_frame",
]


class RefData(msgspec.Struct, frozen=True, array_like=True):
    """An actor reference on the wire: node name, system, path elements, incarnation uid."""

    node: str
    system: str
    elements: tuple[str, ...]
    uid: int


class Payload(msgspec.Struct, frozen=True, array_like=True):
    """A user value: its registered type name and its msgpack encoding."""

    type: str
    body: msgspec.Raw


class MemberInfo(msgspec.Struct, frozen=True, array_like=True):
    node: str
    address: str
    incarnation: int


# ---------------------------------------------------------------------- membership
class Join(msgspec.Struct, frozen=True, array_like=True, tag=1):
    node: str
    address: str
    incarnation: int


class Heartbeat(msgspec.Struct, frozen=True, array_like=True, tag=2):
    members: tuple[MemberInfo, ...] = ()


class Leave(msgspec.Struct, frozen=True, array_like=True, tag=3):
    pass


class LeaveDone(msgspec.Struct, frozen=True, array_like=True, tag=4):
    pass


class Quarantined(msgspec.Struct, frozen=True, array_like=True, tag=5):
    reason: str


# ---------------------------------------------------------------------- messaging
class Tell(msgspec.Struct, frozen=True, array_like=True, tag=10):
    """A told message for the actor at (elements, uid); `seq` > 0 under at-least-once."""

    elements: tuple[str, ...]
    uid: int
    message: Payload
    seq: int = 0


class Ask(msgspec.Struct, frozen=True, array_like=True, tag=11):
    id: int
    elements: tuple[str, ...]
    uid: int
    message: Payload
    timeout_s: float


class Reply(msgspec.Struct, frozen=True, array_like=True, tag=12):
    """The answer to request `id` (an ask, spawn, stop or find)."""

    id: int
    value: Payload


class Fail(msgspec.Struct, frozen=True, array_like=True, tag=13):
    """Request `id` failed: `kind` names the error class, `text` its message; for an
    actor failure `cause_type`/`cause_text` describe what the actor raised."""

    id: int
    kind: str
    text: str
    cause_type: str = ""
    cause_text: str = ""


class Watch(msgspec.Struct, frozen=True, array_like=True, tag=14):
    target: RefData
    watcher: RefData


class Unwatch(msgspec.Struct, frozen=True, array_like=True, tag=15):
    target: RefData
    watcher: RefData


class Spawn(msgspec.Struct, frozen=True, array_like=True, tag=16):
    id: int
    behaviour: str
    args: tuple[Payload, ...]
    name: str | None
    uid: int


class StopActor(msgspec.Struct, frozen=True, array_like=True, tag=17):
    id: int
    elements: tuple[str, ...]
    uid: int
    drain: bool


class Find(msgspec.Struct, frozen=True, array_like=True, tag=18):
    id: int
    elements: tuple[str, ...]


class Ack(msgspec.Struct, frozen=True, array_like=True, tag=19):
    """At-least-once: every `Tell` with ``seq <= upto`` from this sender incarnation was
    delivered (cumulative)."""

    incarnation: int
    upto: int


Frame = (
    Join
    | Heartbeat
    | Leave
    | LeaveDone
    | Quarantined
    | Tell
    | Ask
    | Reply
    | Fail
    | Watch
    | Unwatch
    | Spawn
    | StopActor
    | Find
    | Ack
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Frame] = msgspec.msgpack.Decoder(Frame)
encode_frame = _encoder.encode
#: Decode one frame (raises `msgspec.DecodeError` / `ValidationError` on garbage); the
#: decoder's own method, so that a frame costs no Python call around it.
decode_frame = _decoder.decode
