"""Reading and checking simulator traces (the JSON-lines format of ``docs/formats.md``).

`read_trace` parses a ``*.trace.jsonl`` file into one dict per record. A line that is not a
JSON object with a finite number ``t`` and a string ``kind`` raises `BadInput` naming the
line; so does a record of a known kind that lacks a field the diagram needs (a message
without ``id``/``src``/``dst``, a node event without ``node``). Records of unknown kinds are
kept (the renderer ignores them), and a trace without an ``end`` record (a run that was cut
short) is fine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from tejido.core.errors import BadInput

__all__ = [
    "KNOWN_KINDS",
    "MESSAGE_KINDS",
    "NODE_KINDS",
    "check_record",
    "check_records",
    "parse_trace_lines",
    "read_trace",
]

MESSAGE_KINDS = frozenset({"send", "deliver", "drop", "duplicate"})
"""Kinds that concern one message: they carry ``id``, ``src`` and ``dst``."""

NODE_KINDS = frozenset(
    {"timer", "crash", "restart", "pause", "resume", "event", "durable", "invoke", "complete"}
)
"""Kinds that happen at one node: they carry ``node``."""

KNOWN_KINDS = MESSAGE_KINDS | NODE_KINDS | {"meta", "partition", "heal", "violation", "end"}

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def _is_scalar_id(value: object) -> bool:
    """Node and message ids are integers (strings are tolerated); never bools or floats."""
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def check_record(record: object, where: str) -> dict[str, object]:
    """Check one decoded record; `where` (e.g. ``"line 7"``) prefixes any error message."""
    if not isinstance(record, dict):
        raise BadInput(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in record:
        if not isinstance(key, str):
            raise BadInput(f"{where}: record keys must be strings")
    t = record.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise BadInput(f"{where}: field 't' must be a number (virtual time in seconds)")
    if not math.isfinite(t):
        raise BadInput(f"{where}: field 't' must be finite")
    kind = record.get("kind")
    if not isinstance(kind, str):
        raise BadInput(f"{where}: field 'kind' must be a string")
    if kind in MESSAGE_KINDS:
        for field in ("id", "src", "dst"):
            if not _is_scalar_id(record.get(field)):
                raise BadInput(f"{where}: {kind} record needs an integer field {field!r}")
        if kind == "duplicate" and not _is_scalar_id(record.get("copy")):
            raise BadInput(f"{where}: duplicate record needs an integer field 'copy'")
    elif kind in NODE_KINDS:
        if not _is_scalar_id(record.get("node")):
            raise BadInput(f"{where}: {kind} record needs an integer field 'node'")
    elif kind == "partition":
        blocked = record.get("blocked", [])
        if not isinstance(blocked, list) or not all(
            isinstance(link, list) and len(link) == 2 and all(_is_scalar_id(n) for n in link)
            for link in blocked
        ):
            raise BadInput(f"{where}: partition record needs 'blocked' as a list of [src, dst]")
    elif kind == "meta":
        nodes = record.get("nodes", [])
        if not isinstance(nodes, list) or not all(_is_scalar_id(n) for n in nodes):
            raise BadInput(f"{where}: meta record needs 'nodes' as a list of node ids")
    return record


def check_records(records: Iterable[object]) -> list[dict[str, object]]:
    """Check in-memory records (as the simulator holds them) and return JSON-native copies.

    Each record goes through a JSON round trip, so tuples, msgspec structs and the like end
    up exactly as they would in a trace file. Errors name the record by its 1-based index.
    """
    out: list[dict[str, object]] = []
    for index, record in enumerate(records, start=1):
        where = f"record {index}"
        try:
            native: object = _decoder.decode(_encoder.encode(record))
        except (TypeError, msgspec.EncodeError, msgspec.DecodeError) as exc:
            raise BadInput(f"{where}: not representable as JSON ({exc})") from None
        out.append(check_record(native, where))
    return out


def parse_trace_lines(
    lines: Iterable[str | bytes], source: str = "trace"
) -> list[dict[str, object]]:
    """Parse JSON lines; blank lines are skipped, errors name `source` and the line number."""
    out: list[dict[str, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            record: object = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise BadInput(f"{where}: not valid JSON ({exc})") from None
        out.append(check_record(record, where))
    return out


def read_trace(path: str | os.PathLike[str]) -> list[dict[str, object]]:
    """Read a ``*.trace.jsonl`` file; raises `BadInput` for an unreadable file or bad line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read trace {str(p)!r}: {exc.strerror or exc}") from None
    return parse_trace_lines(data.splitlines(), source=str(p))
