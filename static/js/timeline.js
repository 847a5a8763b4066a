// The timeline, drawn like a profiler's (anchors: the Perfetto UI, Chrome DevTools' Performance
// panel): one lane for the server, one per child with its grandchildren under it; lifecycle
// marks, output ticks, and every message as an arrow between the child's lane and the server's.
//
// Shapes go on a canvas (20,000 events cost the same as 20: only the lanes in view are drawn,
// and marks closer than a few pixels are drawn as one group with its count). Text stays in the
// DOM, placed so that no label touches another: lane names, tick labels and the labels that fit
// (timeline-model.js decides); a mark without room for its label shows it on hover or focus.
// Zoom (wheel, pinch, W/S), pan (drag, A/D), fit a job or everything; an overview strip marks the
// part in view. Keyboard users walk the marks with the arrow keys; what is under the cursor is
// shown beside it and read out.

import { adaptiveThrottle, cssVar, fmtClock, fmtMs, frameThrottle, h } from "./ui.js";
import { byteLength, jobName, jobTitle, messageDirection, messagePayload, preview } from "./store.js";
import {
  EventIndex, LANE, LabelRows, TimeWindow, buildLanes, eventLabel, fmtOffset, fmtSpan, forGroups,
  groupDirection, laneTexts, padded, ticks,
} from "./timeline-model.js";

export { eventLabel };

const AXIS_H = 22;
const GAP_PX = 8; // marks closer than this are drawn as one group
const LABEL_H = 14;
const MAX_LABELS = 400;
const REDRAW_MS = 100;
const KEY_ZOOM = 1.6;
const PIN_ICON = "M4 1h6v1.5L9 3.5v3l2.5 2.5H8v4L7 15l-1-1.5v-4H2.5L5 6.5v-3L4 2.5z";

/** One pool of absolutely placed text elements, reused frame after frame. */
class TextPool {
  constructor(parent, cls) {
    this.parent = parent;
    this.cls = cls;
    this.els = [];
    this.used = 0;
  }

  begin() {
    this.used = 0;
  }

  put(text, x, y, extra = "", data = null) {
    let el = this.els[this.used];
    if (!el) {
      el = h("span", { class: this.cls });
      this.parent.append(el);
      this.els.push(el);
    }
    this.used++;
    if (el._text !== text) el.textContent = el._text = text;
    const cls = extra ? `${this.cls} ${extra}` : this.cls;
    if (el._cls !== cls) el.className = el._cls = cls;
    el.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
    if (el.hidden) el.hidden = false;
    const seq = data?.seq ?? "";
    const job = data?.job ?? "";
    if (el._seq !== seq) el.dataset.seq = el._seq = seq;
    if (el._job !== job) el.dataset.job = el._job = job;
    return el;
  }

  end() {
    for (let i = this.used; i < this.els.length; i++) if (!this.els[i].hidden) this.els[i].hidden = true;
  }
}

export class Timeline {
  /**
   * @param {HTMLElement} root  the panel: holds `.timeline-wrap`, the tool buttons, `.timeline-info`
   * @param {import('./store.js').Store} store
   * @param {object} [opts]
   * @param {(job) => boolean} [opts.filter]  which jobs get a lane
   * @param {(ev) => void} [opts.onSelect]  a mark or arrow was chosen
   * @param {(id: string) => void} [opts.onSelectJob]  a lane was chosen (default: select it here)
   * @param {number} [opts.windowSec]  the live view's span (0 = everything)
   */
  constructor(root, store, { filter = null, onSelect = null, onSelectJob = null, windowSec = 30 } = {}) {
    this.root = root;
    this.filter = filter;
    this.onSelect = onSelect ?? (() => {});
    this.onSelectJob = onSelectJob ?? ((id) => this.selectJob(id));
    this.windowSec = windowSec;
    this.follow = true;
    this.fit = "recent"; // "recent" | "all" | "job" | null (where the user zoomed / panned to)
    this.win = new TimeWindow();
    this.index = new EventIndex();
    this.collapsed = new Set();
    this.pinned = new Set();
    this.selectedJob = null;
    this.selectedSeq = null;
    this.cursor = null; // {lane, ev}: the keyboard's mark
    this.scrollTop = 0;
    this.stick = true; // the lanes follow the newest (at the bottom) until the user scrolls up
    this.drawn = 0;
    this.stats = { draws: 0, drawMs: [] };
    this.scene = { marks: [], lanes: [], lanesInView: [], laneCount: 0 };
    this.textWidths = new Map();
    this.pointers = new Map();
    this.buildDom();
    this.bindTools();
    this.bindPointer();
    this.bindKeys();
    this.readColours();
    document.addEventListener("themechange", () => {
      this.readColours();
      this.overviewKey = null;
      this.frame();
    });
    this.schedule = adaptiveThrottle(() => this.draw(), REDRAW_MS);
    this.frame = frameThrottle(() => this.draw());
    this.setStore(store);
    new ResizeObserver(() => {
      this.sized = false;
      this.frame();
    }).observe(this.wrap);
  }

  // ---------------------------------------------------------------- building
  buildDom() {
    this.wrap = this.root.querySelector(".timeline-wrap") ?? this.root;
    this.info = this.root.querySelector(".timeline-info");
    const keysId = this.root.querySelector(".tl-keys-help")?.id;
    this.ovCaption = h("div", { class: "tl-ov-caption" });
    this.ovCanvas = h("canvas", { class: "tl-ov-canvas", "aria-hidden": "true" });
    this.ovWindow = h("div", { class: "tl-ov-window", title: "The part in view: drag it, or drag across the strip to choose another" });
    this.ovStrip = h("div", { class: "tl-overview-strip" }, this.ovCanvas, this.ovWindow);
    this.overview = h("div", { class: "tl-overview" }, this.ovCaption, this.ovStrip);
    this.canvas = h("canvas", { class: "tl-canvas", "aria-hidden": "true" });
    this.axis = h("div", { class: "tl-axis", "aria-hidden": "true" });
    this.plot = h("div", {
      class: "tl-plot", tabindex: 0, role: "application", "aria-roledescription": "timeline",
      "aria-label": "Timeline of processes and messages. Arrow keys walk the marks, W and S zoom, A and D pan, Enter shows a mark's details.",
      "aria-describedby": keysId,
    });
    this.headsFixed = h("div", { class: "tl-heads", role: "list", "aria-label": "Lanes (pinned)" });
    this.headsScroll = h("div", { class: "tl-heads", role: "list", "aria-label": "Lanes" });
    this.labelsFixed = h("div", { class: "tl-labels" });
    this.labelsScroll = h("div", { class: "tl-labels" });
    this.clip = h("div", { class: "tl-clip" }, this.labelsScroll, this.headsScroll);
    this.tip = h("div", { class: "tl-tip", role: "tooltip", hidden: true });
    this.empty = h("div", { class: "tl-empty muted", hidden: true }, "No process yet: each one started gets a lane here.");
    this.stage = h("div", { class: "tl-stage" }, this.canvas, this.plot, this.axis, this.clip, this.labelsFixed, this.headsFixed, this.empty, this.tip);
    this.filler = h("div", { class: "tl-filler" });
    this.scroller = h("div", { class: "tl-scroll" }, this.stage, this.filler);
    this.announce = h("div", { class: "sr-only", "aria-live": "polite" });
    this.wrap.replaceChildren(this.overview, this.scroller, this.announce);
    this.ctx = this.canvas.getContext("2d");
    this.ovCtx = this.ovCanvas.getContext("2d");
    this.measure = document.createElement("canvas").getContext("2d");
    this.labelPools = { fixed: new TextPool(this.labelsFixed, "tl-label"), scroll: new TextPool(this.labelsScroll, "tl-label") };
    this.tickPool = new TextPool(this.axis, "tl-tick");
    this.heads = new Map(); // lane key -> header element
    this.scroller.addEventListener("scroll", () => {
      this.scrollTop = this.scroller.scrollTop;
      if (this.ownScroll == null || Math.abs(this.scrollTop - this.ownScroll) > 1) {
        this.toReveal = null; // the user's
      }
      this.ownScroll = null;
      this.stick = this.scrollTop >= this.total - this.viewH - 2;
      this.frame();
    }, { passive: true });
  }

