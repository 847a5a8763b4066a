// What the timeline draws, worked out without the DOM: an index of each job's events by track,
// the lanes (parent → child → grandchild, collapsed and pinned ones), the time window and its
// zoom and pan, the groups dense marks fall into, ticks, and where labels fit. timeline.js
// turns this into pixels. Everything here is plain data, so it is cheap to redo per frame.

import { jobName, jobsByParent, messageDirection, messagePayload, preview, stateText } from "./store.js";

/** The three tracks of a lane: lifecycle marks, messages (arrows), output ticks. */
const LIFE = new Set(["spawn", "exit", "close", "error", "disconnect", "dropped"]);

export function trackOf(ev) {
  if (ev.type === "message") return "msg";
  if (LIFE.has(ev.type)) return "life";
  if (ev.type === "stdout" || ev.type === "stderr" || /^fd\d+$/.test(ev.type)) return "out";
  return null;
}

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
    case "dropped":
      return `dropped ${d.count ?? d.events ?? d.dropped ?? ""}`.trim();
    default:
      return ev.type;
  }
}

/** First index in `arr` (sorted by .t) whose t is >= t (or > t with `after`), from `lo`. */
export function lowerBound(arr, t, lo = 0, after = false) {
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (after ? arr[mid].t <= t : arr[mid].t < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Each job's drawable events, by track, sorted by time; kept up to date with the store
 * incrementally (only new events are looked at). A store that trimmed its oldest events has
 * them trimmed here too; a store that was reset or replaced is indexed again.
 */
export class EventIndex {
  constructor() {
    this.store = null;
    this.lanes = new Map();
    this.total = 0; // events of the store seen (dropped ones included)
    this.dropped = 0;
    this.last = null;
  }

  update(store) {
    const evs = store.events;
    const dropped = store.droppedEvents ?? 0;
    const lastAt = this.total - 1 - dropped;
    const same = store === this.store && this.total >= dropped && dropped + evs.length >= this.total && (this.total === dropped || evs[lastAt] === this.last);
    if (!same) {
      this.store = store;
      this.lanes = new Map();
      this.total = dropped;
      this.dropped = dropped;
    } else if (dropped > this.dropped) {
      // The store forgot its oldest events: forget them here too.
      for (const lane of this.lanes.values()) {
        for (const track of [lane.life, lane.msg, lane.out]) {
          let k = 0;
          while (k < track.length && track[k]._n < dropped) k++;
          if (k) track.splice(0, k);
        }
      }
      this.dropped = dropped;
    }
    for (let i = this.total - dropped; i < evs.length; i++) this.add(evs[i], dropped + i);
    this.total = dropped + evs.length;
    this.last = evs.length ? evs[evs.length - 1] : null;
  }

  add(ev, n) {
    if (ev.t == null || !ev.job) return;
    const track = trackOf(ev);
    if (!track) return;
    ev._n = n;
    let lane = this.lanes.get(ev.job);
    if (!lane) {
      lane = { life: [], msg: [], out: [], first: ev.t, last: ev.t };
      this.lanes.set(ev.job, lane);
    }
    const arr = lane[track];
    // Events come in seq order, which is time order nearly always; the rare late one is
    // put in its place.
    if (arr.length && arr[arr.length - 1].t > ev.t) arr.splice(lowerBound(arr, ev.t, 0, true), 0, ev);
    else arr.push(ev);
    if (ev.t < lane.first) lane.first = ev.t;
    if (ev.t > lane.last) lane.last = ev.t;
  }

  /**
   * The event of `job` next to `from` in time order (then seq), over all its tracks: the
   * first after it (`dir` 1) or the last before it (-1). `from` may be a bare time, `{t}`.
   * A few binary searches, however many events the lane has (for keyboard walking).
   */
  step(job, from, dir) {
    const lane = this.lanes.get(job);
    if (!lane) return null;
    const t = from.t;
    const seq = from.seq ?? (dir > 0 ? -Infinity : Infinity);
    const after = (ev) => ev.t > t || (ev.t === t && (ev.seq ?? 0) > seq);
    const before = (ev) => ev.t < t || (ev.t === t && (ev.seq ?? 0) < seq);
    let best = null;
    for (const arr of [lane.life, lane.msg, lane.out]) {
      let k;
      if (dir > 0) {
        k = t === -Infinity ? 0 : lowerBound(arr, t);
        while (k < arr.length && !after(arr[k])) k++;
        if (k < arr.length && (!best || arr[k].t < best.t || (arr[k].t === best.t && arr[k].seq < best.seq))) best = arr[k];
      } else {
        k = (t === Infinity ? arr.length : lowerBound(arr, t, 0, true)) - 1;
        while (k >= 0 && !before(arr[k])) k--;
        if (k >= 0 && (!best || arr[k].t > best.t || (arr[k].t === best.t && arr[k].seq > best.seq))) best = arr[k];
      }
    }
    return best;
  }

  /** The event of `job` nearest in time to `t`. */
  nearest(job, t) {
    const a = this.step(job, { t }, 1);
    const b = this.step(job, { t }, -1);
    if (!a || !b) return a ?? b;
    return a.t - t < t - b.t ? a : b;
  }

  /** Whether `job` has an event in [start, end]. */
  hasBetween(job, start, end) {
    const ev = this.step(job, { t: start }, 1);
    return !!ev && ev.t <= end;
  }
}

// ---------------------------------------------------------------- lanes
export const LANE = { server: 28, job: 38, collapsed: 16, grand: 22 };

/**
 * What a lane's head may say, longest first, for its name line and its second line: the head
 * shows the first that fits, so a narrow head shortens a name ("#3 · echo.py --serve" →
 * "#3 · echo.py" → "#3") rather than cutting it; the longest is its title.
 */
export function laneTexts(row, { showHost = false } = {}) {
  const j = row.job;
  if (row.kind === "server") return { name: ["server (parent)", "server"], sub: [] };
  if (row.kind === "grand") {
    // One line: the lane is low. Known from the pids the child reported.
    const st = j.state === "running" || j.state === "starting" ? "running" : "ended";
    return { name: [`grandchild ${row.pid} · ${st}`, `${row.pid} · ${st}`, String(row.pid)], sub: [] };
  }
  const name = jobName(j);
  const label = j.label || j.kind || "job";
  const state = stateText(j);
  const brief = j.state === "signaled" && j.signal ? j.signal : j.state === "exited" ? `exit ${j.exitCode ?? "?"}` : j.state;
  // With several runners (servers and agents sharing Redis) each lane names its host.
  const host = showHost && j.host ? `on ${j.host} · ` : "";
  return {
    name: [...new Set([`${name} · ${label}`, `${name} · ${label.split(" ")[0]}`, name])],
    sub: [...new Set([j.pid != null ? `${host}pid ${j.pid} · ${state}` : `${host}${state}`, `${host}${state}`, state, brief])],
  };
}

/**
 * The rows of the timeline: the server first, then each job in start order with its own
 * children jobs and its grandchildren (known by pid) under it. Descendants of a collapsed lane
 * are left out; pinned lanes come right after the server, in the part that does not scroll.
 *
 * @returns {{fixed: object[], scroll: object[], all: object[]}}
 */
export function buildLanes(store, { filter = null, collapsed = new Set(), pinned = new Set() } = {}) {
  const kids = jobsByParent([...store.jobs.values()].filter((j) => (filter ? filter(j) : true)));
  const all = [{ key: "server", kind: "server", depth: 1, height: LANE.server, hasKids: false, n: 0 }];
  const walk = (j, depth, parentKey) => {
    const own = kids.get(j.id) ?? [];
    const grand = (j.grandchildren ?? []).map((g) => g.pid ?? g).filter((pid) => !own.some((k) => k.pid === pid));
    const isCollapsed = collapsed.has(j.id);
    all.push({
      key: j.id, kind: "job", job: j, depth, parentKey, n: all.length, hasKids: own.length + grand.length > 0,
      collapsed: isCollapsed, pinned: pinned.has(j.id), height: isCollapsed ? LANE.collapsed : LANE.job,
    });
    if (isCollapsed) return;
    for (const k of own) walk(k, depth + 1, j.id);
    for (const pid of grand) {
      all.push({ key: `${j.id}/${pid}`, kind: "grand", job: j, pid, depth: depth + 1, parentKey: j.id, hasKids: false, height: LANE.grand, pinned: false, n: all.length });
    }
  };
  for (const j of kids.get(null) ?? []) walk(j, 2, "server");
  const fixed = [all[0], ...all.filter((r) => r.pinned)];
  const scroll = all.filter((r) => r !== all[0] && !r.pinned);
  return { fixed, scroll, all };
}

// ---------------------------------------------------------------- the time window
export const MIN_SPAN = 1e-5; // 10 µs: finer than the feed's timestamps mean anything

export class TimeWindow {
  constructor(start = 0, end = 1) {
    this.start = start;
    this.end = end;
    this.ready = false; // false until a first view is chosen (a fit, or the user's)
  }

  get span() {
    return this.end - this.start;
  }

  set(start, end) {
    if (!(end - start >= MIN_SPAN)) {
      const mid = (start + end) / 2;
      start = mid - MIN_SPAN / 2;
      end = mid + MIN_SPAN / 2;
    }
    this.start = start;
    this.end = end;
  }

  /** Zoom by `factor` (< 1 in, > 1 out) keeping time `anchor` where it is on screen. */
  zoom(factor, anchor = (this.start + this.end) / 2, maxSpan = Infinity) {
    const span = Math.min(Math.max(this.span * factor, MIN_SPAN), Math.max(maxSpan, this.span));
    const k = (anchor - this.start) / this.span;
    this.set(anchor - k * span, anchor - k * span + span);
  }

  pan(dt) {
    this.set(this.start + dt, this.end + dt);
  }
}

/** `[start, end]` around `a..b` with a margin, so the first and last marks are not on the edge. */
export function padded(a, b, left = 0.03, right = 0.05) {
  const span = Math.max(b - a, 0.002);
  return [a - span * left, b + span * right];
}

// ---------------------------------------------------------------- ticks
const STEPS = [1, 2, 5];

/** Tick times for [start, end] over `width` px, at least `minPx` apart, on round numbers
 *  counted from `origin`. */
export function ticks(start, end, width, minPx, origin) {
  const span = end - start;
  const raw = (span * minPx) / Math.max(width, 1);
  let step = 1e-6;
  outer: for (let e = -6; e < 7; e++) {
    for (const m of STEPS) {
      step = m * 10 ** e;
      if (step >= raw) break outer;
    }
  }
  const first = Math.ceil((start - origin) / step) * step + origin;
  const out = [];
  for (let t = first, k = 0; t <= end && k < 200; k++, t = first + k * step) out.push(t);
  return { step, times: out };
}

/** "0 s", "1.25 s", "350 ms", "12 µs": the offset from the run's start at a tick's precision. */
export function fmtOffset(sec, step) {
  const a = Math.abs(sec);
  if (step < 1e-3 && a < 1e-3) return `${(sec * 1e6).toFixed(Math.max(0, -Math.floor(Math.log10(step * 1e6) + 1e-9)))} µs`;
  if (step < 1 && a < 1) return `${(sec * 1e3).toFixed(Math.max(0, -Math.floor(Math.log10(step * 1e3) + 1e-9)))} ms`;
  return `${sec.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)))} s`;
}

/** A duration for people: "350 ms", "1.25 s", "2 m 05 s". */
export function fmtSpan(sec) {
  if (sec < 1e-3) return `${(sec * 1e6).toFixed(0)} µs`;
  if (sec < 1) return `${(sec * 1000).toFixed(sec < 0.01 ? 2 : sec < 0.1 ? 1 : 0)} ms`;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const m = Math.floor(sec / 60);
  return `${m} m ${String(Math.round(sec % 60)).padStart(2, "0")} s`;
}

// ---------------------------------------------------------------- dense marks
/**
 * Walk the events of one track inside [start, end] as drawn groups: a group holds the events
 * that fall within `gapPx` pixels of its first one, so groups never touch and a dense stretch
 * costs one mark per `gapPx` pixels, however many events it has (each group is found by a
 * binary search, not by stepping over its events). Calls `fn(i, j)` for events i..j-1.
 */
export function forGroups(arr, start, end, pxPerSec, gapPx, fn) {
  const gap = gapPx / pxPerSec;
  let i = lowerBound(arr, start);
  const stop = lowerBound(arr, end, i, true);
  while (i < stop) {
    let j = lowerBound(arr, arr[i].t + gap, i + 1, true);
    if (j > stop) j = stop;
    fn(i, j);
    i = j;
  }
}

/** What a group of messages is: one direction or both, for its colour and arrowheads. */
export function groupDirection(arr, i, j) {
  let child = 0;
  let parent = 0;
  for (let k = i; k < j && k < i + 64; k++) {
    if (messageDirection(arr[k]) === "to_child") child++;
    else parent++;
  }
  return child && parent ? "both" : child ? "to_child" : "to_parent";
}

// ---------------------------------------------------------------- labels
/**
 * Places labels in rows without overlap: each row keeps the spans already taken, and a label
 * goes in the first row where it fits (to the right of its mark, else to its left), or
 * nowhere — then its mark shows it on hover and focus instead.
 */
export class LabelRows {
  constructor(left, right, rows, gap = 6) {
    this.left = left;
    this.right = right;
    this.gap = gap;
    this.taken = Array.from({ length: rows }, () => []);
  }

  /** @returns {{row: number, x: number} | null} */
  place(markX, width, rows = null) {
    for (const row of rows ?? this.taken.keys()) {
      for (const x of [markX + 7, markX - 7 - width]) {
        if (x < this.left || x + width > this.right) continue;
        if (this.free(row, x, x + width)) {
          this.taken[row].push([x - this.gap, x + width + this.gap]);
          return { row, x };
        }
      }
    }
    return null;
  }

  /** Keep a span clear (a mark that must not be written over, e.g. another label's mark). */
  block(row, x0, x1) {
    this.taken[row].push([x0, x1]);
  }

  free(row, x0, x1) {
    for (const [a, b] of this.taken[row]) if (x0 < b && x1 > a) return false;
    return true;
  }
}
