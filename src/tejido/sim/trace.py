"""Trace recording: one dict per simulator event, in processing order (docs/formats.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import msgspec

__all__ = ["Trace", "trace_digest", "write_trace"]

_encoder = msgspec.json.Encoder()


class Trace:
    """Collects trace records in memory; the simulator appends, callers write or render."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: list[dict[str, object]] = []

    def add(self, record: dict[str, object]) -> None:
        self.records.append(record)

    def lines(self) -> Iterable[bytes]:
        for record in self.records:
            yield _encoder.encode(record)

    def digest(self) -> str:
        return trace_digest(self.records)


def trace_digest(records: Iterable[dict[str, object]]) -> str:
    """SHA-256 of the trace's JSON-lines bytes: equal digests mean byte-identical traces."""
    h = hashlib.sha256()
    for record in records:
        h.update(_encoder.encode(record))
        h.update(b"\n")
    return h.hexdigest()


def write_trace(records: Iterable[dict[str, object]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for record in records:
            f.write(_encoder.encode(record))
            f.write(b"\n")
    return path
