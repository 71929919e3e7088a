"""Turning trace records into the diagram's data: lanes, message arrows, shaded spans, marks.

`build_model` walks the records once, in order, and produces a JSON-ready dict that the
page's script draws (``diagram.js``). Every drawable thing carries its virtual time ``t``
and its record index ``s`` (the order the simulator processed it), so the page can lay out
time linearly, compressed, or by record order.

What is matched to what:

- a message arrow per ``deliver`` or ``drop`` record, starting at the ``send`` with the
  same ``id``; a copy made by ``duplicate`` starts at its original's send point; a sent
  message with no fate by the end of the trace is drawn as *in flight*;
- a crash span from ``crash`` to the node's next ``restart``, a pause span from ``pause`` to
  ``resume``, a partition band from ``partition`` to the next ``partition`` or ``heal``; spans
  still open at the end of the trace run to its last record;
- a client-operation bar from ``invoke`` to the ``complete`` of the same ``process``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tejido.core.errors import BadInput

__all__ = ["build_model", "describe_op", "format_value"]

Json = object
NodeKey = int | str


def _node(value: object) -> NodeKey:
    if isinstance(value, int | str) and not isinstance(value, bool):
        return value
    return str(value)


def _node_sort_key(node: NodeKey) -> tuple[int, int, str]:
    if isinstance(node, int):
        return (0, node, "")
    return (1, 0, node)


def format_value(value: object) -> str:
    """A compact one-line rendering of a JSON value (strings unquoted)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def describe_op(op: object) -> str:
    """``write k1 4`` for an operation record ``{"f": "write", "key": "k1", "value": 4}``."""
    if isinstance(op, dict) and isinstance(op.get("f"), str):
        parts = [str(op["f"])]
        if op.get("key") is not None:
            parts.append(format_value(op["key"]))
        if op.get("value") is not None:
            parts.append(format_value(op["value"]))
        return " ".join(parts)
    return format_value(op)


def _text(record: dict[str, object], key: str, default: str = "") -> str:
    value = record.get(key)
    if value is None:
        return default
    return format_value(value)


def _time(record: dict[str, object]) -> float:
    t = record.get("t")
    if isinstance(t, int | float) and not isinstance(t, bool):
        return float(t)
    raise BadInput(f"{record.get('kind')!r} record without a numeric time 't'")


@dataclass(slots=True)
class _Send:
    t: float
    s: int
    src: NodeKey
    dst: NodeKey
    msg: str
    type_index: int
    lamport: Json
    vc: Json
    dup_of: NodeKey | None = None
    dup_t: float | None = None
    fates: int = 0