  bindTools() {
    const q = (sel) => this.root.querySelector(sel);
    q(".tl-zoom-in")?.addEventListener("click", () => this.zoomBy(1 / KEY_ZOOM));
    q(".tl-zoom-out")?.addEventListener("click", () => this.zoomBy(KEY_ZOOM));
    this.fitJobBtn = q(".tl-fit-job");
    this.fitJobBtn?.addEventListener("click", () => this.fitJob());
    q(".tl-fit-all")?.addEventListener("click", () => this.fitAll());
    this.followBox = q("input.timeline-follow");
    this.followBox?.addEventListener("change", () => {
      this.follow = this.followBox.checked;
      this.frame();
    });
    this.syncTools();
  }

  syncTools() {
    if (this.followBox && this.followBox.checked !== this.follow) this.followBox.checked = this.follow;
    if (this.fitJobBtn && this.fitJobBtn.disabled !== !this.selectedJob) this.fitJobBtn.disabled = !this.selectedJob;
  }

  readColours() {
    const c = (name) => cssVar(name);
    this.col = {
      lane: c("--lane"), laneAlt: c("--lane-alt"), border: c("--border"), muted: c("--muted"), fg: c("--fg"),
      child: c("--to-child"), parent: c("--to-parent"), info: c("--info"), ok: c("--ok"), bad: c("--bad"),
      warn: c("--warn"), accent: c("--accent"), focus: c("--focus"), panel: c("--panel"), stderr: c("--stderr"),
    };
    const mono = cssVar("--mono") || "monospace";
    this.labelFont = `11px ${mono}`;
    this.measure.font = this.labelFont;
    this.textWidths.clear();
  }

  setStore(store) {
    this.unsub?.();
    this.store = store;
    this.unsub = store.subscribe(() => this.schedule());
    this.cursor = null;
    this.lanesKey = null;
    this.overviewKey = null;
    this.redraw();
  }

  redraw() {
    this.schedule.now();
  }

  // ---------------------------------------------------------------- the window
  /** The time window in view, in seconds (the feed's clock). */
  get view() {
    return { start: this.win.start, end: this.win.end };
  }

  /** The first and last time of the events on the lanes shown. */
  dataRange() {
    let first = Infinity;
    let last = -Infinity;
    for (const row of this.lanes.all) {
      const lane = row.kind === "job" ? this.index.lanes.get(row.key) : null;
      if (!lane) continue;
      if (lane.first < first) first = lane.first;
      if (lane.last > last) last = lane.last;
    }
    if (first === Infinity) {
      const t = this.store.lastT ?? Date.now() / 1000;
      return [t - 1, t];
    }
    // A running job lives on: "now" is the newest thing the server said.
    if (this.store.lastT != null && this.store.lastT > last && this.anyRunning) last = this.store.lastT;
    return [first, last];
  }

  jobRange(id) {
    const lane = this.index.lanes.get(id);
    const j = this.store.jobs.get(id);
    if (!lane) return null;
    let end = lane.last;
    if (j && (j.state === "running" || j.state === "starting") && this.store.lastT != null) end = Math.max(end, this.store.lastT);
    return [Math.min(lane.first, j?.spawnAt ?? Infinity), end];
  }

  updateWindow() {
    const [first, last] = this.dataRange();
    this.allRange = [first, last];
    if (!this.follow && this.win.ready) return;
    let range;
    if (this.fit === "all" || (this.fit === "recent" && !(this.windowSec > 0))) range = padded(first, last);
    else if (this.fit === "recent") range = padded(Math.max(first, last - this.windowSec), last);
    else if (this.fit === "job") range = (this.selectedJob && this.jobRange(this.selectedJob)) ? padded(...this.jobRange(this.selectedJob), 0.05, 0.08) : padded(first, last);
    else {
      const span = this.win.span;
      range = [last + span * 0.05 - span, last + span * 0.05];
    }
    this.win.set(range[0], range[1]);
    this.win.ready = true;
  }

  maxSpan() {
    const [a, b] = this.allRange ?? [0, 1];
    return Math.max((b - a) * 3, 0.01);
  }

  /** The user moved the window: it no longer fits anything or follows the live edge. */
  moved() {
    this.fit = null;
    this.follow = false;
    this.syncTools();
    this.frame();
  }

  zoomBy(factor, anchor) {
    this.win.zoom(factor, anchor ?? this.cursorTime() ?? (this.win.start + this.win.end) / 2, this.maxSpan());
    this.moved();
  }

  panBy(fraction) {
    this.win.pan(this.win.span * fraction);
    this.moved();
  }

  /** Fit the window to `fit` ("all" or "job") now; it keeps fitting while it follows live. */
  fitTo(fit) {
    this.fit = fit;
    this.win.ready = false;
    const keep = this.follow;
    this.follow = true;
    this.updateWindow();
    this.follow = keep;
    this.frame();
  }

  fitAll() {
    this.fitTo("all");
  }

  /** Back to the live default: the last `windowSec` seconds, following new events. */
  followRecent() {
    this.fit = "recent";
    this.follow = true;
    this.win.ready = false;
    this.syncTools();
    this.frame();
  }

  fitJob() {
    if (!this.selectedJob) return;
    this.fitTo("job");
    this.revealLane(this.selectedJob);
  }

  /** Highlight a job's lanes and arrows (the explorer calls this when the tree selects one). */
  selectJob(id) {
    if (this.selectedJob === id) return;
    this.selectedJob = id;
    this.syncTools();
    if (id) this.revealLane(id);
    this.frame();
  }

  /** Scroll the lanes so that `id`'s is in view, now or, for a job whose lane is not drawn
   *  yet (it was just launched), at the draw that first has it. */
  revealLane(id) {
    this.toReveal = id;
    this.frame();
  }

  /** Lanes are in start order, so the newest are at the bottom: while the lanes are scrolled
   *  to the bottom (as they start), they stay there as new lanes come, as a terminal does. */
  stickToBottom() {
    const max = this.total - this.viewH;
    if (this.stick && !this.toReveal && this.scrollTop < max) {
      this.scrollTop = max;
      this.scroller.scrollTop = this.ownScroll = max;
    }
  }

  scrollToReveal() {
    const id = this.toReveal;
    if (!id || !this.lanes) return;
    if (this.lanes.fixed.some((r) => r.key === id)) {
      this.toReveal = null;
      return;
    }
    const at = this.lanes.scroll.findIndex((r) => r.key === id);
    if (at < 0) return;
    // Kept until the user scrolls: a job just launched gets its grandchildren's lanes later.
    // The lane and, room permitting, the lanes of its children and grandchildren below it.
    const row = this.lanes.scroll[at];
    let end = at + 1;
    while (end < this.lanes.scroll.length && this.lanes.scroll[end].depth > row.depth) end++;
    const last = this.lanes.scroll[end - 1];
    const room = this.viewH - this.scrollTopY;
    const bottom = Math.min(last.y + last.height, row.y + room);
    if (row.y < this.scrollTop || bottom > this.scrollTop + room) {
      this.scrollTop = Math.max(0, Math.min(bottom - room, this.total - this.viewH));
      this.scroller.scrollTop = this.ownScroll = this.scrollTop;
    }
  }

