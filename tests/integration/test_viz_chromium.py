"""The diagram page, opened in headless Chromium, draws what the trace says.

A synthetic 5-node, 200-message trace (built here, no simulator needed) is rendered to HTML,
Chromium runs the page's script and dumps the DOM, and the test counts what was drawn: one
lane per node, one arrow per delivered, dropped or in-flight message, the fault shading and
the client-operation bars. It also takes a screenshot (kept in tmp_path) to check the page
paints at all. Without Chromium the test fails and says how to install it.
"""

from __future__ import annotations

import heapq
import json
import random
import shutil
import subprocess
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tejido.viz import render_html, write_html

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

TYPES = {
    "Append": 'Append(term={term}, prev={idx}, entries=[w {val}] <{src}> "x"&y)',
    "AppendOk": "AppendOk(term={term}, match={idx})",
    "Heartbeat": "Heartbeat(term={term}, commit={idx})",
    "VoteReq": "VoteReq(term={term}, last={idx})",
    "Vote": "Vote(term={term}, granted=true)",
    "Read": "Read(key=k{val})",
}


def synthetic_trace(
    n_nodes: int = 5, n_messages: int = 200, seed: int = 1, complete: bool = True
) -> list[dict[str, object]]:
    """A plausible trace: messages with latency, loss, duplicates, faults and client ops."""
    rng = random.Random(seed)
    nodes = list(range(1, n_nodes + 1))
    records: list[dict[str, object]] = [
        {
            "t": 0.0,
            "kind": "meta",
            "protocol": "register",
            "seed": seed,
            "nodes": nodes,
            "clocks": True,
            "options": {"drop_probability": 0.05, "faults": ["crash", "pause", "partition"]},
        }
    ]
    lamport = dict.fromkeys(nodes, 0)
    vc = {n: dict.fromkeys((str(m) for m in nodes), 0) for n in nodes}
    crashed: set[int] = set()
    paused: set[int] = set()
    blocked: set[tuple[int, int]] = set()
    pending: list[tuple[float, int, dict[str, object]]] = []  # heap of future fates
    order = 0
    next_id = 1
    sends = 0
    t = 0.0
    term = 1
    ops: dict[int, tuple[int, dict[str, object]]] = {}

    def up(n: int) -> bool:
        return n not in crashed and n not in paused

    def push(at: float, rec: dict[str, object]) -> None:
        nonlocal order
        order += 1
        heapq.heappush(pending, (at, order, rec))

    def emit(rec: dict[str, object]) -> None:
        records.append({"t": round(t, 6), **rec})

    # Faults happen at fixed fractions of the run, so every kind is always present.
    faults = {
        40: ("crash", 3),
        70: ("restart", 3),
        95: ("pause", 5),
        110: ("resume", 5),
        125: ("partition", 2),
        160: ("heal", 0),
        185: ("crash", 4),
    }
    done_faults: set[int] = set()
    t_act = 0.001  # when the next spontaneous action (send, timer, client op) happens
    while sends < n_messages or pending:
        if pending and (sends >= n_messages or pending[0][0] <= t_act):
            at, _, rec = heapq.heappop(pending)
            t = max(t, at)
            src, dst = rec["src"], rec["dst"]
            assert isinstance(src, int)
            assert isinstance(dst, int)
            if dst in crashed:
                emit({"kind": "drop", "id": rec["id"], "src": src, "dst": dst, "reason": "crashed"})
            else:
                lamport[dst] = max(lamport[dst], int(str(rec["lamport"]))) + 1
                vc[dst][str(dst)] += 1
                emit(
                    {
                        "kind": "deliver",
                        "id": rec["id"],
                        "src": src,
                        "dst": dst,
                        "lamport": lamport[dst],
                        "vc": dict(vc[dst]),
                    }
                )
                if rng.random() < 0.08:
                    emit(
                        {"kind": "event", "node": dst, "event": f"commit idx={rng.randint(1, 40)}"}
                    )
            continue
        t = t_act
        t_act = t + rng.expovariate(80.0)
        if rng.random() < 0.015:
            t_act += rng.uniform(2.0, 8.0)  # a long idle stretch
        for at_send, (what, node) in faults.items():
            if sends >= at_send and at_send not in done_faults:
                done_faults.add(at_send)
                if what == "crash":
                    crashed.add(node)
                    emit({"kind": "crash", "node": node, "lost": 2, "torn": False})
                elif what == "restart":
                    crashed.discard(node)
                    emit({"kind": "restart", "node": node})
                elif what == "pause":
                    paused.add(node)
                    emit({"kind": "pause", "node": node})
                elif what == "resume":
                    paused.discard(node)
                    emit({"kind": "resume", "node": node})
                elif what == "partition":
                    blocked = {(a, b) for a in nodes for b in nodes if (a == node) != (b == node)}
                    emit(
                        {
                            "kind": "partition",
                            "blocked": sorted([a, b] for a, b in blocked),
                            "desc": f"isolate {node}",
                        }
                    )
                else:
                    blocked = set()
                    emit({"kind": "heal"})
        roll = rng.random()
        live = [n for n in nodes if up(n)]
        if roll < 0.10:
            node = rng.choice(live)
            emit({"kind": "timer", "node": node, "name": rng.choice(["election", "heartbeat"])})
            if rng.random() < 0.3:
                term += 1
                emit({"kind": "event", "node": node, "event": f"became candidate term={term}"})
            continue
        if roll < 0.16:
            if ops and (len(ops) == 4 or rng.random() < 0.6):
                process = rng.choice(sorted(ops))
                node, op = ops.pop(process)
                emit(
                    {
                        "kind": "complete",
                        "node": node,
                        "process": process,
                        "op": op,
                        "type": rng.choice(["ok", "ok", "ok", "fail", "info"]),
                        "value": rng.randint(0, 9),
                    }
                )
            else:
                process = rng.choice([p for p in range(1, 5) if p not in ops])
                node = rng.choice(nodes)
                op = {"f": rng.choice(["read", "write", "cas"]), "key": None, "value": None}
                ops[process] = (node, op)
                emit({"kind": "invoke", "node": node, "process": process, "op": op})
            continue
        if roll < 0.18:
            node = rng.choice(live)
            emit({"kind": "durable", "node": node, "token": rng.randint(1, 99)})
            continue
        src = rng.choice(live)
        dsts = [n for n in nodes if n != src]
        fanout = dsts if rng.random() < 0.25 else [rng.choice(dsts)]
        for dst in fanout:
            if sends >= n_messages:
                break
            kind = rng.choice(list(TYPES))
            lamport[src] += 1
            vc[src][str(src)] += 1
            mid = next_id
            next_id += 1
            sends += 1
            text = TYPES[kind].format(
                term=term, idx=rng.randint(0, 40), val=rng.randint(0, 9), src=src
            )
            emit(
                {
                    "kind": "send",
                    "id": mid,
                    "src": src,
                    "dst": dst,
                    "msg": text,
                    "type": kind,
                    "lamport": lamport[src],
                    "vc": dict(vc[src]),
                }
            )
            fate: dict[str, object] = {"id": mid, "src": src, "dst": dst, "lamport": lamport[src]}
            if (src, dst) in blocked:
                emit({"kind": "drop", "id": mid, "src": src, "dst": dst, "reason": "partition"})
                continue
            if rng.random() < 0.05:
                emit({"kind": "drop", "id": mid, "src": src, "dst": dst, "reason": "loss"})
                continue
            push(t + rng.uniform(0.004, 0.06), fate)
            if rng.random() < 0.04:
                copy = 100_000 + mid
                emit({"kind": "duplicate", "id": mid, "src": src, "dst": dst, "copy": copy})
                push(t + rng.uniform(0.004, 0.08), {**fate, "id": copy})
    if complete:
        records.append(
            {"t": round(t, 6), "kind": "end", "events": len(records) - 1, "messages": sends}
        )
    return records


