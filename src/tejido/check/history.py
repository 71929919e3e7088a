"""Histories: the JSON-lines event format, its parser, and pairing events into operations.

The format is described in ``docs/formats.md`` (and the shared histories README): one JSON
object per line, in real-time order, each an ``invoke`` or a completion (``ok``, ``fail``,
``info``) of a client operation (``read``, ``write``, ``cas``, ``append``). A process has at
most one operation outstanding; an invocation with no completion counts as ``info``.

`parse_history` reads the lines and rejects anything malformed with a `BadInput` naming the
line; `pair_operations` turns the events into `HistoryOp` records (one per operation), which
is what the checker searches over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from tejido.core.errors import BadInput

__all__ = [
    "COMPLETIONS",
    "EVENT_TYPES",
    "FUNCTIONS",
    "HistoryEvent",
    "HistoryOp",
    "format_event",
    "pair_operations",
    "parse_history",
    "read_history",
]

EVENT_TYPES: Final = ("invoke", "ok", "fail", "info")
COMPLETIONS: Final = frozenset({"ok", "fail", "info"})
FUNCTIONS: Final = ("read", "write", "cas", "append")
_FUNCTION_SET: Final = frozenset(FUNCTIONS)
_TYPE_SET: Final = frozenset(EVENT_TYPES)


class HistoryEvent(msgspec.Struct, frozen=True, gc=False):
    """One line of a history: an invocation or a completion of a client operation.

    ``value`` is any JSON value: a read's result on its ``ok`` line, a write's or append's
    argument, a cas's ``[expected, new]``. ``line`` is where the event came from (1-based),
    filled in by `parse_history`; events built in memory may leave it ``None`` and are then
    named by their position (``event #N``).
    """

    process: int
    type: str
    f: str
    key: str | None = None
    value: object = None
    time: int | None = None
    line: int | None = None


class _WireEvent(msgspec.Struct, frozen=True, gc=False):
    """The JSON shape of one line (unknown fields, e.g. Jepsen's ``index``, are ignored)."""

    process: int
    type: str
    f: str
    key: str | None = None
    value: object = None
    time: int | None = None


_DECODER: Final = msgspec.json.Decoder(_WireEvent)
_ENCODER: Final = msgspec.json.Encoder()


class HistoryOp(msgspec.Struct, frozen=True, gc=False):
    """One operation: an invocation paired with its completion (if any).

    ``outcome`` is ``ok``, ``fail`` or ``info`` (``info`` also when the history ends before
    the operation completes; then ``ret`` and ``ret_line`` are ``None``). ``value`` is the
    invocation's argument; ``result`` is the completion's value (what an ``ok`` read read).
    ``call`` and ``ret`` are positions in the event sequence (real-time order); ``id`` is
    the operation's index in invocation order.
    """

    id: int
    process: int
    f: str
    key: str | None
    value: object
    outcome: str
    result: object
    call: int
    ret: int | None
    call_line: int | None = None
    ret_line: int | None = None

    def describe(self) -> str:
        """One line, e.g. ``process 3: cas [4, 2] -> fail  (lines 12-15)``."""
        key = f" key={_show(self.key)}" if self.key is not None else ""
        if self.f == "read":
            what = f"read{key} -> {_show(self.result) if self.outcome == 'ok' else '?'}"
        else:
            what = f"{self.f}{key} {_show(self.value)}"
        outcome = self.outcome if self.ret is not None else "no completion (info)"
        return f"process {self.process}: {what}  [{outcome}]  ({self.where()})"

    def where(self) -> str:
        """Where the operation sits in its source: line numbers, or event positions."""
        if self.call_line is not None:
            end = f"-{self.ret_line}" if self.ret_line is not None else "-end"
            return f"lines {self.call_line}{end}"
        end = f"-{self.ret + 1}" if self.ret is not None else "-end"
        return f"events #{self.call + 1}{end}"


def _show(value: object) -> str:
    return _ENCODER.encode(value).decode() if _encodable(value) else repr(value)


def _encodable(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, list, dict, tuple))


def _where(event: HistoryEvent, index: int) -> str:
    return f"line {event.line}" if event.line is not None else f"event #{index + 1}"


def _validate(event: HistoryEvent, index: int) -> None:
    if event.type not in _TYPE_SET:
        raise BadInput(
            f"{_where(event, index)}: unknown type {event.type!r} "
            "(expected invoke, ok, fail or info)"
        )
    if event.f not in _FUNCTION_SET:
        raise BadInput(
            f"{_where(event, index)}: unknown f {event.f!r} (expected read, write, cas or append)"
        )
    if event.f == "cas" and (event.type == "invoke" or event.value is not None):
        value = event.value
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise BadInput(
                f"{_where(event, index)}: cas value must be a 2-element list "
                f"[expected, new], got {_show(value)}"
            )
    if event.f == "append" and event.type == "invoke" and not isinstance(event.value, str):
        raise BadInput(
            f"{_where(event, index)}: append value must be a string, got {_show(event.value)}"
        )


def parse_history(lines: Iterable[str | bytes], source: str = "<history>") -> list[HistoryEvent]:
    """Parse JSON-lines history text into events, validating each line and the pairing.

    Blank lines are skipped (line numbers still count them). Raises `BadInput` with
    ``"<source>: line N: ..."`` for malformed JSON, missing or mistyped fields, an unknown
    ``type`` or ``f``, a cas value that is not ``[expected, new]``, a completion with no
    outstanding invocation, or a second invocation while one is outstanding.
    """
    events: list[HistoryEvent] = []
    try:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                wire = _DECODER.decode(raw)
            except msgspec.ValidationError as exc:
                raise BadInput(f"line {number}: {exc}") from None
            except msgspec.DecodeError as exc:
                raise BadInput(f"line {number}: malformed JSON ({exc})") from None
            event = HistoryEvent(
                process=wire.process,
                type=wire.type,
                f=wire.f,
                key=wire.key,
                value=wire.value,
                time=wire.time,
                line=number,
            )
            _validate(event, len(events))
            events.append(event)
        pair_operations(events)
    except BadInput as exc:
        raise BadInput(f"{source}: {exc}") from None
    return events


def read_history(path: str | os.PathLike[str]) -> list[HistoryEvent]:
    """Read and parse a history file (see `parse_history`); a missing file is `BadInput`."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise BadInput(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    return parse_history(data.splitlines(), source=os.fspath(path))


def format_event(event: HistoryEvent) -> str:
    """The event as one JSON line of the history format (no trailing newline)."""
    record: dict[str, object] = {"process": event.process, "type": event.type, "f": event.f}
    if event.key is not None:
        record["key"] = event.key
    record["value"] = event.value
    if event.time is not None:
        record["time"] = event.time
    return _ENCODER.encode(record).decode()


def pair_operations(events: Sequence[HistoryEvent]) -> list[HistoryOp]:
    """Pair each invocation with its process's next completion; return ops in call order.

    Raises `BadInput` (naming the line, or ``event #N`` for events without one) for an
    unknown type or f, a completion with no outstanding invocation, a completion whose
    ``f`` or ``key`` differs from its invocation, or a second invocation by a process
    that already has one outstanding.
    """
    outstanding: dict[int, int] = {}  # process -> index into `calls`
    calls: list[tuple[int, HistoryEvent]] = []  # (event index, invoke event)
    completions: list[tuple[int, HistoryEvent] | None] = []
    for index, event in enumerate(events):
        if event.line is None:
            _validate(event, index)
        if event.type == "invoke":
            if event.process in outstanding:
                first = calls[outstanding[event.process]]
                raise BadInput(
                    f"{_where(event, index)}: process {event.process} invokes {event.f} while "
                    f"its {first[1].f} from {_where(first[1], first[0])} is still outstanding"
                )
            outstanding[event.process] = len(calls)
            calls.append((index, event))
            completions.append(None)
            continue
        slot = outstanding.pop(event.process, None)
        if slot is None:
            raise BadInput(
                f"{_where(event, index)}: {event.type} {event.f} by process {event.process}, "
                "which has no outstanding invocation"
            )
        call_event = calls[slot][1]
        if call_event.f != event.f:
            raise BadInput(
                f"{_where(event, index)}: {event.type} {event.f} completes process "
                f"{event.process}'s {call_event.f} from {_where(call_event, calls[slot][0])}"
            )
        if event.key is not None and event.key != call_event.key:
            raise BadInput(
                f"{_where(event, index)}: completion key {event.key!r} differs from the "
                f"invocation's key {call_event.key!r} ({_where(call_event, calls[slot][0])})"
            )
        completions[slot] = (index, event)
    ops: list[HistoryOp] = []
    for op_id, ((call_index, call), done) in enumerate(zip(calls, completions, strict=True)):
        if done is None:
            outcome, result, ret, ret_line = "info", None, None, None
        else:
            ret, completion = done
            outcome, result, ret_line = completion.type, completion.value, completion.line
        ops.append(
            HistoryOp(
                id=op_id,
                process=call.process,
                f=call.f,
                key=call.key,
                value=call.value,
                outcome=outcome,
                result=result,
                call=call_index,
                ret=ret,
                call_line=call.line,
                ret_line=ret_line,
            )
        )
    return ops
