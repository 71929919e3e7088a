"""Parsing the JSON-lines history format, pairing events, and rejecting bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tejido.check.history import (
    HistoryEvent,
    format_event,
    pair_operations,
    parse_history,
    read_history,
)
from tejido.core.errors import BadInput

GOOD = """\
{"process": 3, "type": "invoke", "f": "write", "value": 4}
{"process": 3, "type": "ok", "f": "write", "value": 4}

{"process": 0, "type": "invoke", "f": "read", "value": null, "time": 17}
{"process": 1, "type": "invoke", "f": "cas", "value": [4, 2]}
{"process": 0, "type": "ok", "f": "read", "value": 4}
{"process": 1, "type": "fail", "f": "cas", "value": [4, 2]}
{"process": 2, "type": "invoke", "f": "append", "key": "k7", "value": "x 2 9 y", "index": 12}
{"process": 2, "type": "info", "f": "append", "key": "k7", "value": "x 2 9 y"}
{"process": 4, "type": "invoke", "f": "write", "key": "k1", "value": 1}
"""


def test_parses_every_field_and_keeps_line_numbers_across_blank_lines() -> None:
    events = parse_history(GOOD.splitlines())
    assert len(events) == 9
    assert events[0] == HistoryEvent(3, "invoke", "write", None, 4, None, line=1)
    read_invoke = events[2]
    assert (read_invoke.process, read_invoke.f, read_invoke.time, read_invoke.line) == (
        0,
        "read",
        17,
        4,
    )
    assert events[6].key == "k7"
    assert events[6].line == 8  # the unknown field "index" is ignored
    assert events[4].value == 4


def test_accepts_bytes_lines() -> None:
    events = parse_history([line.encode() for line in GOOD.splitlines()])
    assert [event.type for event in events][:2] == ["invoke", "ok"]


def test_pairs_invocations_with_completions_in_call_order() -> None:
    ops = pair_operations(parse_history(GOOD.splitlines()))
    assert [(op.process, op.f, op.outcome) for op in ops] == [
        (3, "write", "ok"),
        (0, "read", "ok"),
        (1, "cas", "fail"),
        (2, "append", "info"),
        (4, "write", "info"),  # no completion: treated as info
    ]
    read = ops[1]
    assert read.result == 4
    assert (read.call_line, read.ret_line) == (4, 6)
    pending = ops[4]
    assert pending.ret is None
    assert pending.ret_line is None
    assert pending.key == "k1"
    assert "lines 10-end" in pending.describe()
    assert "cas [4,2]" in ops[2].describe()
    assert "[fail]" in ops[2].describe()
    assert "read -> 4" in read.describe()


def test_completion_may_omit_the_key_of_its_invocation() -> None:
    ops = pair_operations(
        [
            HistoryEvent(1, "invoke", "write", "a", 1),
            HistoryEvent(1, "ok", "write", None, 1),
        ]
    )
    assert ops[0].key == "a"
    assert ops[0].where() == "events #1-2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"process": 1, "type": "invoke", "f": "read"\n', "line 2: malformed JSON"),
        ('{"process": 1, "f": "read"}\n', "line 2: Object missing required field `type`"),
        ('{"type": "invoke", "f": "read"}\n', "line 2: Object missing required field `process`"),
        ('{"process": 1, "type": "invoke"}\n', "line 2: Object missing required field `f`"),
        ('{"process": "p", "type": "invoke", "f": "read"}\n', "line 2: Expected `int`"),
        ("[1, 2]\n", "line 2: Expected `object`, got `array`"),
        ('{"process": 1, "type": "start", "f": "read"}\n', "line 2: unknown type 'start'"),
        ('{"process": 1, "type": "invoke", "f": "incr"}\n', "line 2: unknown f 'incr'"),
        (
            '{"process": 1, "type": "invoke", "f": "cas", "value": [1]}\n',
            "line 2: cas value must be a 2-element list",
        ),
        (
            '{"process": 1, "type": "invoke", "f": "cas", "value": 3}\n',
            "line 2: cas value must be a 2-element list",
        ),
        (
            '{"process": 1, "type": "invoke", "f": "append", "value": 3}\n',
            "line 2: append value must be a string",
        ),
        (
            '{"process": 7, "type": "ok", "f": "read", "value": 1}\n',
            "line 2: ok read by process 7, which has no outstanding invocation",
        ),
        (
            '{"process": 0, "type": "invoke", "f": "write", "value": 1}\n',
            "line 2: process 0 invokes write while its read from line 1 is still outstanding",
        ),
        (
            '{"process": 0, "type": "ok", "f": "write", "value": 1}\n',
            "line 2: ok write completes process 0's read from line 1",
        ),
        (
            '{"process": 0, "type": "ok", "f": "read", "key": "b", "value": 1}\n',
            "line 2: completion key 'b' differs",
        ),
    ],
)
def test_bad_input_names_the_line_and_the_problem(text: str, expected: str) -> None:
    first = '{"process": 0, "type": "invoke", "f": "read", "key": "a", "value": null}\n'
    with pytest.raises(BadInput) as info:
        parse_history((first + text).splitlines(), source="h.jsonl")
    message = str(info.value)
    assert message.startswith("h.jsonl: line 2: "), message
    assert expected in message
    assert "\n" not in message


def test_events_built_in_memory_are_validated_and_named_by_position() -> None:
    with pytest.raises(BadInput, match=r"event #2: unknown type 'done'"):
        pair_operations(
            [HistoryEvent(0, "invoke", "read"), HistoryEvent(0, "done", "read", value=1)]
        )
    with pytest.raises(BadInput, match=r"event #1: ok read by process 0, which has no"):
        pair_operations([HistoryEvent(0, "ok", "read", value=1)])


def test_read_history_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read"):
        read_history(tmp_path / "nope.jsonl")


def test_format_event_round_trips(tmp_path: Path) -> None:
    events = parse_history(GOOD.splitlines())
    path = tmp_path / "h.jsonl"
    path.write_text("".join(format_event(event) + "\n" for event in events))
    again = read_history(path)
    strip = [(e.process, e.type, e.f, e.key, e.value, e.time) for e in events]
    assert [(e.process, e.type, e.f, e.key, e.value, e.time) for e in again] == strip
    assert format_event(events[0]) == '{"process":3,"type":"invoke","f":"write","value":4}'
