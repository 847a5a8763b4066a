// The timeline / sequence diagram: one lane for the server (the parent), one per child; every
// lifecycle event is a mark on its lane and every message an arrow between the parent's lane
// and the child's. Our own SVG (no library): the drawing is capped, the store keeps everything.
//
// Cost is bounded however many events arrive: at most MAX_MARKS shapes and MAX_LABELS text
// labels per redraw, redraws at most every REDRAW_MS, and only events inside the visible
// time window are looked at (scanning back from the newest).

import { adaptiveThrottle, fmtClock } from "./ui.js";
import { byteLength, messageDirection, messagePayload, preview, stateText } from "./store.js";

const SVG = "http://www.w3.org/2000/svg";
const LANE_H = 34;
const TOP = 24;
const LEFT = 150;
const MAX_MARKS = 1500;
const MAX_LABELS = 80;
const MAX_LANES = 16;
const REDRAW_MS = 100;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, String(v));
  if (text != null) el.textContent = text;
  return el;
}

const LIFECYCLE = new Set(["spawn", "exit", "close", "error", "disconnect"]);

export function eventLabel(ev) {
  const d = ev.data ?? {};
  switch (ev.type) {
    case "spawn":
      return `spawn pid ${ev.pid ?? d.pid ?? "?"}`;
    case "exit":
      return d.signal ? `exit ${d.signal}` : `exit ${d.code}`;
    case "close":
      return d.signal ? `close ${d.signal}` : `close ${d.code ?? ""}`.trim();
    case "error":
      return `error ${preview(d.message ?? d.error ?? d, 40)}`;
    case "message":
      return preview(messagePayload(ev), 28);
    default:
      return ev.type;
  }
}

export class Timeline {
  /**
   * @param {HTMLElement} root  container (gets the SVG and the tools)
   * @param {import('./store.js').Store} store
   * @param {object} [opts]
   * @param {(job) => boolean} [opts.filter]  which jobs get a lane
   * @param {(ev) => void} [opts.onSelect]
   */
  constructor(root, store, { filter = null, onSelect = null, windowSec = 30 } = {}) {
    this.root = root;
    this.filter = filter;
    this.onSelect = onSelect ?? (() => {});
    this.windowSec = windowSec;
    this.follow = true;
    this.selectedSeq = null;
    this.lastDraw = 0;
    this.drawn = 0;
    this.wrap = root.querySelector(".timeline-wrap") ?? root;
    this.info = root.querySelector(".timeline-info");
    this.svg = s("svg", { role: "img", "aria-label": "Timeline of processes and messages" });
    this.wrap.append(this.svg);
    const win = root.querySelector("select.timeline-window");
    win?.addEventListener("change", () => {
      this.windowSec = Number(win.value);
      this.redraw();
    });
    const fol = root.querySelector("input.timeline-follow");
    fol?.addEventListener("change", () => {
      this.follow = fol.checked;
      if (!this.follow) this.frozenEnd = this.store.lastT;
      this.redraw();
    });
    this.schedule = adaptiveThrottle(() => this.draw(), REDRAW_MS);
    this.setStore(store);
    new ResizeObserver(() => this.redraw()).observe(this.wrap);
  }

  setStore(store) {
    this.unsub?.();
    this.store = store;
    this.unsub = store.subscribe(() => this.schedule());
    this.redraw();
  }

  redraw() {
    this.schedule.now();
  }

  /** Lanes for the jobs active in the window (an event in it, or still alive), the newest
   *  MAX_LANES of them: a long session does not turn the diagram into a wall of idle lanes. */
  lanes(start) {
    const jobs = [...this.store.jobs.values()].filter((j) => (this.filter ? this.filter(j) : true));
    const active = jobs.filter((j) => (j.lastT ?? 0) >= start || j.state === "running" || j.state === "starting");
    this.hiddenLanes = jobs.length - Math.min(active.length, MAX_LANES);
    return active.slice(-MAX_LANES);
  }

