"""Space-time diagrams of simulator traces, as self-contained HTML pages.

`read_trace` reads a ``*.trace.jsonl`` file (``docs/formats.md``), `render_html` turns trace
records into a page, `write_html` does both. See ``docs/viz.md`` for what the page shows.
"""

from tejido.viz.html import embed_json, render_html, write_html
from tejido.viz.model import build_model
from tejido.viz.trace import check_records, parse_trace_lines, read_trace

__all__ = [
    "read_trace",
    "render_html",
    "write_html",
    "build_model",
    "check_records",
    "parse_trace_lines",
    "embed_json",
]
