"""Frame decoding: any split of a valid stream gives the same frames; bad ones fail cleanly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tejido.net.frames import FrameDecoder, FrameError, FrameTooLarge, encode_frame
from tejido.net.handshake import (
    HandshakeRefused,
    Hello,
    Welcome,
    check_hello,
    decode_handshake,
    encode_handshake,
)

payloads = st.lists(st.binary(max_size=300), max_size=20)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_split_of_a_valid_stream_yields_the_same_frames(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(p) for p in frames)
    decoder = FrameDecoder(max_frame=1024)
    got: list[bytes] = []
    for piece in _split(stream, cuts):
        got.extend(decoder.feed(piece))
    assert got == frames
    assert decoder.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_random_bytes_yield_frames_or_a_frame_error(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_frame=256)
    total = 0
    try:
        for piece in _split(data, cuts):
            for frame in decoder.feed(piece):
                assert len(frame) <= 256
                total += len(frame) + 4
    except FrameError:
        return
    # Whatever was not returned as frames is still buffered, never lost or invented.
    assert total + decoder.buffered == len(data)


def test_oversized_frame_is_refused_from_its_header_alone() -> None:
    decoder = FrameDecoder(max_frame=100)
    header_only = (101).to_bytes(4, "big")
    with pytest.raises(FrameTooLarge, match="101 bytes exceeds the maximum frame size of 100"):
        decoder.feed(header_only)


def test_frame_at_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_frame=100)
    assert decoder.feed(encode_frame(b"a" * 100)) == [b"a" * 100]


def test_handshake_mismatches_are_named() -> None:
    hello = Hello(cluster="blue", node="n1", purpose="peer")
    with pytest.raises(HandshakeRefused, match=r"cluster id mismatch.*'blue'.*'green'"):
        check_hello(hello, cluster="green", purposes=("peer",))
    with pytest.raises(HandshakeRefused, match="unsupported purpose 'peer'"):
        check_hello(hello, cluster="blue", purposes=("rpc",))
    old = Hello(cluster="blue", node="n1", purpose="peer", version=0)
    with pytest.raises(HandshakeRefused, match="wire version mismatch"):
        check_hello(old, cluster="blue", purposes=("peer",))
    check_hello(hello, cluster="blue", purposes=("peer", "rpc"))


def test_handshake_round_trip_and_garbage() -> None:
    welcome = Welcome(cluster="blue", node="n2")
    assert decode_handshake(encode_handshake(welcome)) == welcome
    with pytest.raises(HandshakeRefused, match="expected a tejido handshake"):
        decode_handshake(b"GET / HTTP/1.1\r\n")


def test_frames_are_bytes_whatever_the_input_type_and_late_headers_are_checked() -> None:
    stream = encode_frame(b"one") + encode_frame(b"two")
    for kind in (bytes, bytearray, memoryview):
        decoder = FrameDecoder(max_frame=100)
        frames = decoder.feed(kind(stream[:9])) + decoder.feed(kind(stream[9:]))
        assert frames == [b"one", b"two"]
        assert all(type(frame) is bytes for frame in frames)
    decoder = FrameDecoder(max_frame=100)
    assert decoder.feed(encode_frame(b"ok") + (101).to_bytes(4, "big")[:2]) == [b"ok"]
    with pytest.raises(FrameTooLarge, match="101 bytes"):
        decoder.feed((101).to_bytes(4, "big")[2:])