class _Builder:
    def __init__(self, records: Sequence[dict[str, object]]) -> None:
        self.records = records
        self.nodes_declared: list[NodeKey] = []
        self.nodes_seen: set[NodeKey] = set()
        self.types: list[str] = []
        self.type_index: dict[str, int] = {}
        self.sends: dict[NodeKey, _Send] = {}
        self.send_order: list[NodeKey] = []
        self.msgs: list[dict[str, Json]] = []
        self.spans: list[dict[str, Json]] = []
        self.open_spans: dict[tuple[str, NodeKey], dict[str, Json]] = {}
        self.parts: list[dict[str, Json]] = []
        self.open_part: dict[str, Json] | None = None
        self.marks: list[dict[str, Json]] = []
        self.ops: list[dict[str, Json]] = []
        self.pending_ops: dict[str, dict[str, Json]] = {}
        self.violations: list[dict[str, Json]] = []
        self.phases: list[dict[str, Json]] = []
        self.counts: Counter[str] = Counter()
        self.drop_reasons: Counter[str] = Counter()
        self.op_results: Counter[str] = Counter()
        self.meta: dict[str, object] | None = None
        self.end: dict[str, object] | None = None
        self.unknown: Counter[str] = Counter()
        self.handlers: dict[str, Callable[[dict[str, object], float, int], None]] = {
            "meta": self.on_meta,
            "end": self.on_end,
            "send": self.on_send,
            "duplicate": self.on_duplicate,
            "deliver": self.on_deliver,
            "drop": self.on_drop,
            "timer": self.on_timer,
            "event": self.on_event,
            "durable": self.on_durable,
            "crash": self.on_crash,
            "restart": self.on_restart,
            "pause": self.on_pause,
            "resume": self.on_resume,
            "partition": self.on_partition,
            "heal": self.on_heal,
            "invoke": self.on_invoke,
            "complete": self.on_complete,
            "violation": self.on_violation,
            "heal-all": self.on_heal_all,
        }

    # -------------------------------------------------------------- helpers
    def see(self, *nodes: object) -> NodeKey:
        key: NodeKey = ""
        for n in nodes:
            key = _node(n)
            self.nodes_seen.add(key)
        return key

    def type_of(self, name: str) -> int:
        index = self.type_index.get(name)
        if index is None:
            index = len(self.types)
            self.types.append(name)
            self.type_index[name] = index
        return index

    def open_span(self, kind: str, node: NodeKey, t: float, s: int, info: str) -> None:
        if (kind, node) in self.open_spans:
            return  # already crashed / paused: the first one counts
        span: dict[str, Json] = {"k": kind, "node": node, "ts": t, "ss": s, "info": info}
        self.open_spans[(kind, node)] = span
        self.spans.append(span)

    def close_span(self, kind: str, node: NodeKey, t: float, s: int) -> bool:
        span = self.open_spans.pop((kind, node), None)
        if span is None:
            return False
        span["te"] = t
        span["se"] = s
        return True

    def arrow(self, send: _Send, msg_id: NodeKey, s: int) -> dict[str, Json]:
        send.fates += 1
        entry: dict[str, Json] = {
            "id": msg_id,
            "src": send.src,
            "dst": send.dst,
            "ty": send.type_index,
            "msg": send.msg,
            "ts": send.t,
            "ss": send.s,
        }
        if send.dup_of is not None:
            entry["dup"] = send.dup_of
            entry["dt"] = send.dup_t
        if send.lamport is not None:
            entry["l1"] = send.lamport
        if send.vc is not None:
            entry["v1"] = send.vc
        return entry

    def unknown_send(self, r: dict[str, object], s: int) -> _Send:
        """A deliver/drop whose send is not in the trace: draw it as if sent right then."""
        return _Send(
            t=_time(r),
            s=s,
            src=_node(r["src"]),
            dst=_node(r["dst"]),
            msg="(send not in trace)",
            type_index=self.type_of("?"),
            lamport=None,
            vc=None,
        )

    # -------------------------------------------------------------- records
    def run(self) -> dict[str, Json]:
        for s, r in enumerate(self.records):
            kind = str(r.get("kind"))
            handler = self.handlers.get(kind)
            if handler is None:
                self.unknown[kind] += 1
                continue
            self.counts[kind] += 1
            handler(r, _time(r), s)
        return self.finish()

    def on_meta(self, r: dict[str, object], t: float, s: int) -> None:
        if self.meta is None:
            self.meta = r
            nodes = r.get("nodes", [])
            if isinstance(nodes, list):
                self.nodes_declared = [_node(n) for n in nodes]

    def on_end(self, r: dict[str, object], t: float, s: int) -> None:
        self.end = r

    def on_send(self, r: dict[str, object], t: float, s: int) -> None:
        msg_id = _node(r["id"])
        send = _Send(
            t=t,
            s=s,
            src=self.see(r["src"]),
            dst=self.see(r["dst"]),
            msg=_text(r, "msg"),
            type_index=self.type_of(_text(r, "type", "?")),
            lamport=r.get("lamport"),
            vc=r.get("vc"),
        )
        if msg_id not in self.sends:
            self.send_order.append(msg_id)
        self.sends[msg_id] = send

    def on_duplicate(self, r: dict[str, object], t: float, s: int) -> None:
        self.see(r["src"], r["dst"])
        original_id = _node(r["id"])
        copy_id = _node(r["copy"])
        original = self.sends.get(original_id) or self.unknown_send(r, s)
        copy = _Send(
            t=original.t,
            s=original.s,
            src=original.src,
            dst=original.dst,
            msg=original.msg,
            type_index=original.type_index,
            lamport=original.lamport,
            vc=original.vc,
            dup_of=original_id,
            dup_t=t,
        )
        if copy_id not in self.sends:
            self.send_order.append(copy_id)
        self.sends[copy_id] = copy

    def on_deliver(self, r: dict[str, object], t: float, s: int) -> None:
        self.see(r["src"], r["dst"])
        msg_id = _node(r["id"])
        send = self.sends.get(msg_id) or self.unknown_send(r, s)
        entry = self.arrow(send, msg_id, s)
        entry.update({"fate": "deliver", "te": t, "se": s})
        if r.get("lamport") is not None:
            entry["l2"] = r["lamport"]
        if r.get("vc") is not None:
            entry["v2"] = r["vc"]
        self.msgs.append(entry)

    def on_drop(self, r: dict[str, object], t: float, s: int) -> None:
        self.see(r["src"], r["dst"])
        msg_id = _node(r["id"])
        send = self.sends.get(msg_id) or self.unknown_send(r, s)
        reason = _text(r, "reason", "unknown")
        self.drop_reasons[reason] += 1
        entry = self.arrow(send, msg_id, s)
        entry.update({"fate": "drop", "te": t, "se": s, "why": reason})
        self.msgs.append(entry)

    def on_timer(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        self.marks.append({"k": "timer", "node": node, "t": t, "s": s, "text": _text(r, "name")})

    def on_event(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        self.marks.append({"k": "event", "node": node, "t": t, "s": s, "text": _text(r, "event")})

    def on_durable(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        text = f"sync {_text(r, 'token')} durable"
        self.marks.append({"k": "durable", "node": node, "t": t, "s": s, "text": text})

    def on_crash(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        info = []
        if r.get("lost") is not None:
            info.append(f"lost {_text(r, 'lost')} unsynced storage ops")
        if r.get("torn") is not None:
            info.append("last append torn" if r.get("torn") is True else "no torn append")
        self.open_span("crash", node, t, s, "; ".join(info))

    def on_restart(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        if not self.close_span("crash", node, t, s):
            self.marks.append({"k": "restart", "node": node, "t": t, "s": s, "text": "restart"})

    def on_pause(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        self.open_span("pause", node, t, s, "")

    def on_resume(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        if not self.close_span("pause", node, t, s):
            self.marks.append({"k": "resume", "node": node, "t": t, "s": s, "text": "resume"})

    def close_partition(self, t: float, s: int) -> None:
        if self.open_part is not None:
            self.open_part["te"] = t
            self.open_part["se"] = s
            self.open_part = None

    def on_partition(self, r: dict[str, object], t: float, s: int) -> None:
        self.close_partition(t, s)
        blocked_raw = r.get("blocked", [])
        blocked: list[list[NodeKey]] = []
        if isinstance(blocked_raw, list):
            for link in blocked_raw:
                if isinstance(link, list) and len(link) == 2:
                    blocked.append([self.see(link[0]), self.see(link[1])])
        part: dict[str, Json] = {
            "ts": t,
            "ss": s,
            "desc": _text(r, "desc", "partition"),
            "blocked": blocked,
        }
        self.parts.append(part)
        self.open_part = part

    def on_heal(self, r: dict[str, object], t: float, s: int) -> None:
        self.close_partition(t, s)

    def on_invoke(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        process = _text(r, "process", "?")
        op: dict[str, Json] = {
            "node": node,
            "proc": process,
            "op": describe_op(r.get("op")),
            "ts": t,
            "ss": s,
        }
        self.pending_ops[process] = op
        self.ops.append(op)

    def on_complete(self, r: dict[str, object], t: float, s: int) -> None:
        node = self.see(r["node"])
        process = _text(r, "process", "?")
        op = self.pending_ops.pop(process, None)
        if op is None:  # invoke not in the trace
            op = {"node": node, "proc": process, "op": describe_op(r.get("op")), "ts": t, "ss": s}
            self.ops.append(op)
        result = _text(r, "type", "info")
        self.op_results[result] += 1
        op.update({"te": t, "se": s, "res": result, "val": _text(r, "value", "")})

    def on_violation(self, r: dict[str, object], t: float, s: int) -> None:
        text = f"{_text(r, 'property', 'violation')}: {_text(r, 'detail')}"
        self.violations.append({"t": t, "s": s, "text": text})

    def on_heal_all(self, r: dict[str, object], t: float, s: int) -> None:
        # Not in docs/formats.md, but the simulator's nemesis writes it when its fault phase
        # ends (the heal/restart/resume records it implies come before it).
        self.phases.append({"t": t, "s": s, "text": "heal-all: every fault repaired"})

    # -------------------------------------------------------------- finish
    def finish(self) -> dict[str, Json]:
        times = [_time(r) for r in self.records]
        t0 = min(times, default=0.0)
        t1 = max(times, default=0.0)
        last = max(len(self.records) - 1, 0)
        in_flight = 0
        for msg_id in self.send_order:
            send = self.sends[msg_id]
            if send.fates == 0:
                entry = self.arrow(send, msg_id, last)
                entry.update({"fate": "flight", "te": t1, "se": last})
                self.msgs.append(entry)
                in_flight += 1
        for span in self.spans:
            if "te" not in span:
                span.update({"te": t1, "se": last, "open": True})
        for part in self.parts:
            if "te" not in part:
                part.update({"te": t1, "se": last, "open": True})
        for op in self.ops:
            if "te" not in op:
                op.update({"te": t1, "se": last, "res": "pending"})
        declared = set(self.nodes_declared)
        extra = sorted(self.nodes_seen - declared, key=_node_sort_key)
        nodes = list(dict.fromkeys(self.nodes_declared)) + extra
        meta = self.meta or {}
        summary: dict[str, Json] = {
            "records": len(self.records),
            "sent": self.counts["send"],
            "delivered": self.counts["deliver"],
            "dropped": self.counts["drop"],
            "drop_reasons": dict(sorted(self.drop_reasons.items())),
            "duplicated": self.counts["duplicate"],
            "in_flight": in_flight,
            "crashes": self.counts["crash"],
            "pauses": self.counts["pause"],
            "partitions": self.counts["partition"],
            "timers": self.counts["timer"],
            "events": self.counts["event"],
            "durable": self.counts["durable"],
            "ops": len(self.ops),
            "op_results": dict(sorted(self.op_results.items())),
            "violations": len(self.violations),
            "ignored": dict(sorted(self.unknown.items())),
            "complete": self.end is not None,
        }
        if self.end is not None:
            summary["end"] = {k: v for k, v in self.end.items() if k not in ("t", "kind")}
        return {
            "v": 1,
            "meta": {k: v for k, v in meta.items() if k not in ("t", "kind")},
            "nodes": nodes,
            "types": self.types,
            "t0": t0,
            "t1": t1,
            "s1": last,
            "msgs": self.msgs,
            "spans": self.spans,
            "parts": self.parts,
            "marks": self.marks,
            "ops": self.ops,
            "viol": self.violations,
            "phases": self.phases,
            "summary": summary,
        }


def build_model(records: Sequence[dict[str, object]]) -> dict[str, Json]:
    """The diagram data for checked records (see `tejido.viz.trace.check_record`)."""
    return _Builder(records).run()