  // ---------------------------------------------------------------- drawing
  draw() {
    const began = performance.now();
    const store = this.store;
    this.index.update(store);
    const lanesKey = `${store.version}|${[...this.collapsed]}|${[...this.pinned]}`;
    if (lanesKey !== this.lanesKey) {
      this.lanes = buildLanes(store, { filter: this.filter, collapsed: this.collapsed, pinned: this.pinned });
      this.lanesKey = lanesKey;
      this.anyRunning = this.lanes.all.some((r) => r.job && (r.job.state === "running" || r.job.state === "starting"));
      let y = 0;
      for (const r of this.lanes.scroll) {
        r.y = y;
        y += r.height;
      }
      this.scrollH = y;
      this.fixedH = this.lanes.fixed.reduce((s, r) => s + r.height, 0);
      this.sized = false;
    }
    this.layout();
    this.stickToBottom();
    this.scrollToReveal();
    this.updateWindow();
    this.paint();
    this.paintOverview();
    const took = performance.now() - began;
    this.stats.draws++;
    this.stats.drawMs.push(took);
    if (this.stats.drawMs.length > 1000) this.stats.drawMs.splice(0, 500);
  }

  /** Sizes: the lanes' scroll box is as tall as its lanes, up to a cap; the stage (canvas and
   *  text) stays put inside it while the lanes scroll under the pinned ones. */
  layout() {
    const width = Math.max(280, this.wrap.clientWidth || 800);
    const narrow = width < 640;
    const total = AXIS_H + this.fixedH + this.scrollH;
    const cap = narrow ? 380 : 480;
    const viewH = Math.min(total, cap);
    if (this.sized && width === this.width && viewH === this.viewH && total === this.total) return;
    this.sized = true;
    this.stageRect = null;
    this.width = width;
    this.viewH = viewH;
    this.total = total;
    // Lane names get 30% of the width (150 to 220 px): "#12 · compute.py" and "pid 5420 ·
    // exited 0" fit; where they do not, a head shortens its texts (laneTexts).
    this.headW = Math.round(Math.min(220, Math.max(150, width * 0.3)));
    this.plotL = this.headW;
    this.plotR = width - 10;
    this.scrollTopY = AXIS_H + this.fixedH; // where the scrolling lanes begin on the stage
    this.scroller.style.height = `${viewH}px`;
    this.stage.style.height = `${viewH}px`;
    this.filler.style.height = `${Math.max(0, total - viewH)}px`;
    const dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(viewH * dpr);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${viewH}px`;
    Object.assign(this.plot.style, { left: `${this.plotL}px`, top: `${AXIS_H}px`, width: `${this.plotR - this.plotL}px`, height: `${viewH - AXIS_H}px` });
    Object.assign(this.clip.style, { top: `${this.scrollTopY}px`, height: `${Math.max(0, viewH - this.scrollTopY)}px` });
    this.empty.style.left = `${this.plotL + 8}px`;
    this.empty.style.top = `${AXIS_H + 6}px`;
    this.overview.style.setProperty("--head-w", `${this.headW}px`);
    this.overview.style.setProperty("--plot-right", `${width - this.plotR}px`);
    this.overviewKey = null;
    const maxScroll = Math.max(0, total - viewH);
    if (this.scrollTop > maxScroll) this.scrollTop = maxScroll;
  }

  textWidth(text) {
    let w = this.textWidths.get(text);
    if (w == null) {
      if (this.textWidths.size > 5000) this.textWidths.clear();
      w = Math.ceil(this.measure.measureText(text).width) + 6; // the label's padding
      this.textWidths.set(text, w);
    }
    return w;
  }

  /** The rows on the stage now, each with its top (stage px): the fixed ones, then the
   *  scrolling ones that are at least partly in view. */
  visibleRows() {
    const rows = [];
    let y = AXIS_H;
    for (const r of this.lanes.fixed) {
      rows.push({ row: r, top: y, fixed: true });
      y += r.height;
    }
    const top = this.scrollTopY;
    const bottom = this.viewH;
    const scroll = this.lanes.scroll;
    // Binary search the first row in view: 200 lanes or 2,000, the same cost.
    let lo = 0;
    let hi = scroll.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (scroll[mid].y + scroll[mid].height <= this.scrollTop) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < scroll.length; i++) {
      const r = scroll[i];
      const t = top + r.y - this.scrollTop;
      if (t >= bottom) break;
      rows.push({ row: r, top: t, fixed: false });
    }
    return rows;
  }

  paint() {
    const { ctx, col, win } = this;
    const dpr = this.dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.viewH);
    const plotL = this.plotL;
    const plotR = this.plotR;
    const pxPerSec = (plotR - plotL) / win.span;
    const x = (t) => plotL + (t - win.start) * pxPerSec;
    const rows = this.visibleRows();
    const serverMid = AXIS_H + LANE.server / 2;
    const selected = this.selectedJob;
    const marks = [];
    this.scene = { marks, lanes: [], lanesInView: [], laneCount: this.lanes.all.length, width: this.width };
    const labelsTaken = [];
    const clipTop = this.scrollTopY;

    // Lane backgrounds: alternate shades; the selected job's lanes in the accent's tint.
    for (const { row, top, fixed } of rows) {
      const y0 = fixed ? top : Math.max(top, clipTop);
      const y1 = top + row.height;
      if (y1 <= y0) continue;
      const mine = selected && row.job && row.job.id === selected;
      ctx.fillStyle = row.n % 2 ? col.lane : col.laneAlt;
      ctx.fillRect(0, y0, this.width, y1 - y0);
      if (mine) {
        ctx.globalAlpha = 0.16;
        ctx.fillStyle = col.accent;
        ctx.fillRect(0, y0, this.width, y1 - y0);
        ctx.globalAlpha = 1;
      }
      ctx.fillStyle = col.border;
      ctx.fillRect(0, y1 - 1, this.width, 1);
      this.scene.lanes.push({ key: row.key, job: row.job?.id ?? null, top, height: row.height, fixed });
    }
    ctx.fillStyle = col.border;
    ctx.fillRect(0, clipTop - 1, this.width, 1);

    // Ticks: grid lines here, their labels in the DOM.
    const origin = this.allRange?.[0] ?? win.start;
    const tk = ticks(win.start, win.end, plotR - plotL, 110, origin);
    ctx.globalAlpha = 0.6;
    for (const t of tk.times) ctx.fillRect(Math.round(x(t)), AXIS_H, 1, this.viewH - AXIS_H);
    ctx.globalAlpha = 1;
    this.tickPool.begin();
    const tickRows = new LabelRows(plotL, plotR + 6, 1, 10);
    this.tickPool.put(fmtClock(origin), 6, 4, "tl-origin");
    for (const t of tk.times) {
      const text = fmtOffset(t - origin, tk.step);
      const w = this.textWidth(text);
      const at = Math.min(Math.max(x(t) - w / 2, plotL), plotR + 6 - w);
      if (tickRows.free(0, at - 10, at + w + 10)) {
        tickRows.block(0, at - 10, at + w + 10);
        this.tickPool.put(text, at, 4);
      }
    }
    this.tickPool.end();

    // Clip the scrolling lanes to their part of the stage.
    const clipScroll = () => {
      ctx.save();
      ctx.beginPath();
      ctx.rect(0, clipTop, this.width, this.viewH - clipTop);
      ctx.clip();
    };

    // Life bars: from spawn to exit (or now), behind everything else.
    for (const { row, top, fixed } of rows) {
      if (!row.job) continue;
      if (!fixed) clipScroll();
      const j = row.job;
      const lane = this.index.lanes.get(j.id);
      const from = j.spawnAt ?? lane?.first;
      const running = j.state === "running" || j.state === "starting";
      const to = row.kind === "grand" ? (running ? this.store.lastT : j.exitAt ?? lane?.last) : j.exitAt ?? (running ? this.store.lastT : lane?.last);
      if (from != null && to != null) {
        const x0 = Math.max(plotL, x(from));
        const x1 = Math.min(plotR, x(to));
        if (x1 > x0) {
          const mid = top + row.height / 2;
          ctx.globalAlpha = row.kind === "grand" ? 0.5 : 0.28;
          ctx.fillStyle = row.kind === "grand" ? col.muted : col.info;
          ctx.fillRect(x0, mid - (row.kind === "grand" ? 2 : 1.5), x1 - x0, row.kind === "grand" ? 4 : 3);
          ctx.globalAlpha = 1;
        }
      }
      if (!fixed) ctx.restore();
    }

    // Pass 1: which lanes are in view, and the groups their marks fall into at this zoom.
    const lanesDrawn = [];
    for (const { row, top, fixed } of rows) {
      if (row.kind !== "job") continue;
      if (!fixed && !(top + row.height > clipTop && top < this.viewH)) continue;
      this.scene.lanesInView.push(row.key);
      const lane = this.index.lanes.get(row.key);
      if (!lane) continue;
      const d = { row, top, fixed, lane, mid: top + row.height / 2, msg: [], out: [], life: [] };
      // Each group becomes a mark: its events (arr[i..j)), where it starts and ends on screen.
      for (const track of ["msg", "out", "life"]) {
        const arr = lane[track];
        const gap = track === "life" && !row.collapsed ? 4 : GAP_PX;
        forGroups(arr, win.start, win.end, pxPerSec, gap, (i, j) => {
          const ev = arr[i];
          const count = j - i;
          // Arrows sit on the middle of a pixel, so a 1 px line is one sharp column.
          const x0 = track === "msg" ? Math.round(x(ev.t)) + 0.5 : x(ev.t);
          d[track].push({
            lane: row.key, track, arr, i, j, count, ev, fixed, labelled: false,
            type: count === 1 ? ev.type : "group", seq: count === 1 ? ev.seq : null,
            x: x0, x1: count > 1 ? x(arr[j - 1].t) : x0,
          });
        });
      }
      lanesDrawn.push(d);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(plotL - 6, AXIS_H, plotR - plotL + 12, this.viewH - AXIS_H);
    ctx.clip();

    // Pass 2: arrow shafts, from the child's lane up to the server's (to the parent) or down
    // from it (to the child), thicker for bigger payloads; they cross the lanes between, so
    // they are drawn first, under every mark. A lane scrolled under the pinned ones sends none.
    const serverEnd = serverMid + 4;
    for (const d of lanesDrawn) {
      if (!d.fixed && d.mid < clipTop) continue;
      const dim = selected && selected !== d.row.key;
      const laneEnd = d.row.collapsed ? d.mid : d.mid - 4;
      for (const m of d.msg) {
        const { ev, x: xx } = m;
        const dir = (m.dir = m.count === 1 ? messageDirection(ev) : groupDirection(m.arr, m.i, m.j));
        const colour = dir === "to_child" ? col.child : dir === "to_parent" ? col.parent : col.muted;
        const size = m.count === 1 ? (ev._size ??= byteLength(messagePayload(ev))) : 0;
        ctx.globalAlpha = dim ? 0.16 : selected ? 1 : 0.8;
        ctx.strokeStyle = colour;
        ctx.fillStyle = colour;
        ctx.lineWidth = m.count === 1 ? Math.min(4, 1 + Math.log10(size + 1) / 1.5) + (selected && !dim ? 0.5 : 0) : 1.5;
        ctx.beginPath();
        ctx.moveTo(xx, dir === "to_child" ? serverEnd : laneEnd);
        ctx.lineTo(xx, dir === "to_child" ? laneEnd - 5 : serverEnd + 5);
        ctx.stroke();
        if (dir !== "to_parent") arrowHead(ctx, xx, laneEnd, 1);
        if (dir !== "to_child") arrowHead(ctx, xx, serverEnd, -1);
      }
    }
    ctx.globalAlpha = 1;

    // Pass 3: the marks of each lane, and the labels they would like.
    let drawn = 0;
    let labelCount = 0;
    const pools = this.labelPools;
    for (const d of lanesDrawn) {
      const { row, top, fixed, lane, mid } = d;
      const dim = selected && selected !== row.key;
      const small = row.collapsed;
      const candidates = [];
      if (!fixed) clipScroll();

      // Messages: a dot where the arrow meets the lane; a reply's round trip as a thin bracket
      // back to the request it answers; a group as a bar.
      for (const m of d.msg) {
        const { ev, count, x: xx, x1 } = m;
        const dir = m.dir ?? (m.count === 1 ? messageDirection(ev) : groupDirection(m.arr, m.i, m.j));
        ctx.fillStyle = dir === "to_child" ? col.child : dir === "to_parent" ? col.parent : col.muted;
        ctx.globalAlpha = dim ? 0.3 : 1;
        if (count > 1) roundRect(ctx, xx - 2, mid - 3, x1 - xx + 4, 6, 3);
        else {
          if (ev._latency != null && !small) {
            const back = Math.max(plotL, x(ev.t - ev._latency));
            if (xx - back >= 4) ctx.fillRect(back, mid - 8, xx - back, 1.5);
          }
          ctx.beginPath();
          ctx.arc(xx, mid, 2.5, 0, Math.PI * 2);
          ctx.fill();
        }
        ctx.globalAlpha = 1;
        Object.assign(m, { y: top + 5, bx0: xx - 4, bx1: x1 + 4, by0: top, by1: mid + 4, ay0: serverMid });
        marks.push(m);
        drawn++;
        if (count === 1) candidates.push({ m, prio: 1, text: messageLabel(ev), rows: dir === "to_child" ? [1, 0] : [0, 1] });
        else candidates.push({ m, prio: 3, text: `×${count}`, count: true, rows: [0, 1], x: x1 });
      }

      // Output: thin ticks under the midline; a group as a bar.
      for (const m of d.out) {
        const { ev, count, x: xx, x1 } = m;
        ctx.fillStyle = ev.type === "stderr" ? col.stderr : col.muted;
        ctx.globalAlpha = dim ? 0.3 : 0.85;
        const y0 = small ? mid + 2 : mid + 6;
        ctx.fillRect(xx - 1, y0, Math.max(2, x1 - xx + 2), small ? 4 : 6);
        ctx.globalAlpha = 1;
        Object.assign(m, { y: y0 + 3, bx0: xx - 3, bx1: x1 + 3, by0: y0 - 2, by1: y0 + 8 });
        marks.push(m);
        drawn++;
        if (count > 1) candidates.push({ m, prio: 4, text: `×${count}`, count: true, rows: [1, 0], x: x1 });
      }

      // Lifecycle: a dot per event (close is a ring, so the exit under it stays visible).
      const life = lane.life;
      const r = small ? 3.5 : 5;
      for (const m of d.life) {
        const { ev, count, i, j, x: xx, x1 } = m;
        ctx.globalAlpha = dim ? 0.45 : 1;
        if (count > 1) {
          ctx.fillStyle = life.slice(i, j).some(isBad) ? col.bad : col.muted;
          roundRect(ctx, xx - r, mid - r, x1 - xx + 2 * r, 2 * r, r);
        } else if (ev.type === "close") {
          ctx.strokeStyle = col.muted;
          ctx.lineWidth = 2;
          ctx.fillStyle = col.panel;
          ctx.beginPath();
          ctx.arc(xx, mid, r - 1.5, 0, Math.PI * 2);
          ctx.fill();
          ctx.stroke();
        } else {
          ctx.fillStyle = ev.type === "spawn" ? col.info : isBad(ev) ? col.bad : ev.type === "exit" ? col.ok : ev.type === "dropped" ? col.warn : col.muted;
          ctx.beginPath();
          ctx.arc(xx, mid, r, 0, Math.PI * 2);
          ctx.fill();
        }
        ctx.globalAlpha = 1;
        Object.assign(m, { y: mid, bx0: xx - r - 2, bx1: x1 + r + 2, by0: mid - r - 2, by1: mid + r + 2 });
        marks.push(m);
        drawn++;
        const below = ev.type === "close" || ev.type === "disconnect";
        // The lane's name already tells the pid, and every forked child disconnects at its
        // end: those labels give way to the messages'.
        const minor = ev.type === "spawn" || ev.type === "disconnect";
        if (count === 1) candidates.push({ m, prio: minor ? 2 : 0, text: eventLabel(ev), rows: below ? [1, 0] : [0, 1] });
        // exit and close come a fraction of a millisecond apart: a small group says what it holds.
        else if (count <= 3) candidates.push({ m, prio: 0, text: groupLabel(life, i, j), rows: [0, 1], x: x1 });
        else candidates.push({ m, prio: 2, text: `×${count}`, count: true, rows: [0, 1], x: x1 });
      }
      if (!fixed) ctx.restore();

      // Labels: the most telling first (lifecycle, then messages, then counts), each in the
      // first row with room, never over another; the rest wait for hover or focus.
      // A lane cut by the edge of the scrolling part gets no labels: no text cut in half.
      const whole = fixed || (top >= clipTop - 0.5 && top + row.height <= this.viewH + 0.5);
      if (!small && whole && labelCount < MAX_LABELS) {
        const rowsFor = new LabelRows(plotL, plotR, 2);
        candidates.sort((a, b) => a.prio - b.prio);
        const pool = fixed ? pools.fixed : pools.scroll;
        const yBase = fixed ? 0 : clipTop;
        for (const c of candidates) {
          if (labelCount >= MAX_LABELS) break;
          const spot = rowsFor.place(c.x ?? c.m.x, this.textWidth(c.text), c.rows);
          if (!spot) continue;
          const y = (spot.row === 0 ? top + 2 : top + row.height - LABEL_H - 2) - yBase;
          labelsTaken.push({ pool, text: c.text, x: spot.x, y, cls: c.count ? "tl-count" : "", m: c.m, job: row.key });
          c.m.labelled = true;
          labelCount++;
        }
      }
    }
    ctx.restore();
    pools.fixed.begin();
    pools.scroll.begin();
    for (const l of labelsTaken) l.pool.put(l.text, l.x, l.y, l.cls, { seq: l.m.seq ?? "", job: l.job })._mark = l.m;
    pools.fixed.end();
    pools.scroll.end();

    // The keyboard's mark and the chosen one get a ring.
    for (const m of marks) {
      const isCursor = this.cursor && m.count === 1 && m.ev === this.cursor.ev;
      if (!isCursor && (m.seq == null || m.seq !== this.selectedSeq)) continue;
      if (!m.fixed && (m.y < clipTop || m.y > this.viewH)) continue;
      ctx.strokeStyle = col.focus;
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.arc(m.track === "msg" ? m.x : m.x, m.track === "msg" ? m.by1 - 4 : m.y, 8, 0, Math.PI * 2);
      ctx.stroke();
    }

    this.drawn = drawn;
    const empty = this.lanes.all.length === 1;
    if (this.empty.hidden === empty) this.empty.hidden = !empty;
    this.paintHeads(rows);
    this.showCursorTip();
    if (this.info) {
      // The line under the timeline is in the page's flow: rewriting it every frame of a zoom
      // would lay the page out again each time, so it changes at most twice a second.
      const groups = marks.filter((m) => m.count > 1).length;
      this.infoText = `${this.store.events.length} events · ${this.lanes.all.length} lanes · ${drawn} marks drawn${groups ? `, ${groups} of them groups` : ""}`;
      this.infoTimer ??= setTimeout(() => {
        this.infoTimer = null;
        if (this.info.textContent !== this.infoText) this.info.textContent = this.infoText;
      }, 500);
    }
  }

  /** Lane names (DOM, one per lane in view), with their collapse and pin buttons. */
  paintHeads(rows) {
    const seen = new Set();
    for (const { row, top, fixed } of rows) {
      let el = this.heads.get(row.key);
      if (!el) {
        el = this.makeHead(row);
        this.heads.set(row.key, el);
      }
      const parent = fixed ? this.headsFixed : this.headsScroll;
      if (el.parentNode !== parent) parent.append(el);
      seen.add(row.key);
      if (el.style.width !== `${this.headW}px`) el.style.width = `${this.headW}px`; // before its text is fitted
      this.fillHead(el, row);
      const y = fixed ? top : top - this.scrollTopY;
      if (el._y !== y) {
        el.style.transform = `translateY(${y}px)`;
        el._y = y;
      }
      const hgt = `${row.height}px`;
      if (el.style.height !== hgt) el.style.height = hgt;
    }
    for (const [key, el] of this.heads) {
      if (!seen.has(key)) {
        el.remove();
        this.heads.delete(key);
      }
    }
  }

  makeHead(row) {
    const el = h("div", { class: `tl-lane tl-${row.kind}`, role: "listitem", dataset: { lane: row.key } });
    if (row.kind === "job") {
      el.dataset.job = row.key;
      const toggle = h("button", { type: "button", class: "tl-collapse", tabindex: -1 });
      toggle.addEventListener("click", () => this.toggleCollapsed(row.key));
      const pin = h("button", { type: "button", class: "tl-pin", tabindex: -1 });
      pin.innerHTML = `<svg viewBox="0 0 14 16" width="11" height="12" aria-hidden="true"><path d="${PIN_ICON}"/></svg>`;
      pin.addEventListener("click", () => this.togglePinned(row.key));
      const name = h("span", { class: "tl-lane-name" });
      name.addEventListener("click", () => this.onSelectJob(row.key));
      el.append(toggle, name, pin, h("span", { class: "tl-lane-sub" }));
    } else {
      el.append(h("span", { class: "tl-lane-name" }), h("span", { class: "tl-lane-sub" }));
      if (row.kind === "grand") el.dataset.parent = row.job.id;
    }
    return el;
  }

  fillHead(el, row) {
    const j = row.job;
    const texts = laneTexts(row, { showHost: this.store.hosts.size > 1 });
    const sig = `${texts.name[0]}|${texts.sub[0]}|${row.collapsed}|${row.pinned}|${row.hasKids}|${row.depth}|${this.selectedJob === j?.id}|${row.height}|${this.headW}`;
    if (el._sig === sig) return;
    el._sig = sig;
    el.setAttribute("aria-level", String(row.depth));
    el.style.setProperty("--depth", String(row.depth - 1));
    el.classList.toggle("collapsed", !!row.collapsed);
    el.classList.toggle("pinned", !!row.pinned);
    if (row.kind === "job") el.setAttribute("aria-current", String(this.selectedJob === j.id));
    if (j) el.dataset.state = j.state;
    const nameEl = el.querySelector(".tl-lane-name");
    const subEl = el.querySelector(".tl-lane-sub");
    subEl.hidden = !!row.collapsed || !texts.sub.length;
    // The longest text that fits; the whole of it in the title.
    this.fitLine(nameEl, texts.name);
    nameEl.title = row.kind === "job" ? `${texts.name[0]} — click to select this job` : texts.name[0];
    if (!subEl.hidden) {
      this.fitLine(subEl, texts.sub);
      subEl.title = texts.sub[0];
    }
    const toggle = el.querySelector(".tl-collapse");
    if (toggle) {
      toggle.textContent = row.collapsed ? "▸" : "▾";
      toggle.setAttribute("aria-expanded", String(!row.collapsed));
      toggle.setAttribute("aria-label", `${row.collapsed ? "Expand" : "Collapse"} the lane of ${jobName(j)}${row.hasKids ? " and its children" : ""}`);
      toggle.title = toggle.getAttribute("aria-label");
    }
    const pin = el.querySelector(".tl-pin");
    if (pin) {
      pin.setAttribute("aria-pressed", String(!!row.pinned));
      pin.setAttribute("aria-label", `${row.pinned ? "Unpin" : "Pin"} the lane of ${jobName(j)}`);
      pin.title = row.pinned ? "Unpin: back among the other lanes" : "Pin: keep this lane in view under the server's";
    }
  }

  /** The first of `texts` that fits in `el` (a lane head's line), measured in place: the
   *  page's own fonts (a canvas may resolve "system-ui" to another, narrower font). */
  fitLine(el, texts) {
    const range = document.createRange();
    for (const text of texts) {
      el.textContent = text;
      if (texts.length === 1 || !el.clientWidth) return text; // nothing to choose, or not laid out
      range.selectNodeContents(el);
      if (range.getBoundingClientRect().width <= el.clientWidth) return text;
    }
    return texts.at(-1);
  }

  toggleCollapsed(key) {
    if (this.collapsed.has(key)) {
      this.collapsed.delete(key);
      this.revealLane(key); // what unfolds comes into view
    } else this.collapsed.add(key);
    this.frame();
  }

  togglePinned(key) {
    if (this.pinned.has(key)) this.pinned.delete(key);
    else this.pinned.add(key);
    this.frame();
  }

  // ---------------------------------------------------------------- the overview strip
  paintOverview() {
    const w = Math.max(10, this.plotR - this.plotL);
    const hgt = 26;
    const [first, last] = this.allRange;
    const span = Math.max(last - first, 1e-3);
    const key = `${this.lanesKey}|${w}|${first}|${last}`;
    if (key !== this.overviewKey) {
      this.overviewKey = key;
      const dpr = this.dpr;
      const bins = new Float64Array(Math.ceil(w / 2));
      for (const row of this.lanes.all) {
        const lane = row.kind === "job" && this.index.lanes.get(row.key);
        if (!lane) continue;
        for (const arr of [lane.life, lane.msg, lane.out]) {
          for (const ev of arr) {
            const b = Math.floor(((ev.t - first) / span) * (bins.length - 1));
            if (b >= 0 && b < bins.length) bins[b]++;
          }
        }
      }
      let max = 1;
      for (const v of bins) if (v > max) max = v;
      this.ovCanvas.width = Math.round(w * dpr);
      this.ovCanvas.height = Math.round(hgt * dpr);
      this.ovCanvas.style.width = `${w}px`;
      this.ovCanvas.style.height = `${hgt}px`;
      const c = this.ovCtx;
      c.setTransform(dpr, 0, 0, dpr, 0, 0);
      c.clearRect(0, 0, w, hgt);
      c.fillStyle = this.col.accent;
      c.globalAlpha = 0.55;
      for (let b = 0; b < bins.length; b++) {
        if (!bins[b]) continue;
        const bh = Math.max(1.5, Math.sqrt(bins[b] / max) * (hgt - 3));
        c.fillRect(b * 2, hgt - bh, 2, bh);
      }
      c.globalAlpha = 1;
    }
    // The window in view, marked on the strip.
    const toX = (t) => ((t - first) / span) * w;
    const x0 = Math.max(0, Math.min(w, toX(this.win.start)));
    const x1 = Math.max(0, Math.min(w, toX(this.win.end)));
    const left = Math.min(x0, w - 4);
    const width = Math.max(4, x1 - x0);
    this.ovWindow.style.transform = `translateX(${left}px)`;
    this.ovWindow.style.width = `${Math.min(width, w - left)}px`;
    const caption = `${fmtSpan(this.win.span)} in view\n${fmtSpan(span)} recorded`;
    if (this.ovCaption.textContent !== caption) this.ovCaption.textContent = caption;
    this.ovSpan = { first, span, w };
  }

  // ---------------------------------------------------------------- pointer
  /** A pointer event's position on the stage. The stage's place on the page is read once and
   *  kept until the page scrolls or is laid out again: reading it on every wheel or pointer
   *  event would make the browser lay out the labels just moved, event after event. */
  local(e) {
    this.stageRect ??= this.stage.getBoundingClientRect();
    return { x: e.clientX - this.stageRect.left, y: e.clientY - this.stageRect.top };
  }

  inPlot(p) {
    return p.x >= this.plotL && p.x <= this.width && p.y >= AXIS_H;
  }

  bindPointer() {
    const stage = this.stage;
    const forget = () => {
      this.stageRect = null;
    };
    window.addEventListener("scroll", forget, { passive: true, capture: true });
    window.addEventListener("resize", forget, { passive: true });
    new ResizeObserver(forget).observe(document.body);
    stage.addEventListener("wheel", (e) => {
      const p = this.local(e);
      if (!this.inPlot(p)) {
        if (e.ctrlKey) e.preventDefault(); // a pinch over the lane names zooms nothing
        return; // the lane names scroll the lanes, natively
      }
      e.preventDefault();
      const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 400 : 1;
      const dx = e.deltaX * unit;
      const dy = e.deltaY * unit;
      const pxPerSec = (this.plotR - this.plotL) / this.win.span;
      if (e.shiftKey && !dx) this.win.pan(dy / pxPerSec);
      else if (Math.abs(dx) > Math.abs(dy)) this.win.pan(dx / pxPerSec);
      else {
        const anchor = this.win.start + (p.x - this.plotL) / pxPerSec;
        // A pinch arrives as a wheel with Ctrl and small steps: zoom faster per unit.
        this.win.zoom(Math.exp(dy * (e.ctrlKey ? 0.005 : 0.002)), anchor, this.maxSpan());
      }
      this.moved();
    }, { passive: false });

    stage.addEventListener("pointerdown", (e) => {
      const p = this.local(e);
      if (!this.inPlot(p) || (e.pointerType === "mouse" && e.button !== 0)) return;
      this.pointers.set(e.pointerId, p);
      stage.setPointerCapture(e.pointerId);
      if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        this.pinch = { dist: Math.max(10, Math.abs(a.x - b.x)), start: this.win.start, end: this.win.end, mid: (a.x + b.x) / 2 };
        this.drag = null;
        return;
      }
      this.drag = { x: p.x, y: p.y, start: this.win.start, end: this.win.end, top: this.scrollTop, moved: false, target: e.target };
      this.plot.focus({ preventScroll: true });
      e.preventDefault();
    });

    stage.addEventListener("pointermove", (e) => {
      const p = this.local(e);
      if (this.pointers.has(e.pointerId)) this.pointers.set(e.pointerId, p);
      if (this.pinch && this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        const k = this.pinch.dist / Math.max(10, Math.abs(a.x - b.x));
        const span = this.pinch.end - this.pinch.start;
        const pxPerSec = (this.plotR - this.plotL) / span;
        const anchor = this.pinch.start + (this.pinch.mid - this.plotL) / pxPerSec;
        this.win.set(this.pinch.start, this.pinch.end);
        this.win.zoom(k, anchor, this.maxSpan());
        this.moved();
        return;
      }
      const d = this.drag;
      if (d) {
        const dx = p.x - d.x;
        const dy = p.y - d.y;
        if (!d.moved && Math.abs(dx) < 4 && Math.abs(dy) < 4) return;
        d.moved = true;
        this.hideTip();
        const pxPerSec = (this.plotR - this.plotL) / (d.end - d.start);
        this.win.set(d.start - dx / pxPerSec, d.end - dx / pxPerSec);
        if (Math.abs(dy) > 4) this.scroller.scrollTop = this.scrollTop = Math.max(0, d.top - dy);
        this.moved();
        return;
      }
      if (e.pointerType !== "mouse") return;
      const hit = this.inPlot(p) ? this.hitTest(p) : null;
      stage.style.cursor = hit ? "pointer" : this.inPlot(p) ? "grab" : "";
      if (hit) this.showTip(hit, p);
      else if (!this.cursor) this.hideTip();
    });

    const end = (e) => {
      this.pointers.delete(e.pointerId);
      if (this.pinch) {
        if (this.pointers.size < 2) this.pinch = null;
        return;
      }
      const d = this.drag;
      this.drag = null;
      if (!d || d.moved || e.type === "pointercancel") return;
      // A click chooses the mark or arrow under it (a group zooms in to it); on a label with
      // no mark under the pointer, the label's mark (a label may lie over another's arrow).
      const p = this.local(e);
      const hit = this.hitTest(p);
      const onMark = hit && p.x >= hit.bx0 && p.x <= hit.bx1 && p.y >= hit.by0 && p.y <= hit.by1;
      const labelled = d.target?.closest?.(".tl-label")?._mark;
      if (onMark || !labelled || !this.scene.marks.includes(labelled)) {
        if (hit) this.choose(hit);
      } else this.choose(labelled);
    };
    stage.addEventListener("pointerup", end);
    stage.addEventListener("pointercancel", end);
    stage.addEventListener("pointerleave", () => {
      if (!this.cursor) this.hideTip();
    });

    // The overview: drag the marked window, or drag across the strip to choose a new one.
    const strip = this.ovStrip;
    strip.addEventListener("pointerdown", (e) => {
      if (!this.ovSpan || (e.pointerType === "mouse" && e.button !== 0)) return;
      const r = strip.getBoundingClientRect();
      const px = e.clientX - r.left;
      const { first, span, w } = this.ovSpan;
      const t = first + (px / w) * span;
      const onWindow = e.target === this.ovWindow;
      strip.setPointerCapture(e.pointerId);
      this.ovDrag = { px, t, onWindow, start: this.win.start, end: this.win.end, moved: false };
      e.preventDefault();
    });
    strip.addEventListener("pointermove", (e) => {
      const d = this.ovDrag;
      if (!d) return;
      const r = strip.getBoundingClientRect();
      const px = e.clientX - r.left;
      if (!d.moved && Math.abs(px - d.px) < 3) return;
      d.moved = true;
      const { first, span, w } = this.ovSpan;
      const dt = ((px - d.px) / w) * span;
      if (d.onWindow) this.win.set(d.start + dt, d.end + dt);
      else {
        const t = first + (px / w) * span;
        this.win.set(Math.min(t, d.t), Math.max(t, d.t));
      }
      this.moved();
    });
    const ovEnd = (e) => {
      const d = this.ovDrag;
      this.ovDrag = null;
      if (!d || d.moved || e.type === "pointercancel") return;
      // A click on the strip: centre the view there, keeping its span.
      const span = this.win.span;
      this.win.set(d.t - span / 2, d.t + span / 2);
      this.moved();
    };
    strip.addEventListener("pointerup", ovEnd);
    strip.addEventListener("pointercancel", ovEnd);
  }

  /** The mark under a point of the stage: lifecycle marks first, then messages, then output;
   *  last, the long part of an arrow (it crosses other lanes). Between marks of one kind whose
   *  boxes touch, the nearest to the pointer. */
  hitTest(p) {
    let best = null;
    let bestScore = Infinity;
    const prio = { life: 0, msg: 1, out: 2 };
    for (const m of this.scene.marks) {
      let pr = null;
      const hidden = !m.fixed && p.y < this.scrollTopY; // scrolling lanes are under the pinned ones
      if (!hidden && p.x >= m.bx0 && p.x <= m.bx1 && p.y >= m.by0 && p.y <= m.by1) pr = prio[m.track];
      else if (m.track === "msg" && p.x >= m.x - 3 && p.x <= m.x + 3 && p.y >= m.ay0 && p.y <= m.by0) pr = 5;
      if (pr == null) continue;
      const dist = p.x < m.x ? m.x - p.x : p.x > m.x1 ? p.x - m.x1 : 0;
      const score = pr * 1000 + dist + (m.count > 1 ? 0.5 : 0);
      if (score < bestScore) {
        best = m;
        bestScore = score;
      }
    }
    return best;
  }

  choose(m) {
    if (m.count > 1) {
      // A group: zoom in until its marks come apart.
      const a = m.arr[m.i].t;
      const b = m.arr[m.j - 1].t;
      const [s, e] = padded(a, b, 0.5, 0.5);
      this.win.set(s, Math.max(e, s + 1e-4));
      this.moved();
      return;
    }
    const ev = m.arr[m.i];
    this.selectedSeq = ev.seq;
    this.cursor = { lane: m.lane, ev };
    this.onSelect(ev);
    this.frame();
  }

  tipText(m) {
    if (m.count > 1) {
      const evs = m.arr.slice(m.i, m.j);
      const kinds = new Map();
      for (const ev of evs) {
        const k = ev.type === "message" ? `${messageDirection(ev) === "to_child" ? "to child" : "to parent"}` : ev.type;
        kinds.set(k, (kinds.get(k) ?? 0) + 1);
      }
      const parts = [...kinds].map(([k, n]) => `${n} ${k}`).join(", ");
      return `${m.count} marks too close to draw apart (${parts})\n${fmtClock(evs[0].t)} – ${fmtClock(evs.at(-1).t)} · click to zoom in`;
    }
    const ev = m.arr[m.i];
    const j = this.store.jobs.get(ev.job);
    const who = jobTitle(j ?? { id: ev.job });
    if (ev.type === "message") {
      const dir = messageDirection(ev);
      const payload = messagePayload(ev);
      const size = (ev._size ??= byteLength(payload));
      const lat = ev._latency != null ? ` · reply ${fmtMs(ev._latency)} after the request` : "";
      return `${dir === "to_child" ? "parent → child" : "child → parent"} · ${size} B · ${fmtClock(ev.t)}${lat}\n${who}\n${preview(payload, 300)}`;
    }
    if (m.track === "out") return `${ev.type} · ${fmtClock(ev.t)} · ${who}\n${preview(ev.data?.text ?? ev.data, 200)}`;
    return `${eventLabel(ev)} · ${fmtClock(ev.t)} · ${who}`;
  }

  showTip(m, p, text = this.tipText(m)) {
    if (this.tip._text !== text) this.tip.textContent = this.tip._text = text;
    this.tip.hidden = false;
    const tw = this.tip.offsetWidth;
    const th = this.tip.offsetHeight;
    const x = Math.min(Math.max(4, (p?.x ?? m.x) + 12), this.width - tw - 4);
    let y = (p?.y ?? m.y) + 14;
    if (y + th > this.viewH) y = Math.max(AXIS_H, (p?.y ?? m.y) - th - 10);
    this.tip.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
    return text;
  }

  hideTip() {
    if (!this.tip.hidden) this.tip.hidden = true;
  }

  /** The page position where the mark of event `seq` is drawn (null while it is not), for a
   *  pointer to find it. For an arrow, a point on it inside its child's lane. */
  pointOf(seq) {
    const m = this.scene.marks.find((mk) => mk.seq === seq) ?? this.groupOf(seq);
    if (!m) return null;
    const r = this.stage.getBoundingClientRect();
    return { x: r.left + m.x, y: r.top + m.y };
  }

  /** The drawn group that holds event `seq`, if it is in one. */
  groupOf(seq) {
    for (const m of this.scene.marks) {
      if (m.count < 2) continue;
      for (let k = m.i; k < m.j; k++) if (m.arr[k].seq === seq) return m;
    }
    return null;
  }

  // ---------------------------------------------------------------- keyboard
  bindKeys() {
    this.plot.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const k = e.key;
      let handled = true;
      if (k === "w" || k === "W" || k === "+" || k === "=") this.zoomBy(1 / KEY_ZOOM);
      else if (k === "s" || k === "S" || k === "-" || k === "_") this.zoomBy(KEY_ZOOM);
      else if (k === "a" || k === "A" || (e.shiftKey && k === "ArrowLeft")) this.panBy(-0.25);
      else if (k === "d" || k === "D" || (e.shiftKey && k === "ArrowRight")) this.panBy(0.25);
      else if (k === "ArrowRight") this.stepMark(1);
      else if (k === "ArrowLeft") this.stepMark(-1);
      else if (k === "ArrowDown") this.stepLane(1);
      else if (k === "ArrowUp") this.stepLane(-1);
      else if (k === "Home") this.stepMark(-Infinity);
      else if (k === "End") this.stepMark(Infinity);
      else if (k === "Enter" || k === " ") this.openCursor();
      else if (k === "f" || k === "F") this.fitJob();
      else if (k === "0") this.fitAll();
      else if ((k === "c" || k === "C") && this.cursor) this.toggleCollapsed(this.cursor.lane);
      else if ((k === "p" || k === "P") && this.cursor) this.togglePinned(this.cursor.lane);
      else if (k === "Escape") {
        this.cursor = null;
        this.hideTip();
      } else handled = false;
      if (handled) e.preventDefault();
    });
    this.plot.addEventListener("blur", () => {
      if (this.cursor) this.hideTip();
    });
    this.plot.addEventListener("focus", () => this.frame());
  }

  cursorTime() {
    const ev = this.cursor?.ev;
    return ev && ev.t >= this.win.start && ev.t <= this.win.end ? ev.t : null;
  }

  /** Lanes that have events, in order, for the keyboard. */
  jobRows() {
    return [...this.lanes.fixed, ...this.lanes.scroll].filter((r) => r.kind === "job" && this.index.lanes.has(r.key));
  }

  /** The next (dir 1) or previous (-1) mark on the cursor's lane, the first / last (±Infinity);
   *  with no cursor yet, the first mark in view on the selected job's lane or the first lane. */
  stepMark(dir) {
    const rows = this.jobRows();
    if (!rows.length) return;
    let lane = this.cursor?.lane;
    let from = this.cursor?.ev;
    if (!lane || !rows.some((r) => r.key === lane)) {
      const { start, end } = this.win;
      lane = (this.selectedJob && rows.find((r) => r.key === this.selectedJob)?.key)
        ?? this.scene.lanesInView.find((key) => this.index.hasBetween(key, start, end))
        ?? rows[0].key;
      from = null;
    }
    let ev;
    if (dir === Infinity) ev = this.index.step(lane, { t: Infinity }, -1);
    else if (dir === -Infinity) ev = this.index.step(lane, { t: -Infinity }, 1);
    else if (from) ev = this.index.step(lane, from, dir) ?? from;
    else ev = this.index.step(lane, { t: this.win.start }, 1) ?? this.index.step(lane, { t: Infinity }, -1);
    if (ev) this.moveCursor(lane, ev);
  }

  stepLane(dir) {
    const rows = this.jobRows();
    if (!rows.length) return;
    const at = rows.findIndex((r) => r.key === this.cursor?.lane);
    const row = rows[Math.min(rows.length - 1, Math.max(0, at < 0 ? 0 : at + dir))];
    // The mark nearest in time to where the cursor was.
    const ev = this.index.nearest(row.key, this.cursorTime() ?? (this.win.start + this.win.end) / 2);
    if (ev) this.moveCursor(row.key, ev);
  }

  moveCursor(lane, ev) {
    this.cursor = { lane, ev };
    // Keep it in view: pan (the span stays) and scroll the lanes.
    if (ev.t < this.win.start || ev.t > this.win.end) {
      const span = this.win.span;
      this.win.set(ev.t - span / 2, ev.t + span / 2);
      this.fit = null;
      this.follow = false;
      this.syncTools();
    }
    this.revealLane(lane);
    this.announceNext = true;
    this.frame();
  }

  /** The tooltip at the keyboard's mark, read out once per move. */
  showCursorTip() {
    if (!this.cursor || document.activeElement !== this.plot) return;
    const ev = this.cursor.ev;
    const m = this.scene.marks.find((mk) => mk.count === 1 && mk.ev === ev);
    let text;
    if (m) text = this.showTip(m);
    else {
      // In a group at this zoom: say so, at the group.
      const g = this.scene.marks.find((mk) => mk.lane === this.cursor.lane && mk.count > 1 && mk.arr.slice(mk.i, mk.j).includes(ev));
      if (!g) return this.hideTip();
      text = `${this.tipText({ arr: [ev], i: 0, j: 1, count: 1, track: g.track })}\n(in a group of ${g.count}: W zooms in)`;
      this.showTip(g, null, text);
    }
    if (this.announceNext) this.announce.textContent = text;
    this.announceNext = false;
  }

  openCursor() {
    if (!this.cursor) return this.stepMark(1);
    this.selectedSeq = this.cursor.ev.seq;
    this.onSelect(this.cursor.ev);
    this.frame();
  }
}

function isBad(ev) {
  return ev.type === "error" || (ev.type === "exit" && (ev.data?.signal || ev.data?.code));
}

/** "exit SIGTERM · close +1": what a small group of lifecycle marks holds, short. A close
 *  that repeats its exit's status says only that it came; a spawn or disconnect in the group
 *  is counted (+1), not spelled out (hover lists everything). */
function groupLabel(arr, i, j) {
  const parts = [];
  let exit = null;
  let minor = 0;
  for (let k = i; k < j; k++) {
    const ev = arr[k];
    if (ev.type === "spawn" || ev.type === "disconnect") {
      minor++;
      continue;
    }
    if (ev.type === "exit") exit = ev.data ?? {};
    const same = ev.type === "close" && exit && (exit.signal ?? null) === (ev.data?.signal ?? null) && (exit.code ?? null) === (ev.data?.code ?? null);
    parts.push(same ? "close" : eventLabel(ev));
  }
  if (!parts.length) return arr.slice(i, j).map(eventLabel).join(" · ");
  return `${parts.join(" · ")}${minor ? ` +${minor}` : ""}`;
}

function messageLabel(ev) {
  const payload = messagePayload(ev);
  const size = (ev._size ??= byteLength(payload));
  const lat = ev._latency != null ? ` · ${fmtMs(ev._latency)}` : "";
  return `${preview(payload, 24)} · ${size} B${lat}`;
}

function arrowHead(ctx, x, y, dir) {
  // dir 1: pointing down (ends at y), -1: pointing up
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x - 4, y - 6 * dir);
  ctx.lineTo(x + 4, y - 6 * dir);
  ctx.closePath();
  ctx.fill();
}

function roundRect(ctx, x, y, w, hgt, r) {
  ctx.beginPath();
  ctx.roundRect(x, y, Math.max(w, 2 * r), hgt, r);
  ctx.fill();
}
