"""Rendering a trace as one self-contained HTML page (inline CSS, script and data; no network).

The page carries the diagram data (`tejido.viz.model.build_model`) as JSON in a
``<script type="application/json">`` block and a small inline script (``diagram.js``) that
draws it as SVG. Everything from the trace is escaped: HTML text with `html.escape`, the JSON
block with ``<``, ``>``, ``&`` and the JavaScript line separators as ``\\uXXXX`` escapes, so no
``</script>`` or ``<!--`` can appear in it, and the script only ever sets text with
``textContent``.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from tejido.core.errors import BadInput
from tejido.viz.model import build_model
from tejido.viz.trace import check_records, read_trace

__all__ = ["embed_json", "render_html", "write_html"]

_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def embed_json(value: object) -> str:
    """JSON that is safe as the content of a ``<script type="application/json">`` element."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def _asset(name: str) -> str:
    return resources.files("tejido.viz").joinpath(name).read_text(encoding="utf-8")


def _esc(value: object) -> str:
    return html.escape(value if isinstance(value, str) else json.dumps(value), quote=True)


def _plural(n: object, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _breakdown(counts: object) -> str:
    if not isinstance(counts, dict) or not counts:
        return ""
    return " (" + ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in counts.items()) + ")"


def _as_dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _header(model: dict[str, object], title: str) -> str:
    meta = _as_dict(model["meta"])
    summary = _as_dict(model["summary"])
    nodes = _as_list(model["nodes"])
    facts = []
    if "protocol" in meta:
        facts.append(f"protocol <b>{_esc(meta['protocol'])}</b>")
    if "seed" in meta:
        facts.append(f"seed <b>{_esc(meta['seed'])}</b>")
    facts.append(f"{_plural(len(nodes), 'node')} <b>{_esc(', '.join(str(n) for n in nodes))}</b>")
    if "clocks" in meta:
        facts.append("clocks " + ("on" if meta["clocks"] is True else "off"))
    t0, t1 = model["t0"], model["t1"]
    facts.append(f"virtual time {_esc(t0)}s to {_esc(t1)}s")
    if not meta:
        facts.insert(0, "<i>no meta record</i>")

    counts = [
        f"{summary['sent']} sent",
        f"{summary['delivered']} delivered",
        f"{summary['dropped']} dropped{_breakdown(summary['drop_reasons'])}",
        f"{summary['duplicated']} duplicated",
        f"{summary['in_flight']} in flight at end",
        _plural(summary["crashes"], "crash", "crashes"),
        _plural(summary["pauses"], "pause"),
        _plural(summary["partitions"], "partition"),
        _plural(summary["timers"], "timer"),
        _plural(summary["events"], "event"),
        f"{_plural(summary['ops'], 'client op')}{_breakdown(summary['op_results'])}",
    ]

    status: list[str] = []
    for v in _as_list(model["viol"]):
        status.append(f'<p class="status bad">violation: {_esc(_as_dict(v).get("text"))}</p>')
    end = summary.get("end")
    if summary["complete"]:
        detail = ""
        if isinstance(end, dict) and end:
            detail = ": " + ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in end.items())
        status.append(f'<p class="status ok">complete trace (end record{detail})</p>')
    else:
        status.append(
            '<p class="status warn">truncated trace: no <code>end</code> record '
            "(the run was cut short); open spans run to the last record</p>"
        )
    ignored = summary["ignored"]
    if isinstance(ignored, dict) and ignored:
        status.append(
            f'<p class="status warn">ignored records of unknown kinds{_breakdown(ignored)}</p>'
        )

    options = ""
    if "options" in meta:
        pretty = json.dumps(meta["options"], indent=2, ensure_ascii=False, sort_keys=False)
        options = (
            '<details class="options"><summary>simulation options</summary>'
            f"<pre>{_esc(pretty)}</pre></details>"
        )
    return (
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="facts">{" · ".join(facts)}</p>\n'
        f'<p class="counts">{" · ".join(counts)}</p>\n' + "\n".join(status) + "\n" + options
    )


_CONTROLS = """\
<div class="bar controls">
  <span>time axis:
    <label title="distinct times in order; idle gaps shortened"><input type="radio" name="axis"
      value="compressed" checked> compressed</label>
    <label title="proportional to virtual time"><input type="radio" name="axis"
      value="linear"> linear</label>
    <label title="one step per trace record: shows the order of simultaneous events"><input
      type="radio" name="axis" value="ordinal"> record order</label>
  </span>
  <span>zoom <button type="button" id="zoom-out" title="zoom out (-)">&minus;</button>
    <span id="zoom-level">100%</span>
    <button type="button" id="zoom-in" title="zoom in (+)">+</button>
    <button type="button" id="zoom-fit" title="fit the whole run in the window">fit</button>
    <button type="button" id="zoom-reset" title="back to 100% (0)">reset</button></span>
  <label><input type="checkbox" id="labels" checked> event labels</label>
  <span class="hint">hover for details · ctrl+wheel zooms · click a message type to hide it</span>
</div>"""

