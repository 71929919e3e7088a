"""tejido.viz: reading traces, the diagram model, the HTML page and the `viz` command."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tejido.cli.viz import viz_command
from tejido.core.errors import BadInput
from tejido.viz import build_model, embed_json, read_trace, render_html, write_html
from tejido.viz.model import describe_op

HOSTILE = "</script><script>alert('x')</script><!-- \"quoted\" & <b>bold</b> \u2028 end"


def rec(t: float, kind: str, **fields: object) -> dict[str, object]:
    return {"t": t, "kind": kind, **fields}


def small_trace(*, complete: bool = True) -> list[dict[str, object]]:
    """Four nodes and every record kind, built by hand; message 7 is never delivered."""
    r = [
        rec(
            0.0,
            "meta",
            protocol="register",
            seed=7,
            nodes=[1, 2, 3, 4],
            clocks=True,
            options={"drop_probability": 0.1},
        ),
        rec(0.1, "timer", node=1, name="election"),
        rec(
            0.1,
            "send",
            id=1,
            src=1,
            dst=2,
            msg="VoteReq(term=1)",
            type="VoteReq",
            lamport=1,
            vc={"1": 1},
        ),
        rec(
            0.1,
            "send",
            id=2,
            src=1,
            dst=3,
            msg="VoteReq(term=1)",
            type="VoteReq",
            lamport=2,
            vc={"1": 2},
        ),
        rec(0.1, "duplicate", id=2, src=1, dst=3, copy=100),
        rec(
            0.1,
            "send",
            id=3,
            src=1,
            dst=4,
            msg="VoteReq(term=1)",
            type="VoteReq",
            lamport=3,
            vc={"1": 3},
        ),
        rec(0.1, "drop", id=3, src=1, dst=4, reason="loss"),
        rec(0.15, "deliver", id=1, src=1, dst=2, lamport=2, vc={"1": 1, "2": 1}),
        rec(0.16, "deliver", id=2, src=1, dst=3, lamport=3, vc={"1": 2, "3": 1}),
        rec(0.17, "deliver", id=100, src=1, dst=3, lamport=4, vc={"1": 2, "3": 2}),
        rec(
            0.2,
            "send",
            id=4,
            src=2,
            dst=1,
            msg=HOSTILE,
            type="Vote",
            lamport=3,
            vc={"1": 1, "2": 2},
        ),
        rec(0.21, "crash", node=1, lost=2, torn=True),
        rec(0.25, "drop", id=4, src=2, dst=1, reason="crashed"),
        rec(0.3, "event", node=2, event="became leader term=1 <" + HOSTILE),
        rec(0.3, "invoke", node=2, process=5, op={"f": "write", "key": None, "value": 4}),
        rec(0.35, "partition", blocked=[[3, 4], [4, 3]], desc="isolate 4"),
        rec(0.36, "send", id=5, src=3, dst=4, msg="Append(i=1)", type="Append"),
        rec(0.36, "drop", id=5, src=3, dst=4, reason="partition"),
        rec(0.4, "pause", node=3),
        rec(0.45, "durable", node=2, token=9),
        rec(0.5, "resume", node=3),
        rec(0.55, "heal"),
        rec(0.6, "restart", node=1),
        rec(
            0.6,
            "complete",
            node=2,
            process=5,
            op={"f": "write", "key": None, "value": 4},
            type="ok",
            value=4,
        ),
        rec(0.7, "send", id=6, src=2, dst=2, msg="Tick()", type="Tick"),
        rec(0.7, "deliver", id=6, src=2, dst=2),
        rec(0.8, "future-kind", whatever=[1, 2]),
        rec(5.0, "send", id=7, src=3, dst=1, msg="Append(i=2)", type="Append"),
        rec(5.0, "invoke", node=3, process=6, op={"f": "read", "key": "k", "value": None}),
        rec(5.0, "crash", node=4),
    ]
    if complete:
        r.append(rec(5.0, "end", events=30, messages=7))
    return r


def to_jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(x) + "\n" for x in records)


def embedded_data(page: str) -> dict[str, object]:
    m = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.S)
    assert m is not None
    data = json.loads(m.group(1))
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------------------ model


def test_model_matches_every_message_to_its_fate() -> None:
    model = build_model(small_trace())
    msgs = model["msgs"]
    assert isinstance(msgs, list)
    by_id = {(m["id"], m["fate"]): m for m in msgs}
    assert sorted(by_id) == sorted(
        [
            (1, "deliver"),
            (2, "deliver"),
            (100, "deliver"),
            (3, "drop"),
            (4, "drop"),
            (5, "drop"),
            (6, "deliver"),
            (7, "flight"),
        ]
    )
    copy = by_id[(100, "deliver")]
    original = by_id[(2, "deliver")]
    assert copy["dup"] == 2
    assert copy["dt"] == 0.1
    assert (copy["ts"], copy["ss"], copy["src"], copy["dst"]) == (
        original["ts"],
        original["ss"],
        1,
        3,
    )
    assert by_id[(3, "drop")]["why"] == "loss"
    assert by_id[(4, "drop")]["why"] == "crashed"
    assert by_id[(4, "drop")]["msg"] == HOSTILE
    assert by_id[(1, "deliver")]["l1"] == 1
    assert by_id[(1, "deliver")]["l2"] == 2
    assert by_id[(1, "deliver")]["v2"] == {"1": 1, "2": 1}
    assert "l1" not in by_id[(5, "drop")]
    assert by_id[(7, "flight")]["te"] == 5.0
    assert model["types"] == ["VoteReq", "Vote", "Append", "Tick"]
    assert model["nodes"] == [1, 2, 3, 4]


def test_model_shades_faults_and_matches_client_operations() -> None:
    model = build_model(small_trace())
    spans = model["spans"]
    assert spans == [
        {
            "k": "crash",
            "node": 1,
            "ts": 0.21,
            "ss": 11,
            "te": 0.6,
            "se": 22,
            "info": "lost 2 unsynced storage ops; last append torn",
        },
        {"k": "pause", "node": 3, "ts": 0.4, "ss": 18, "te": 0.5, "se": 20, "info": ""},
        {
            "k": "crash",
            "node": 4,
            "ts": 5.0,
            "ss": 29,
            "te": 5.0,
            "se": 30,
            "info": "",
            "open": True,
        },
    ]
    assert model["parts"] == [
        {
            "ts": 0.35,
            "ss": 15,
            "te": 0.55,
            "se": 21,
            "desc": "isolate 4",
            "blocked": [[3, 4], [4, 3]],
        }
    ]
    ops = model["ops"]
    assert isinstance(ops, list)
    assert ops[0]["op"] == "write 4"
    assert ops[0]["res"] == "ok"
    assert ops[0]["val"] == "4"
    assert ops[1]["op"] == "read k"
    assert ops[1]["res"] == "pending"
    marks = model["marks"]
    assert isinstance(marks, list)
    assert [m["k"] for m in marks] == ["timer", "event", "durable"]
    summary = model["summary"]
    assert isinstance(summary, dict)
    assert summary["ignored"] == {"future-kind": 1}
    assert summary["complete"] is True
    assert summary["drop_reasons"] == {"crashed": 1, "loss": 1, "partition": 1}
    assert (summary["sent"], summary["delivered"], summary["dropped"]) == (7, 4, 3)
    assert (summary["duplicated"], summary["in_flight"]) == (1, 1)


def test_model_of_a_truncated_trace_leaves_spans_open() -> None:
    records = small_trace(complete=False)[:12]  # cut right after the crash of node 1
    model = build_model(records)
    summary = model["summary"]
    assert isinstance(summary, dict)
    assert summary["complete"] is False
    spans = model["spans"]
    assert isinstance(spans, list)
    assert spans[0]["open"] is True
    assert spans[0]["te"] == 0.21
    msgs = model["msgs"]
    assert isinstance(msgs, list)
    assert [m["id"] for m in msgs if m["fate"] == "flight"] == [4]


def test_model_copes_with_a_fate_without_send_and_nodes_not_declared() -> None:
    model = build_model(
        [rec(0.0, "deliver", id=9, src=8, dst=2), rec(1.0, "event", node=5, event="x")]
    )
    assert model["nodes"] == [2, 5, 8]
    msgs = model["msgs"]
    assert isinstance(msgs, list)
    assert msgs[0]["ts"] == 0.0
    assert msgs[0]["msg"] == "(send not in trace)"
    meta = model["meta"]
    assert meta == {}


def test_describe_op() -> None:
    assert describe_op({"f": "cas", "key": "k1", "value": [4, 2]}) == "cas k1 [4,2]"
    assert describe_op({"f": "read", "key": None, "value": None}) == "read"
    assert describe_op("append 3") == "append 3"


# ------------------------------------------------------------------------------ page


def test_page_embeds_the_model_and_header_counts() -> None:
    records = small_trace()
    page = render_html(records)
    data = embedded_data(page)
    model = build_model(records)
    model["title"] = "register · seed 7"
    assert data == json.loads(json.dumps(model))
    assert "<title>register · seed 7</title>" in page
    assert "protocol <b>register</b>" in page
    assert "seed <b>7</b>" in page
    assert "7 sent" in page
    assert "4 delivered" in page
    assert "3 dropped (crashed 1, loss 1, partition 1)" in page
    assert "complete trace" in page
    assert "ignored records of unknown kinds (future-kind 1)" in page
    assert 'id="canvas"' in page
    assert "data-rendered" in page


def test_page_is_self_contained() -> None:
    page = render_html(small_trace())
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", page, re.I)
    assert "http://" not in page
    assert "https://" not in page


def test_page_escapes_hostile_text() -> None:
    page = render_html(small_trace(), title=HOSTILE)
    assert HOSTILE not in page
    assert "<script>alert(" not in page
    assert "<b>bold</b>" not in page
    # Exactly our three script elements: the error hook, the data block and the diagram.
    assert page.count("<script") == 3
    assert page.count("</script>") == 3
    assert "<title>&lt;/script&gt;&lt;script&gt;alert(&#x27;x&#x27;)" in page
    block = page.split('id="trace-data">', 1)[1].split("</script>", 1)[0]
    assert "\u2028" not in block
    assert "<" not in block
    data = embedded_data(page)
    assert data["title"] == HOSTILE
    msgs = data["msgs"]
    assert isinstance(msgs, list)
    assert HOSTILE in [m["msg"] for m in msgs]


def test_embed_json_cannot_close_the_script_element() -> None:
    text = embed_json({"a": "</script><!--<script>", "b": "\u2028\u2029&"})
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert "\u2028" not in text
    assert "\u2029" not in text
    assert json.loads(text) == {"a": "</script><!--<script>", "b": "\u2028\u2029&"}


def test_page_of_a_truncated_trace_says_so() -> None:
    page = render_html(small_trace(complete=False))
    assert "truncated trace" in page
    assert "complete trace" not in page


def test_page_shows_a_violation() -> None:
    records = [
        *small_trace(complete=False),
        rec(5.5, "violation", property="linearizable", detail="read 3 <after> write 4"),
    ]
    page = render_html(records)
    assert "violation: linearizable: read 3 &lt;after&gt; write 4" in page
    data = embedded_data(page)
    assert data["viol"] == [{"t": 5.5, "s": 30, "text": "linearizable: read 3 <after> write 4"}]


def test_model_marks_the_end_of_the_fault_phase() -> None:
    model = build_model([*small_trace(complete=False), rec(6.0, "heal-all")])
    assert model["phases"] == [{"t": 6.0, "s": 30, "text": "heal-all: every fault repaired"}]
    summary = model["summary"]
    assert isinstance(summary, dict)
    assert summary["ignored"] == {"future-kind": 1}


def test_render_accepts_in_memory_records_with_tuples() -> None:
    records = small_trace()
    records[15] = rec(0.35, "partition", blocked=[(3, 4), (4, 3)], desc="isolate 4")
    data = embedded_data(render_html(records))
    parts = data["parts"]
    assert isinstance(parts, list)
    assert parts[0]["blocked"] == [[3, 4], [4, 3]]


def test_render_rejects_a_bad_record_by_index() -> None:
    records = small_trace()
    del records[5]["src"]
    with pytest.raises(BadInput, match=r"record 6: send record needs an integer field 'src'"):
        render_html(records)


def test_render_rejects_a_non_finite_time() -> None:
    with pytest.raises(BadInput, match=r"record 1: field 't' must be"):
        render_html([rec(float("inf"), "heal")])


def test_empty_trace_renders() -> None:
    data = embedded_data(render_html([]))
    assert data["nodes"] == []
    assert data["msgs"] == []


def test_script_asset_sets_no_html() -> None:
    script = resources.files("tejido.viz").joinpath("diagram.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script
    assert "eval(" not in script
    assert "</script" not in script.lower()
    assert resources.files("tejido.viz").joinpath("diagram.css").is_file()


# ------------------------------------------------------------------------------ reading


def test_read_trace_round_trips(tmp_path: Path) -> None:
    records = small_trace()
    path = tmp_path / "run.trace.jsonl"
    path.write_text(to_jsonl(records) + "\n\n", encoding="utf-8")
    assert read_trace(path) == records


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"t": 0.2, "kind": "send", "id": 1', r"line 3: not valid JSON"),
        ("not json at all", r"line 3: not valid JSON"),
        ("[1, 2, 3]", r"line 3: expected a JSON object, got list"),
        ('{"kind": "heal"}', r"line 3: field 't' must be a number"),
        ('{"t": "soon", "kind": "heal"}', r"line 3: field 't' must be a number"),
        ('{"t": NaN, "kind": "heal"}', r"line 3: not valid JSON"),
        ('{"t": 1e999, "kind": "heal"}', r"line 3: not valid JSON"),
        ('{"t": 1.0}', r"line 3: field 'kind' must be a string"),
        ('{"t": 1.0, "kind": "deliver", "id": 1, "src": 1}', r"line 3: deliver record needs"),
        ('{"t": 1.0, "kind": "crash"}', r"line 3: crash record needs an integer field 'node'"),
        ('{"t": 1.0, "kind": "partition", "blocked": [1]}', r"line 3: partition record needs"),
        ('{"t": 1.0, "kind": "duplicate", "id": 1, "src": 1, "dst": 2}', r"line 3: duplicate"),
    ],
)
def test_read_trace_names_the_bad_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.trace.jsonl"
    head = to_jsonl(small_trace()[:1]) + "\n"  # line 2 is blank
    path.write_text(head + line + "\n" + to_jsonl(small_trace()[1:3]), encoding="utf-8")
    with pytest.raises(BadInput, match=message) as info:
        read_trace(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_read_trace_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read trace"):
        read_trace(tmp_path / "absent.jsonl")


def test_write_html(tmp_path: Path) -> None:
    trace = tmp_path / "run.trace.jsonl"
    trace.write_text(to_jsonl(small_trace()), encoding="utf-8")
    out = write_html(trace, tmp_path / "deep" / "dir" / "run.html")
    assert out == tmp_path / "deep" / "dir" / "run.html"
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ------------------------------------------------------------------------------ CLI


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("viz")(viz_command)

    @app.command("other")
    def other() -> None:  # a second command, so `viz` is a subcommand as in the real app
        """Does nothing."""

    return app


def test_cli_writes_the_page(tmp_path: Path) -> None:
    trace = tmp_path / "run.trace.jsonl"
    trace.write_text(to_jsonl(small_trace(complete=False)), encoding="utf-8")
    out = tmp_path / "run.html"
    result = CliRunner().invoke(cli(), ["viz", str(trace), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert "trace-data" in out.read_text(encoding="utf-8")


def test_cli_reports_a_bad_line_in_one_line_and_exits_2(tmp_path: Path) -> None:
    trace = tmp_path / "bad.trace.jsonl"
    trace.write_text(to_jsonl(small_trace()[:3]) + "{oops\n", encoding="utf-8")
    out = tmp_path / "bad.html"
    result = CliRunner().invoke(cli(), ["viz", str(trace), "--output", str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tejido viz: error: ")
    assert "line 4: not valid JSON" in lines[0]
    assert not out.exists()


def test_cli_reports_a_missing_trace(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["viz", str(tmp_path / "nope"), "-o", "x.html"])
    assert result.exit_code == 2
    assert "cannot read trace" in result.output


def test_cli_requires_an_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["viz", str(tmp_path / "t.jsonl")])
    assert result.exit_code == 2
