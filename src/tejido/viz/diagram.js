/* tejido space-time diagram: draws the JSON in #trace-data as SVG (no network, no libraries).
 * One vertical lane per node, time running downward. All trace text is set with textContent
 * or setAttribute, never parsed as HTML. */
(function () {
  "use strict";

  const PALETTE = ["#2563eb", "#ea580c", "#0d9488", "#7c3aed", "#65a30d", "#db2777",
    "#92400e", "#0891b2", "#4b5563", "#ca8a04"];
  const GUTTER = 92;      // left margin for the time axis
  const TOP = 14;         // first row
  const ROW = 16;         // px per row at zoom 1 (compressed axis)
  const MIN_SPACING = 150;
  const MAX_SPACING = 420;

  const body = document.body;
  const canvas = document.getElementById("canvas");
  const head = document.getElementById("head");
  const tip = document.getElementById("tip");
  const NS = canvas.namespaceURI;
  const data = JSON.parse(document.getElementById("trace-data").textContent);

  const state = { mode: "compressed", zoom: 1, labels: true, hidden: new Set() };
  const laneOf = new Map();
  data.nodes.forEach((n, i) => laneOf.set(String(n), i));

  // ------------------------------------------------------------------ formatting
  function fmtT(t) {
    if (typeof t !== "number" || !isFinite(t)) return String(t);
    return String(+t.toPrecision(6)) + "s";
  }
  function fmtShort(t) {
    return String(+t.toPrecision(4));
  }
  function fmtVc(vc) {
    if (vc === null || typeof vc !== "object") return JSON.stringify(vc);
    const keys = Object.keys(vc);
    keys.sort((a, b) => {
      const ia = laneOf.has(a) ? laneOf.get(a) : 1e9, ib = laneOf.has(b) ? laneOf.get(b) : 1e9;
      return ia - ib || (a < b ? -1 : a > b ? 1 : 0);
    });
    return "[" + keys.map((k) => k + ":" + JSON.stringify(vc[k])).join(" ") + "]";
  }
  function clocks(label, l, v) {
    const parts = [];
    if (l !== undefined) parts.push("lamport " + JSON.stringify(l));
    if (v !== undefined) parts.push("vc " + fmtVc(v));
    return parts.length ? label + " " + parts.join("  ") : null;
  }
  function typeName(m) { return data.types[m.ty]; }
  function color(ty) { return PALETTE[ty % PALETTE.length]; }

  function msgTip(m) {
    const fate = { deliver: "delivered", drop: "dropped", flight: "in flight at end" }[m.fate];
    const lines = [typeName(m) + "  #" + m.id + "  " + m.src + " \u2192 " + m.dst + "  (" + fate + ")"];
    if (m.msg) lines.push(m.msg);
    if (m.dup !== undefined) lines.push("copy of #" + m.dup + ", duplicated by the network at " + fmtT(m.dt));
    let when = "sent " + fmtT(m.ts);
    if (m.fate === "deliver") when += "  delivered " + fmtT(m.te) + "  (+" + fmtT(m.te - m.ts) + ")";
    if (m.fate === "drop") when += "  dropped " + fmtT(m.te) + "  reason: " + m.why;
    lines.push(when);
    const c1 = clocks("sender clock:  ", m.l1, m.v1);
    if (c1) lines.push(c1);
    const c2 = clocks("receiver clock:", m.l2, m.v2);
    if (c2) lines.push(c2);
    return lines.join("\n");
  }
  function spanTip(sp) {
    const verb = sp.k === "crash" ? "crashed" : "paused";
    const back = sp.k === "crash" ? "restarted" : "resumed";
    let line = "node " + sp.node + " " + verb + " at " + fmtT(sp.ts);
    line += sp.open ? ", still " + (sp.k === "crash" ? "down" : "paused") + " at the end of the trace"
      : ", " + back + " at " + fmtT(sp.te) + " (" + fmtT(sp.te - sp.ts) + ")";
    return sp.info ? line + "\n" + sp.info : line;
  }
  function groupsOf(blocked) {
    // Connected components of "can talk both ways"; a clean partition if every cross pair is cut.
    const cut = new Set(blocked.map((l) => String(l[0]) + ">" + String(l[1])));
    const ids = data.nodes.map(String);
    const seen = new Set(), groups = [];
    for (const a of ids) {
      if (seen.has(a)) continue;
      const g = [a], stack = [a];
      seen.add(a);
      while (stack.length) {
        const u = stack.pop();
        for (const v of ids) {
          if (!seen.has(v) && !cut.has(u + ">" + v) && !cut.has(v + ">" + u)) {
            seen.add(v); g.push(v); stack.push(v);
          }
        }
      }
      groups.push(g);
    }
    for (let i = 0; i < groups.length; i++)
      for (let j = 0; j < groups.length; j++)
        if (i !== j) for (const a of groups[i]) for (const b of groups[j])
          if (!cut.has(a + ">" + b)) return null;
    return groups.length > 1 ? groups.map((g) => g.join(" ")).join("  |  ") : null;
  }
  function partTip(p) {
    const lines = ["partition: " + p.desc];
    lines.push("from " + fmtT(p.ts) + (p.open ? " to the end of the trace" : " until " + fmtT(p.te)));
    const groups = groupsOf(p.blocked);
    if (groups) lines.push("groups: " + groups);
    const links = p.blocked.map((l) => l[0] + "\u2192" + l[1]);
    if (links.length) lines.push("cut links: " + (links.length > 24 ? links.slice(0, 24).join(", ") + ", \u2026" : links.join(", ")));
    return lines.join("\n");
  }
  function opTip(o) {
    const lines = ["client " + o.proc + " \u2192 node " + o.node + ": " + o.op];
    if (o.res === "pending") lines.push("invoked " + fmtT(o.ts) + ", no completion by the end of the trace");
    else {
      lines.push("invoked " + fmtT(o.ts) + ", " + o.res + " at " + fmtT(o.te) + " (" + fmtT(o.te - o.ts) + ")");
      if (o.val !== "") lines.push("value: " + o.val);
    }
    return lines.join("\n");
  }
  function markTip(k) {
    const names = { timer: "timer fired", event: "event", durable: "durable", restart: "restart", resume: "resume" };
    return "node " + k.node + " " + names[k.k] + " at " + fmtT(k.t) + "\n" + k.text;
  }

  // ------------------------------------------------------------------ time axis
  function points() {
    const ts = [], ss = [];
    const add = (t, s) => { ts.push(t); ss.push(s); };
    for (const m of data.msgs) { add(m.ts, m.ss); add(m.te, m.se); }
    for (const x of data.spans) { add(x.ts, x.ss); add(x.te, x.se); }
    for (const x of data.parts) { add(x.ts, x.ss); add(x.te, x.se); }
    for (const x of data.ops) { add(x.ts, x.ss); add(x.te, x.se); }
    for (const x of data.marks) add(x.t, x.s);
    for (const x of data.viol) add(x.t, x.s);
    for (const x of data.phases) add(x.t, x.s);
    add(data.t0, 0); add(data.t1, data.s1);
    return { ts, ss };
  }
  const PTS = points();
  const uniq = (a) => Array.from(new Set(a)).sort((x, y) => x - y);
  const DISTINCT_T = uniq(PTS.ts);
  const DISTINCT_S = uniq(PTS.ss);
  const TIME_OF_S = new Map();
  PTS.ss.forEach((s, i) => TIME_OF_S.set(s, PTS.ts[i]));
  const MEDIAN_GAP = (() => {
    const gaps = [];
    for (let i = 1; i < DISTINCT_T.length; i++) gaps.push(DISTINCT_T[i] - DISTINCT_T[i - 1]);
    gaps.sort((a, b) => a - b);
    return gaps.length ? Math.max(gaps[gaps.length >> 1], 1e-12) : 1;
  })();

  // Returns {y(t, s), rows: [[t, y]], breaks: [[y, gap]], height}.
  function makeAxis() {
    const row = ROW * state.zoom;
    const rows = [], breaks = [];
    if (state.mode === "ordinal") {
      const ys = new Map();
      DISTINCT_S.forEach((s, i) => { const y = TOP + i * row * 0.75; ys.set(s, y); rows.push([TIME_OF_S.get(s), y]); });
      const last = rows.length ? rows[rows.length - 1][1] : TOP;
      return { y: (t, s) => ys.get(s), rows, breaks, height: last + 40 };
    }
    if (state.mode === "linear") {
      const span = data.t1 - data.t0;
      const k = span > 0 ? Math.max(DISTINCT_T.length, 20) * row / span : 1;
      const y = (t) => TOP + (t - data.t0) * k;
      for (const t of DISTINCT_T) rows.push([t, y(t)]);
      return { y, rows, breaks, height: y(data.t1) + 40 };
    }
    const ys = new Map();
    const minBreak = 0.01 * (data.t1 - data.t0);  // idle gaps worth marking
    let y = TOP;
    DISTINCT_T.forEach((t, i) => {
      if (i > 0) {
        const gap = t - DISTINCT_T[i - 1], r = gap / MEDIAN_GAP;
        const step = row * (0.55 + 0.45 * Math.min(6, Math.log2(1 + r)));
        if (r > 12 && gap > minBreak) breaks.push([y + step / 2, gap]);
        y += step;
      }
      ys.set(t, y);
      rows.push([t, y]);
    });
    return { y: (t) => ys.get(t), rows, breaks, height: y + 40 };
  }

  // ------------------------------------------------------------------ drawing helpers
  function el(parent, name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    parent.appendChild(e);
    return e;
  }
  function group(cls) { return el(canvas, "g", { class: cls }); }
  function arrowHead(x1, y1, x2, y2, len) {
    const a = Math.atan2(y2 - y1, x2 - x1), w = 0.42;
    return " M" + (x2 - len * Math.cos(a - w)).toFixed(1) + " " + (y2 - len * Math.sin(a - w)).toFixed(1) +
      " L" + x2.toFixed(1) + " " + y2.toFixed(1) +
      " L" + (x2 - len * Math.cos(a + w)).toFixed(1) + " " + (y2 - len * Math.sin(a + w)).toFixed(1);
  }
  function cross(x, y, r) {
    return "M" + (x - r) + " " + (y - r) + " L" + (x + r) + " " + (y + r) +
      " M" + (x - r) + " " + (y + r) + " L" + (x + r) + " " + (y - r);
  }
  function truncate(s, n) { return s.length > n ? s.slice(0, Math.max(1, n - 1)) + "\u2026" : s; }

  // ------------------------------------------------------------------ draw
  let geometry = null;

  function draw() {
    const n = data.nodes.length;
    const avail = Math.max(document.documentElement.clientWidth - 24, 600);
    const spacing = Math.max(MIN_SPACING, Math.min(MAX_SPACING, (avail - GUTTER - 40) / Math.max(n, 1)));
    const width = GUTTER + spacing * n + 40;
    const laneX = (node) => GUTTER + spacing * ((laneOf.has(String(node)) ? laneOf.get(String(node)) : 0) + 0.5);
    const axis = makeAxis();
    const height = Math.max(axis.height, 200);
    geometry = { axis, width, height };

    while (canvas.lastChild && canvas.lastChild.nodeName !== "defs") canvas.removeChild(canvas.lastChild);
    canvas.setAttribute("width", width);
    canvas.setAttribute("height", height);
    canvas.setAttribute("viewBox", "0 0 " + width + " " + height);

    // Lane headers (sticky strip above the canvas).
    while (head.firstChild) head.removeChild(head.firstChild);
    head.setAttribute("width", width);
    head.setAttribute("height", 30);
    el(head, "text", { x: 8, y: 19, class: "axis-title" }, "time \u2193");
    data.nodes.forEach((node) => {
      const x = laneX(node);
      el(head, "rect", { x: x - 34, y: 4, width: 68, height: 22, rx: 5, class: "lane-head-box" });
      el(head, "text", { x, y: 19.5, class: "lane-head", "text-anchor": "middle" }, "node " + node);
    });

    const yOf = (t, s) => axis.y(t, s);

    // Partition bands.
    const gBands = group("bands");
    data.parts.forEach((p, i) => {
      const y0 = yOf(p.ts, p.ss), y1 = Math.max(yOf(p.te, p.se), y0 + 4);
      const g = el(gBands, "g", { class: "band partition" + (p.open ? " open" : ""), "data-k": "p" + i });
      el(g, "rect", { x: GUTTER - 6, y: y0, width: width - GUTTER, height: y1 - y0 });
      el(g, "line", { x1: GUTTER - 6, x2: width - 34, y1: y0, y2: y0, class: "band-edge" });
      el(g, "text", { x: width - 38, y: y0 + 12, class: "band-label", "text-anchor": "end" },
        truncate("partition: " + p.desc, 60));
    });

    // Time axis.
    const gAxis = group("axis");
    let lastLabel = -1e9;
    const nearBreak = (y) => axis.breaks.some((b) => Math.abs(b[0] - y) < 12);
    for (const [t, y] of axis.rows) {
      if (y - lastLabel < 34 || nearBreak(y)) continue;
      lastLabel = y;
      el(gAxis, "line", { x1: GUTTER - 30, x2: width - 34, y1: y, y2: y, class: "grid" });
      el(gAxis, "text", { x: GUTTER - 34, y: y + 4, class: "tick", "text-anchor": "end" }, fmtShort(t));
    }
    for (const [y, gap] of axis.breaks) {
      el(gAxis, "rect", { x: 2, y: y - 7, width: width - 36, height: 14, class: "gap" });
      el(gAxis, "text", { x: 6, y: y + 4, class: "gap-label" }, "idle +" + fmtT(gap));
    }

    // Lanes.
    const gLanes = group("lanes");
    data.nodes.forEach((node) => {
      const x = laneX(node);
      el(gLanes, "line", { x1: x, x2: x, y1: 0, y2: height, class: "lane", "data-node": String(node) });
    });

    // Crash and pause spans.
    const gSpans = group("spans");
    data.spans.forEach((sp, i) => {
      const x = laneX(sp.node), y0 = yOf(sp.ts, sp.ss), y1 = Math.max(yOf(sp.te, sp.se), y0 + 4);
      const crash = sp.k === "crash", w = crash ? 22 : 16;
      const g = el(gSpans, "g", { class: "span " + sp.k + (sp.open ? " open" : ""), "data-k": "s" + i, "data-node": String(sp.node) });
      el(g, "rect", { x: x - w / 2, y: y0, width: w, height: y1 - y0, rx: 2 });
      el(g, "line", { x1: x - w / 2 - 4, x2: x + w / 2 + 4, y1: y0, y2: y0, class: "span-start" });
      if (!sp.open) el(g, "line", { x1: x - w / 2 - 4, x2: x + w / 2 + 4, y1: y1, y2: y1, class: "span-end" });
      el(g, "text", { x: x - w / 2 - 6, y: y0 + 11, class: "span-label", "text-anchor": "end" }, crash ? "crash" : "pause");
    });

    // Messages.
    const gMsgs = group("msgs");
    data.msgs.forEach((m, i) => {
      const xs = laneX(m.src), xd = laneX(m.dst), ys = yOf(m.ts, m.ss), ye = yOf(m.te, m.se);
      let cls = "msg";
      if (m.fate === "drop") cls += " dropped";
      else if (m.fate === "flight") cls += " flight";
      if (m.dup !== undefined) cls += " dup";
      const g = el(gMsgs, "g", { class: cls, "data-k": "m" + i, "data-ty": m.ty, stroke: color(m.ty) });
      if (state.hidden.has(m.ty)) g.style.display = "none";
      let d, x2 = xd, y2 = ye;
      if (m.fate === "drop") {
        // Lost in the network: the cross sits part way; receiver down: at the receiver.
        const f = m.why === "crashed" ? 1 : 0.42;
        x2 = xs + (xd - xs) * f;
        if (xs === xd) x2 = xs + 24;
      }
      if (xs === xd && m.fate !== "drop") {
        const bulge = 30;
        d = "M" + xs + " " + ys + " C" + (xs + bulge) + " " + ys + " " + (xs + bulge) + " " + ye + " " + (xs + 3) + " " + ye;
        if (m.fate === "deliver") d += arrowHead(xs + bulge, ye, xs + 1, ye, 7);
      } else {
        d = "M" + xs.toFixed(1) + " " + ys.toFixed(1) + " L" + x2.toFixed(1) + " " + y2.toFixed(1);
        if (m.fate === "deliver") d += arrowHead(xs, ys, x2, y2, 8);
      }
      el(g, "path", { d, class: "hit" });
      el(g, "path", { d, class: "line" });
      if (m.fate === "drop") el(g, "path", { d: cross(x2, y2, 4.5), class: "x" });
      if (m.fate === "flight") el(g, "circle", { cx: x2, cy: y2, r: 3.5, class: "open-end" });
    });

    // Client operations: bars beside the lane, one column per concurrent operation.
    const gOps = group("ops");
    const slots = new Map();
    data.ops.forEach((o, i) => {
      const y0 = yOf(o.ts, o.ss), y1 = Math.max(yOf(o.te, o.se), y0 + 3);
      const key = String(o.node);
      if (!slots.has(key)) slots.set(key, []);
      const ends = slots.get(key);
      let slot = ends.findIndex((e) => e < y0 - 1);
      if (slot < 0) { slot = ends.length; ends.push(0); }
      ends[slot] = y1;
      const x = laneX(o.node) + 14 + (slot % 8) * 6;
      const g = el(gOps, "g", { class: "op " + o.res, "data-k": "o" + i });
      el(g, "rect", { x, y: y0, width: 4, height: y1 - y0, rx: 1 });
    });

    // Marks: timers, events, durable syncs.
    const gMarks = group("marks");
    const lastText = new Map();
    const labelRoom = Math.floor((spacing / 2 - 18) / 5.6);
    data.marks.forEach((k, i) => {
      const x = laneX(k.node), y = yOf(k.t, k.s);
      const g = el(gMarks, "g", { class: "mark " + k.k, "data-k": "k" + i });
      if (k.k === "timer") el(g, "circle", { cx: x, cy: y, r: 4 });
      else if (k.k === "event") el(g, "path", { d: "M" + x + " " + (y - 5.5) + " l5.5 5.5 l-5.5 5.5 l-5.5 -5.5 z" });
      else if (k.k === "durable") el(g, "rect", { x: x - 3, y: y - 3, width: 6, height: 6 });
      else el(g, "path", { d: "M" + (x - 5) + " " + (y + 4) + " l5 -8 l5 8 z" });
      if (k.k === "event" && state.labels && labelRoom >= 4 && ROW * state.zoom >= 8) {
        const key = String(k.node);
        if (!lastText.has(key) || y - lastText.get(key) >= 12) {
          lastText.set(key, y);
          el(g, "text", { x: x - 9, y: y + 3.5, class: "mark-label", "text-anchor": "end" }, truncate(k.text, labelRoom));
        }
      }
    });

    // Phase markers (the end of the simulator's fault phase).
    const gPhases = group("phases");
    data.phases.forEach((ph, i) => {
      const y = yOf(ph.t, ph.s);
      const g = el(gPhases, "g", { class: "phase", "data-k": "h" + i });
      el(g, "line", { x1: GUTTER - 30, x2: width - 34, y1: y, y2: y });
      el(g, "text", { x: width - 38, y: y - 4, "text-anchor": "end" }, truncate(ph.text, 80));
    });

    // Violations.
    const gViol = group("violations");
    data.viol.forEach((v, i) => {
      const y = yOf(v.t, v.s);
      const g = el(gViol, "g", { class: "violation", "data-k": "v" + i });
      el(g, "line", { x1: 4, x2: width - 34, y1: y, y2: y });
      el(g, "text", { x: GUTTER, y: y - 5 }, truncate("\u26a0 violation: " + v.text, 140));
    });
  }

  // ------------------------------------------------------------------ tooltip
  function tipText(k) {
    const i = +k.slice(1);
    switch (k[0]) {
      case "m": return msgTip(data.msgs[i]);
      case "s": return spanTip(data.spans[i]);
      case "p": return partTip(data.parts[i]);
      case "o": return opTip(data.ops[i]);
      case "k": return markTip(data.marks[i]);
      case "v": return "violation at " + fmtT(data.viol[i].t) + "\n" + data.viol[i].text;
      case "h": return fmtT(data.phases[i].t) + "\n" + data.phases[i].text;
      default: return "";
    }
  }
  let hot = null;
  canvas.addEventListener("mousemove", (ev) => {
    const target = ev.target.closest ? ev.target.closest("[data-k]") : null;
    if (target !== hot) {
      if (hot) hot.classList.remove("hot");
      hot = target;
      if (hot) {
        hot.classList.add("hot");
        tip.textContent = tipText(hot.getAttribute("data-k"));
        tip.hidden = false;
      } else tip.hidden = true;
    }
    if (hot) {
      const pad = 14, w = tip.offsetWidth, h = tip.offsetHeight;
      let x = ev.clientX + pad, y = ev.clientY + pad;
      if (x + w > window.innerWidth - 4) x = Math.max(4, ev.clientX - w - pad);
      if (y + h > window.innerHeight - 4) y = Math.max(4, ev.clientY - h - pad);
      tip.style.left = x + "px";
      tip.style.top = y + "px";
    }
  });
  canvas.addEventListener("mouseleave", () => {
    if (hot) hot.classList.remove("hot");
    hot = null;
    tip.hidden = true;
  });

  // ------------------------------------------------------------------ controls
  function setZoom(z, anchorClientY) {
    z = Math.min(20, Math.max(0.001, z));
    const rect = canvas.getBoundingClientRect();
    const anchor = anchorClientY === undefined ? window.innerHeight / 2 : anchorClientY;
    const contentY = anchor - rect.top;
    const ratio = z / state.zoom;
    state.zoom = z;
    draw();
    const newRect = canvas.getBoundingClientRect();
    window.scrollBy(0, newRect.top + (contentY - TOP) * ratio + TOP - anchor);
    showZoom();
  }
  function showZoom() {
    const pct = state.zoom * 100;
    document.getElementById("zoom-level").textContent = (pct >= 10 ? Math.round(pct) : +pct.toPrecision(2)) + "%";
  }
  function scrollToTime(t) {
    const row = geometry.axis.rows.find((r) => r[0] >= t) || geometry.axis.rows[geometry.axis.rows.length - 1];
    if (!row) return;
    const top = canvas.getBoundingClientRect().top + window.scrollY;
    window.scrollTo(0, top + row[1] - 60);
  }
  function fit() {
    const avail = window.innerHeight - 40;
    const base = geometry.height / state.zoom;
    setZoom(avail / base);
    window.scrollTo(0, window.scrollY + canvas.getBoundingClientRect().top - 34);
  }
  document.querySelectorAll("input[name=axis]").forEach((input) => {
    input.addEventListener("change", () => { state.mode = input.value; draw(); });
  });
  document.getElementById("zoom-in").addEventListener("click", () => setZoom(state.zoom * 1.25));
  document.getElementById("zoom-out").addEventListener("click", () => setZoom(state.zoom / 1.25));
  document.getElementById("zoom-fit").addEventListener("click", fit);
  document.getElementById("zoom-reset").addEventListener("click", () => setZoom(1));
  document.getElementById("labels").addEventListener("change", (ev) => { state.labels = ev.target.checked; draw(); });
  canvas.addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey && !ev.metaKey) return;
    ev.preventDefault();
    setZoom(state.zoom * Math.exp(-ev.deltaY * 0.002), ev.clientY);
  }, { passive: false });
  window.addEventListener("keydown", (ev) => {
    if (ev.target && ev.target.tagName === "INPUT" && ev.target.type === "text") return;
    if (ev.key === "+" || ev.key === "=") setZoom(state.zoom * 1.25);
    else if (ev.key === "-") setZoom(state.zoom / 1.25);
    else if (ev.key === "0") setZoom(1);
  });
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 150);
  });

  // Message-type legend: a swatch per type with its count; click to hide or show.
  const typeCounts = data.types.map(() => 0);
  for (const m of data.msgs) typeCounts[m.ty] += 1;
  const typesBox = document.getElementById("types");
  data.types.forEach((name, ty) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "type";
    b.title = "show or hide " + name + " messages";
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = color(ty);
    b.appendChild(sw);
    b.appendChild(document.createTextNode(name + " " + typeCounts[ty]));
    b.addEventListener("click", () => {
      if (state.hidden.has(ty)) state.hidden.delete(ty); else state.hidden.add(ty);
      b.classList.toggle("off", state.hidden.has(ty));
      canvas.querySelectorAll('.msg[data-ty="' + ty + '"]').forEach((g) => {
        g.style.display = state.hidden.has(ty) ? "none" : "";
      });
    });
    typesBox.appendChild(b);
  });

  // Initial view from the address's fragment, e.g. page.html#axis=linear&zoom=0.5 or #fit.
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const axisParam = params.get("axis");
  if (axisParam === "linear" || axisParam === "ordinal" || axisParam === "compressed") {
    state.mode = axisParam;
    document.querySelectorAll("input[name=axis]").forEach((i) => { i.checked = i.value === axisParam; });
  }
  const zoomParam = parseFloat(params.get("zoom") || "");
  if (isFinite(zoomParam) && zoomParam > 0) {
    state.zoom = Math.min(20, Math.max(0.001, zoomParam));
    showZoom();
  }
  if (params.get("labels") === "0") {
    state.labels = false;
    document.getElementById("labels").checked = false;
  }
  const started = performance.now();
  draw();
  if (params.has("fit")) fit();
  const tParam = parseFloat(params.get("t") || "");
  if (isFinite(tParam)) scrollToTime(tParam);
  body.setAttribute("data-draw-ms", String(Math.round(performance.now() - started)));
  body.setAttribute("data-rendered", "ok");
})();