_LEGEND = """\
<div class="bar legend">
  <span class="item"><svg width="34" height="12"><path d="M2 6 H30 M24 2 L30 6 L24 10"
    fill="none" stroke="#374151" stroke-width="1.4"/></svg>delivered</span>
  <span class="item"><svg width="34" height="12"><path d="M2 6 H24" stroke="#374151"
    stroke-dasharray="5 3" stroke-width="1.3"/><path d="M24 2 L30 10 M24 10 L30 2"
    stroke="#dc2626" stroke-width="2"/></svg>dropped (reason on hover)</span>
  <span class="item"><svg width="34" height="12"><path d="M2 6 H30" stroke="#374151"
    stroke-dasharray="1.5 2.5" stroke-width="1.8"/></svg>duplicate copy</span>
  <span class="item"><svg width="34" height="12"><path d="M2 6 H26" stroke="#374151"
    stroke-dasharray="1 4" stroke-width="1.3"/><circle cx="29" cy="6" r="3" fill="#fff"
    stroke="#374151"/></svg>in flight at end</span>
  <span class="item"><svg width="14" height="16"><rect x="1" y="1" width="12" height="14"
    fill="url(#hatch-crash)" stroke="#dc2626"/></svg>crashed</span>
  <span class="item"><svg width="14" height="16"><rect x="1" y="1" width="12" height="14"
    fill="#d97706" fill-opacity="0.28" stroke="#d97706" stroke-dasharray="3 2"/></svg>paused</span>
  <span class="item"><svg width="22" height="14"><rect x="0" y="0" width="22" height="14"
    fill="#bfdbfe" fill-opacity="0.6"/></svg>partitioned</span>
  <span class="item"><svg width="12" height="12"><circle cx="6" cy="6" r="4" fill="#fff"
    stroke="#6b7280" stroke-width="1.4"/></svg>timer</span>
  <span class="item"><svg width="12" height="12"><path d="M6 0.5 l5.5 5.5 l-5.5 5.5 l-5.5 -5.5 z"
    fill="#111827"/></svg>event</span>
  <span class="item"><svg width="10" height="10"><rect x="2" y="2" width="6" height="6"
    fill="#0d9488"/></svg>durable</span>
  <span class="item"><svg width="26" height="14"><rect x="1" y="1" width="4" height="12"
    fill="#16a34a"/><rect x="8" y="1" width="4" height="12" fill="#dc2626"/><rect x="15" y="1"
    width="4" height="12" fill="#9ca3af"/><rect x="21.5" y="1" width="4" height="12" fill="#fff"
    stroke="#1f2937" stroke-dasharray="2 2"/></svg>client op: ok, fail, info, pending</span>
  <span class="item"><svg width="24" height="10"><path d="M0 5 H24" stroke="#dc2626"
    stroke-width="2"/></svg>violation</span>
  <span class="item"><svg width="24" height="10"><path d="M0 5 H24" stroke="#16a34a"
    stroke-width="1.5" stroke-dasharray="8 4"/></svg>fault phase over</span>
  <span class="item"><svg width="24" height="12"><rect width="24" height="12"
    fill="url(#hatch-gap)"/></svg>idle time cut short</span>
</div>
<div class="bar"><span>message types:</span><span id="types"></span></div>"""

_DEFS = """\
<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>
  <pattern id="hatch-crash" width="6" height="6" patternUnits="userSpaceOnUse"
    patternTransform="rotate(45)"><rect width="6" height="6" fill="#fee2e2"/>
    <line x1="0" y1="0" x2="0" y2="6" stroke="#dc2626" stroke-width="2.2"/></pattern>
  <pattern id="hatch-gap" width="8" height="8" patternUnits="userSpaceOnUse"
    patternTransform="rotate(-30)"><rect width="8" height="8" fill="#f9fafb"/>
    <line x1="0" y1="0" x2="0" y2="8" stroke="#d1d5db" stroke-width="1.5"/></pattern>
</defs></svg>"""

_ONERROR = """\
window.addEventListener("error", function (ev) {
  document.body.setAttribute("data-rendered", "error");
  document.getElementById("error").textContent = "diagram script failed: " + ev.message;
});"""


def render_html(records: Sequence[dict[str, object]], title: str | None = None) -> str:
    """The HTML page for trace records (as `read_trace` returns or the simulator holds them).

    Raises `BadInput` if a record is malformed (naming it by its 1-based index).
    """
    checked = check_records(records)
    model = build_model(checked)
    meta = model["meta"]
    if title is None:
        title = "tejido trace"
        if isinstance(meta, dict) and meta.get("protocol") is not None:
            title = f"{meta['protocol']}"
            if meta.get("seed") is not None:
                title += f" · seed {meta['seed']}"
    model["title"] = title
    script = _asset("diagram.js")
    if "</script" in script.lower():  # pragma: no cover - our own asset
        raise BadInput("diagram.js must not contain '</script'")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="tejido viz">\n'
        f"<title>{_esc(title)}</title>\n"
        f"<style>\n{_asset('diagram.css')}</style>\n"
        "</head>\n<body>\n"
        f"<script>\n{_ONERROR}\n</script>\n"
        f"{_DEFS}\n"
        f"<header>\n{_header(model, title)}\n{_CONTROLS}\n{_LEGEND}\n</header>\n"
        '<div id="error"></div>\n'
        "<noscript><p>The diagram is drawn by an inline script: enable JavaScript to see it."
        "</p></noscript>\n"
        '<div id="lanes-head"><svg id="head"></svg></div>\n'
        '<svg id="canvas" role="img" aria-label="space-time diagram"></svg>\n'
        '<div id="tip" role="tooltip" hidden></div>\n'
        f'<script type="application/json" id="trace-data">{embed_json(model)}</script>\n'
        f"<script>\n{script}</script>\n"
        "</body>\n</html>\n"
    )


def write_html(trace_path: str | os.PathLike[str], html_path: str | os.PathLike[str]) -> Path:
    """Read a trace file and write its diagram page; returns the page's path."""
    records = read_trace(trace_path)
    out = Path(html_path)
    page = render_html(records, title=None)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    return out
