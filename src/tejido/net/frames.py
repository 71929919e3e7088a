"""Length-prefixed frames: the unit every tejido connection carries.

A frame is a 4-byte big-endian unsigned length followed by that many payload bytes. The
payload is msgpack (msgspec) in every tejido protocol, but this module does not care: it
only cuts a byte stream into frames and refuses frames larger than the configured maximum,
before buffering them, so a peer cannot make us allocate more than ``max_frame`` bytes.

`FrameDecoder.feed` takes whatever `data_received` got (any split of the stream) and returns
the complete frames it now holds; a partial frame stays buffered until the rest arrives.
"""

from __future__ import annotations

import struct

from tejido.core.errors import RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER",
    "FrameDecoder",
    "FrameError",
    "FrameTooLarge",
    "encode_frame",
    "frame_header",
]

#: Frames above this many payload bytes are refused unless configured otherwise (16 MiB).
DEFAULT_MAX_FRAME = 16 * 1024 * 1024

_HEADER = struct.Struct(">I")
#: Bytes of length prefix in front of every payload.
HEADER = _HEADER.size
_unpack_from = _HEADER.unpack_from
frame_header = _HEADER.pack


class FrameError(RemoteProtocolError):
    """The byte stream broke the framing or the payload could not be decoded."""


class FrameTooLarge(FrameError):
    """A frame announced more payload bytes than the connection accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the maximum frame size of {limit} bytes")
        self.size = size
        self.limit = limit


def encode_frame(payload: bytes) -> bytes:
    """The frame carrying `payload` (header and payload in one bytes object)."""
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Cuts a byte stream into frames; refuses oversized frames as soon as their header arrives."""

    __slots__ = ("_buffer", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame <= 0:
            raise ValueError(f"max_frame must be positive, got {max_frame}")
        self.max_frame = max_frame
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Raises `FrameTooLarge` when a header announces more than ``max_frame`` bytes; after
        that the stream is out of sync and the connection must be closed.
        """
        buffer = self._buffer
        limit = self.max_frame
        if not buffer and data.__class__ is bytes and len(data) >= HEADER:
            # The common case on a request/response path: one read, one whole frame.
            size = _unpack_from(data, 0)[0]
            if size + HEADER == len(data) and size <= limit:
                return [data[HEADER:]]
        if buffer:
            buffer += data
            if len(buffer) < HEADER:
                return []
            (size,) = _unpack_from(buffer, 0)
            if size > limit:
                raise FrameTooLarge(size, limit)
            if len(buffer) < HEADER + size:
                return []  # still incomplete: no copy (a large frame arrives in many reads)
            data = bytes(buffer)
            buffer.clear()
        elif data.__class__ is not bytes:
            data = bytes(data)  # frames are slices of immutable bytes
        end = len(data)
        frames: list[bytes] = []
        pos = 0
        while end - pos >= HEADER:
            (size,) = _unpack_from(data, pos)
            if size > limit:
                raise FrameTooLarge(size, limit)
            stop = pos + HEADER + size
            if stop > end:
                break
            frames.append(data[pos + HEADER : stop])
            pos = stop
        if pos < end:
            buffer += memoryview(data)[pos:]
        return frames
