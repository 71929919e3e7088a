"""The first frame in each direction of every tejido connection.

The connecting side sends `Hello` (wire version, cluster id, its node id or ``""`` for a
client, and what it wants to talk: ``peer`` for the node mesh, ``rpc`` for calls). The
accepting side checks it and answers `Welcome` (its own cluster and node id) or `Refuse`
with a reason, then closes. A mismatch never degrades silently: both sides raise
`HandshakeRefused` with a message that names the two values that differ.
"""

from __future__ import annotations

import msgspec

from tejido.core.errors import RemoteProtocolError

__all__ = [
    "WIRE_VERSION",
    "Handshake",
    "HandshakeRefused",
    "Hello",
    "Refuse",
    "Welcome",
    "check_hello",
    "decode_handshake",
    "encode_handshake",
]

#: Bumped whenever a frame layout changes incompatibly (2: RPC method slots and batch frames).
WIRE_VERSION = 2
_MAGIC = "tejido"


class Hello(msgspec.Struct, frozen=True, tag=True):
    """Sent first by the side that connects."""

    cluster: str
    node: str
    purpose: str
    version: int = WIRE_VERSION
    magic: str = _MAGIC


class Welcome(msgspec.Struct, frozen=True, tag=True):
    """The accepting side's answer when it takes the connection."""

    cluster: str
    node: str
    version: int = WIRE_VERSION


class Refuse(msgspec.Struct, frozen=True, tag=True):
    """The accepting side's answer when it does not; the connection closes after it."""

    reason: str


Handshake = Hello | Welcome | Refuse

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Hello | Welcome | Refuse] = msgspec.msgpack.Decoder(Handshake)


class HandshakeRefused(RemoteProtocolError):
    """The other side refused our handshake, or sent one we refuse; the message says why."""


def encode_handshake(message: Hello | Welcome | Refuse) -> bytes:
    return _encoder.encode(message)


def decode_handshake(payload: bytes) -> Hello | Welcome | Refuse:
    """Decode a handshake frame; anything else is a `HandshakeRefused` naming what came."""
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise HandshakeRefused(
            f"expected a tejido handshake as the first frame, got {len(payload)} bytes that "
            f"are not one ({exc})"
        ) from None


def check_hello(hello: Hello, *, cluster: str, purposes: tuple[str, ...]) -> None:
    """Raise `HandshakeRefused` unless `hello` is for this wire version, cluster and purpose."""
    if hello.magic != _MAGIC:
        raise HandshakeRefused(f"not a tejido peer (magic {hello.magic!r})")
    if hello.version != WIRE_VERSION:
        raise HandshakeRefused(
            f"wire version mismatch: peer speaks version {hello.version}, "
            f"this node speaks version {WIRE_VERSION}"
        )
    if hello.cluster != cluster:
        raise HandshakeRefused(
            f"cluster id mismatch: peer {hello.node or '(client)'} belongs to cluster "
            f"{hello.cluster!r}, this node to cluster {cluster!r}"
        )
    if hello.purpose not in purposes:
        raise HandshakeRefused(
            f"unsupported purpose {hello.purpose!r}: this endpoint serves {', '.join(purposes)}"
        )