  draw() {
    const store = this.store;
    const width = Math.max(320, this.wrap.clientWidth || 800);

    // The window ends at the newest event; it starts `windowSec` earlier, or at the first
    // event if that is later (so a short burst fills the width instead of a corner).
    const lastT = this.follow ? (store.lastT ?? Date.now() / 1000) : (this.frozenEnd ?? store.lastT ?? 0);
    const firstT = store.firstT ?? lastT;
    let start = this.windowSec > 0 ? Math.max(lastT - this.windowSec, firstT) : firstT;
    // Room on the right for the newest marks' labels, a little on the left.
    const pad = Math.max((lastT - start) * 0.04, 0.02);
    const end = lastT + pad * 3;
    start -= pad;
    const span = Math.max(end - start, 0.001);

    const lanes = this.lanes(start);
    const laneIndex = new Map(lanes.map((j, i) => [j.id, i + 1]));
    const height = TOP + (lanes.length + 1) * LANE_H + 6;
    const svg = this.svg;
    // Keyboard users keep their place: the focused mark is focused again after the redraw.
    const active = document.activeElement;
    const focusedSeq = active && svg.contains(active) ? active.getAttribute("data-seq") : null;
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("height", height);

    // On a narrow window the lane names get less room so the plot keeps most of it.
    const left = width < 640 ? 92 : LEFT;
    const plotW = width - left - 16;
    const x = (t) => left + ((t - start) / span) * plotW;
    const laneY = (i) => TOP + i * LANE_H + LANE_H / 2;

    // Lanes and their labels.
    const bg = s("g");
    const narrow = width < 640;
    const rows = [{ label: narrow ? "server" : "server (parent)", sub: "" }, ...lanes.map((j) => ({ label: laneName(j, narrow ? 9 : 18), sub: j.host ? `${stateText(j)} · on ${j.host}` : stateText(j), job: j }))];
    rows.forEach((r, i) => {
      bg.append(s("rect", { x: 0, y: TOP + i * LANE_H, width, height: LANE_H, class: `lane-bg${i % 2 ? " alt" : ""}` }));
      const t = s("text", { x: 6, y: laneY(i) - 2, class: "lane-label" }, r.label);
      bg.append(t);
      if (r.sub) bg.append(s("text", { x: 6, y: laneY(i) + 11, class: "axis-text" }, r.sub));
      bg.append(s("line", { x1: left, x2: width - 8, y1: laneY(i), y2: laneY(i), class: "axis", "stroke-dasharray": "2 4" }));
    });
    svg.append(bg);

    // Time axis.
    const axis = s("g");
    // The first tick says the clock time, the others the offset from it (short, no overlap).
    const ticks = Math.max(2, Math.min(8, Math.floor(plotW / 110)));
    for (let k = 0; k <= ticks; k++) {
      const t = start + (span * k) / ticks;
      const xx = x(t);
      const label = k === 0 ? fmtClock(t) : `+${fmtSpan(t - start)}`;
      axis.append(s("line", { x1: xx, x2: xx, y1: TOP - 4, y2: height, class: "axis" }));
      axis.append(s("text", { x: xx, y: 14, class: "axis-text", "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle" }, label));
    }
    svg.append(axis);

    // Events, newest first, inside the window, capped.
    const marks = s("g");
    const labels = s("g");
    let count = 0;
    let labelCount = 0;
    let outTicks = 0;
    // Per label row, the left edge of the last label placed. Events come newest first (right
    // to left), so a label fits when it ends before that edge; otherwise it is skipped (the
    // mark stays, with its tooltip and details).
    const leftEdge = new Map();
    const labelFits = (row, xx, text) => {
      if (labelCount >= MAX_LABELS) return false;
      const width = text.length * 6.8 + 10;
      const edge = leftEdge.get(row);
      if (edge != null && xx + width > edge) return false;
      leftEdge.set(row, xx);
      return true;
    };
    const evs = store.events;
    let inWindow = 0;
    for (let i = evs.length - 1; i >= 0; i--) {
      const ev = evs[i];
      if (ev.t == null) continue;
      if (ev.t < start) break;
      if (ev.t > end) continue;
      const li = laneIndex.get(ev.job);
      if (li == null) continue;
      inWindow++;
      if (count >= MAX_MARKS) continue;
      const xx = x(ev.t);
      const y = laneY(li);
      if (ev.type === "message") {
        const dir = messageDirection(ev);
        const y0 = dir === "to_child" ? laneY(0) : y;
        const y1 = dir === "to_child" ? y : laneY(0);
        const g = s("g", { class: "mark", tabindex: count < 300 ? 0 : null, "data-seq": ev.seq, "data-job": ev.job, "data-type": "message", "data-dir": dir });
        g.append(s("line", { x1: xx, y1: y0, x2: xx, y2: y1 + (y1 > y0 ? -5 : 5), class: `arrow-${dir}`, "stroke-width": 2, "marker-end": `url(#head-${dir})` }));
        g.append(s("rect", { x: xx - 4, y: Math.min(y0, y1), width: 8, height: Math.abs(y1 - y0), fill: "transparent" }));
        // Hover: direction, size, time, the reply's latency and the payload (the full one is a
        // click away, in the details box).
        const payload = messagePayload(ev);
        const size = (ev._size ??= byteLength(payload));
        const lat = ev._latency != null ? ` · reply after ${(ev._latency * 1000).toFixed(2)} ms` : "";
        g.append(s("title", {}, `${dir === "to_child" ? "parent → child" : "child → parent"} · ${size} B · ${(ev._clock ??= fmtClock(ev.t))}${lat}\n${preview(payload, 400)}`));
        this._hook(g, ev);
        marks.append(g);
        // A message to a child is labelled just below the child's lane, where close and
        // disconnect labels go too: one row, so the two never overlap.
        if (labelFits(dir === "to_child" ? `b${li}` : "server", xx, eventLabel(ev))) {
          labels.append(s("text", { x: xx + 4, y: (dir === "to_child" ? y + 14 : laneY(0) + 13), class: "msg-label", "data-seq": ev.seq, "data-job": ev.job }, eventLabel(ev)));
          labelCount++;
        }
      } else if (ev.type === "stdout" || ev.type === "stderr" || /^fd\d+$/.test(ev.type)) {
        // Output is many small events: thin ticks, and only a bounded number.
        if (outTicks > 600) continue;
        outTicks++;
        const g = s("g", { class: "mark", "data-seq": ev.seq, "data-job": ev.job, "data-type": ev.type });
        g.append(s("rect", { x: xx - 1, y: y + 4, width: 2, height: 9, class: `ev-${ev.type === "stderr" ? "stderr" : "stdout"}` }));
        g.append(s("title", {}, `${ev.type} · ${preview(ev.data?.text ?? ev.data, 120)}`));
        this._hook(g, ev);
        marks.append(g);
      } else if (LIFECYCLE.has(ev.type) || ev.type === "dropped") {
        const bad = ev.type === "error" || (ev.type === "exit" && (ev.data?.signal || ev.data?.code));
        const cls = ev.type === "exit" ? `ev-exit${bad ? " bad" : ""}` : LIFECYCLE.has(ev.type) ? `ev-${ev.type}` : "ev-other";
        const g = s("g", { class: "mark", tabindex: 0, "data-seq": ev.seq, "data-job": ev.job, "data-type": ev.type });
        // close follows exit closely: a ring, so the exit dot under it stays visible.
        if (ev.type === "close") g.append(s("circle", { cx: xx, cy: y, r: 3.5, class: "ev-close-ring" }));
        else g.append(s("circle", { cx: xx, cy: y, r: 5, class: cls }));
        g.append(s("title", {}, `${eventLabel(ev)} · ${(ev._clock ??= fmtClock(ev.t))}`));
        this._hook(g, ev);
        marks.append(g);
        // close sits just after exit: its label goes below the lane so both stay readable.
        const below = ev.type === "close" || ev.type === "disconnect";
        if (labelFits(`${below ? "b" : "l"}${li}`, xx, eventLabel(ev))) {
          labels.append(s("text", { x: xx + 7, y: below ? y + 14 : y - 6, class: "ev-label", "data-seq": ev.seq, "data-job": ev.job }, eventLabel(ev)));
          labelCount++;
        }
      } else continue;
      count++;
    }
    // Collected newest first; drawn oldest first, so the newest mark is on top.
    marks.replaceChildren(...[...marks.children].reverse());
    svg.append(defs(), marks, labels);
    if (focusedSeq != null) marks.querySelector(`.mark[data-seq="${focusedSeq}"]`)?.focus({ preventScroll: true });
    this.drawn = count;
    if (this.info) {
      const hidden = inWindow - count;
      const idle = this.hiddenLanes > 0 ? ` · ${this.hiddenLanes} idle or older processes without a lane (widen the window)` : "";
      this.info.textContent = `${store.events.length} events kept · ${count} drawn${hidden > 0 ? ` (${hidden} more in view not drawn)` : ""}${idle}`;
    }
  }

  _hook(g, ev) {
    if (ev.seq === this.selectedSeq) g.classList.add("selected");
    const pick = () => {
      this.selectedSeq = ev.seq;
      this.onSelect(ev);
      this.svg.querySelectorAll(".mark.selected").forEach((m) => m.classList.remove("selected"));
      g.classList.add("selected");
    };
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        pick();
      }
    });
  }
}

function fmtSpan(sec) {
  if (sec < 1) return `${Math.round(sec * 1000)} ms`;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  return `${Math.floor(sec / 60)} m ${Math.round(sec % 60)} s`;
}

function laneName(j, max = 18) {
  const name = j.label || j.kind || "job";
  const short = name.length > max ? `${name.slice(0, max - 1)}…` : name;
  return `${short} ${j.pid ?? ""}`.trim();
}

function defs() {
  const d = s("defs");
  for (const dir of ["to_child", "to_parent"]) {
    const m = s("marker", { id: `head-${dir}`, viewBox: "0 0 10 10", refX: 5, refY: 5, markerWidth: 5, markerHeight: 5, orient: "auto-start-reverse" });
    m.append(s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: `arrow-${dir}`, style: `fill: var(--${dir.replace("_", "-")})` }));
    d.append(m);
  }
  return d;
}