# ---------------------------------------------------------------------------- Chromium


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Chromium is not installed: run `make system-deps` (as root it installs Debian's "
        "chromium package) to run the browser tests"
    )


def run_chromium(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="tejido-chromium-") as profile:
        cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=180, check=False
        )


class DomCount(HTMLParser):
    """Counts elements by class token and collects the lanes' data-node values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.classes: Counter[frozenset[str]] = Counter()
        self.lanes: list[str] = []
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        tokens = frozenset((a.get("class") or "").split())
        if tokens:
            self.classes[tokens] += 1
        if "lane" in tokens:
            self.lanes.append(a.get("data-node") or "")

    def count(self, *required: str, without: tuple[str, ...] = ()) -> int:
        need = set(required)
        return sum(
            n for tokens, n in self.classes.items() if need <= tokens and not tokens & set(without)
        )


def expected(records: list[dict[str, object]]) -> dict[str, int]:
    kinds = Counter(str(r["kind"]) for r in records)
    fated = {r["id"] for r in records if r["kind"] in ("deliver", "drop")}
    sent = {r["id"] for r in records if r["kind"] == "send"} | {
        r["copy"] for r in records if r["kind"] == "duplicate"
    }
    return {
        "deliver": kinds["deliver"],
        "drop": kinds["drop"],
        "flight": len(sent - fated),
        "crash": kinds["crash"],
        "pause": kinds["pause"],
        "partition": kinds["partition"],
        "invoke": kinds["invoke"],
        "timer": kinds["timer"],
        "event": kinds["event"],
        "duplicate": kinds["duplicate"],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, object]], Path]:
    tmp = tmp_path_factory.mktemp("viz")
    records = synthetic_trace()
    trace = tmp / "run.trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    page = write_html(trace, tmp / "run.html")
    return records, page


def test_chromium_draws_one_lane_per_node_and_one_arrow_per_message(
    rendered: tuple[list[dict[str, object]], Path],
) -> None:
    records, page = rendered
    want = expected(records)
    assert sum(1 for r in records if r["kind"] == "send") == 200
    assert want["drop"] > 0
    assert want["duplicate"] > 0

    proc = run_chromium(["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], page.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = DomCount()
    dom.feed(proc.stdout)

    assert dom.body.get("data-rendered") == "ok", "the diagram script did not finish"
    assert sorted(dom.lanes, key=int) == ["1", "2", "3", "4", "5"]
    assert dom.count("lane") == 5

    assert dom.count("msg", without=("dropped", "flight")) == want["deliver"]
    assert dom.count("msg", "dropped") == want["drop"]
    assert dom.count("msg", "flight") == want["flight"]
    assert dom.count("msg", "dup") == want["duplicate"]  # every copy in this trace has a fate

    assert dom.count("span", "crash") == want["crash"] > 0
    assert dom.count("span", "pause") == want["pause"] > 0
    assert dom.count("band", "partition") == want["partition"] > 0
    assert dom.count("op") == want["invoke"] > 0
    assert dom.count("mark", "timer") == want["timer"]
    assert dom.count("mark", "event") == want["event"]


def test_chromium_screenshot_paints(rendered: tuple[list[dict[str, object]], Path]) -> None:
    _, page = rendered
    shot = page.parent / "run.png"
    proc = run_chromium(
        [
            "--virtual-time-budget=5000",
            "--window-size=1600,1000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        page.parent,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1600, 1000)
    assert len(data) > 20_000  # a blank page compresses to a few KB


@pytest.mark.slow
def test_chromium_handles_a_large_trace(tmp_path: Path) -> None:
    records = synthetic_trace(n_messages=10_000, seed=3, complete=False)
    page = tmp_path / "big.html"
    page.write_text(render_html(records), encoding="utf-8")
    proc = run_chromium(["--virtual-time-budget=20000", "--dump-dom", page.as_uri()], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = DomCount()
    dom.feed(proc.stdout)
    assert dom.body.get("data-rendered") == "ok"
    want = expected(records)
    assert dom.count("msg") == want["deliver"] + want["drop"] + want["flight"]
