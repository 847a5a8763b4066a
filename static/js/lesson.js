// The seeds' lesson, visible: the server's heartbeat lateness charted live while /compute runs
// inline (the chart spikes: the server's thread is busy) or in a child (it stays flat); then
// the same range split over N children with each child's progress and the speed-up.

import { Store, messagePayload } from "./store.js";
import { Feed } from "./feed.js";
import { api, getText } from "./api.js";
import { $, h, initTheme, showStatus, fmtMs } from "./ui.js";
import { labelLines, liveTimeRange, makeChart } from "./charts.js";
import { whyNotFaster } from "./speedup.js";

initTheme();

const store = new Store();
const WINDOW = 300; // heartbeat points kept on the chart (100 ms each: 30 s)
const xs = [];
const ys = [];
let maxLate = 0;
let worstSinceMark = 0;

// Runs of /compute, shaded on the chart behind the line: [startSec, endSec|null, mode].
const bands = [];
const BAND_COLOURS = { inline: "rgba(179,38,30,0.16)", child: "rgba(40,87,197,0.14)" };
const bandsPlugin = {
  hooks: {
    drawClear: [
      (u) => {
        const { ctx } = u;
        const { top, height } = u.bbox;
        ctx.save();
        ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
        const labels = [];
        for (const [a, b, mode] of bands) {
          const x0 = u.valToPos(a, "x", true);
          const x1 = u.valToPos(b ?? Date.now() / 1000, "x", true);
          if (x1 < u.bbox.left) continue;
          const left = Math.max(x0, u.bbox.left);
          ctx.fillStyle = BAND_COLOURS[mode];
          ctx.fillRect(left, top, Math.max(2, x1 - left), height);
          const text = mode === "inline" ? "inline" : "child";
          labels.push({ x: left + 4 * devicePixelRatio, width: ctx.measureText(text).width, text, mode });
        }
        // Runs close together (or overlapping) have their labels on a second line, or none.
        const lines = labelLines(labels, { gap: 6 * devicePixelRatio });
        labels.forEach((label, i) => {
          if (lines[i] < 0) return;
          ctx.fillStyle = label.mode === "inline" ? "#b3261e" : "#2857c5";
          ctx.fillText(label.text, label.x, top + (14 + 14 * lines[i]) * devicePixelRatio);
        });
        ctx.restore();
      },
    ],
  },
};

const chart = makeChart($("#hb-chart"), (axes) => ({
  plugins: [bandsPlugin],
  // Before the first heartbeat the axis shows the last 30 s, not uPlot's default span.
  scales: { x: { time: true, range: (u, min, max) => liveTimeRange(u.data[0].length ? min : null, max, WINDOW / 10) }, y: { range: (u, min, max) => [0, Math.max(50, max * 1.1)] } },
  axes: [axes[0], { ...axes[1], label: "late (ms)", size: 60 }],
  series: [{}, { label: "server lateness (ms)", stroke: "#d9480f", width: 2, fill: "rgba(217,72,15,0.12)", points: { show: false } }],
  legend: { live: true },
}), [[], []]);

let dirty = false;
function onHeartbeat(msg) {
  const late = Number(msg.late_ms ?? msg.late ?? 0);
  xs.push(Date.now() / 1000);
  ys.push(late);
  if (xs.length > WINDOW) {
    xs.shift();
    ys.shift();
  }
  maxLate = Math.max(maxLate, late);
  worstSinceMark = Math.max(worstSinceMark, late);
  for (const r of runs) if (!r.done) r.lateMs = Math.max(r.lateMs ?? 0, late); // how busy, per split run
  $("#hb-now").textContent = `${late.toFixed(1)} ms`;
  $("#hb-count").textContent = String(Number($("#hb-count").textContent || 0) + 1);
  if (!dirty) {
    dirty = true;
    requestAnimationFrame(() => {
      dirty = false;
      chart.setData([xs.slice(), ys.slice()]);
    });
  }
}

const feed = new Feed({
  store, after: null, heartbeat: true, onStatus: showStatus,
  onControl: (msg) => msg.type === "heartbeat" && onHeartbeat(msg),
}).start();
window.ipcExplorer = { store, feed, chart };

// ---------------------------------------------------------------- inline vs child
async function runCompute(mode) {
  const max = Number($("#c-max").value);
  const transport = $("#c-transport").value;
  const q = new URLSearchParams({ min: "0", max: String(max) });
  if (mode === "inline") q.set("mode", "inline");
  else {
    if (transport !== "auto") q.set("transport", transport);
    q.set("runtime", $("#c-runtime").value);
  }
  const where = mode === "inline" ? "inline (server thread)" : `in a ${$("#c-runtime").value} child`;
  const row = h("tr", { dataset: { mode } }, h("td", {}, where), h("td", {}, `0 … ${max.toLocaleString()}`), h("td", { class: "answer" }, "…"), h("td", {}, "…"), h("td", { class: "late" }, "…"));
  $("#c-body").prepend(row);
  worstSinceMark = 0;
  for (const b of document.querySelectorAll(".c-run")) b.disabled = true;
  const band = [Date.now() / 1000, null, mode];
  bands.push(band);
  if (bands.length > 20) bands.shift();
  let r;
  try {
    r = await getText(`/compute?${q}`);
  } finally {
    band[1] = Date.now() / 1000;
    for (const b of document.querySelectorAll(".c-run")) b.disabled = false;
  }
  // Heartbeats that were held up during inline work arrive right after it: wait for them.
  await new Promise((res) => setTimeout(res, 350));
  row.children[2].textContent = r.ok ? r.text : `${r.status} ${r.text}`;
  row.children[3].textContent = fmtMs(r.ms / 1000);
  row.children[4].textContent = `${worstSinceMark.toFixed(1)} ms`;
  row.dataset.late = String(worstSinceMark);
}
$("#c-inline").addEventListener("click", () => runCompute("inline"));
$("#c-child").addEventListener("click", () => runCompute("child"));

// ---------------------------------------------------------------- split over N children
function progressOf(m) {
  if (m && typeof m === "object") {
    if (typeof m.progress === "number") return m.progress > 1 ? m.progress / 100 : m.progress;
    if (m.done != null && m.total) return m.done / m.total;
    if (m.type === "result" || m.sum != null || m.result != null) return 1;
  }
  if (typeof m === "number" || typeof m === "bigint" || (typeof m === "string" && /^\d+$/.test(m))) return 1;
  return null;
}

function resultOf(m) {
  if (typeof m === "number" || typeof m === "bigint" || (typeof m === "string" && /^\d+$/.test(m))) return BigInt(m);
  if (m && typeof m === "object" && m.type !== "progress") {
    const v = m.sum ?? m.result;
    if (v != null) return BigInt(v);
  }
  return null;
}

const runs = [];
async function split(n) {
  const max = Number($("#s-max").value);
  const box = $("#workers");
  box.replaceChildren();
  const step = Math.ceil(max / n);
  // How many children the server ran besides this run's, should it be slower than hoped.
  const status = await api.status().catch(() => null);
  const t0 = performance.now();
  const run = { n, max, workers: [], t0, done: false, row: null, otherChildren: status?.live_children ?? null, lateMs: null };
  runs.push(run);
  for (let k = 0; k < n; k++) {
    const min = k * step;
    const hi = Math.min(max, (k + 1) * step);
    const bar = h("div");
    const label = h("span", {}, "starting");
    box.append(h("div", { class: "worker" }, h("span", {}, `child ${k + 1}`), h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 }, bar), label));
    run.workers.push({ min, max: hi, bar, label, id: null, result: null });
  }
  await Promise.all(run.workers.map(async (w) => {
    try {
      // "loop": really iterate (compute.py would answer big ranges by formula, instantly).
      const message = { min: w.min, max: w.max };
      if ($("#s-program").value.endsWith(".py")) message.method = "loop";
      const res = await api.createJob({ kind: "fork", program: $("#s-program").value, message });
      w.id = (res?.job ?? res).id;
      store.upsertJob(res?.job ?? res);
    } catch (err) {
      w.label.textContent = err.message;
    }
  }));
  updateRun(run);
}

function updateRun(run) {
  if (run.done) return;
  for (const w of run.workers) {
    if (!w.id) continue;
    const j = store.jobs.get(w.id);
    for (const ev of store.jobEvents(w.id)) {
      if (ev.type !== "message" || ev.data?.direction === "to_child") continue;
      const m = messagePayload(ev);
      const p = progressOf(m);
      if (p != null) w.progress = p;
      const r = resultOf(m);
      if (r != null && w.result == null) {
        w.result = r;
        w.doneAt = performance.now();
      }
    }
    const pct = Math.round((w.progress ?? 0) * 100);
    w.bar.style.width = `${pct}%`;
    w.bar.parentElement.setAttribute("aria-valuenow", pct);
    w.label.textContent = w.result != null ? "done" : j?.state === "failed" || j?.state === "signaled" ? j.state : `${pct}%`;
  }
  if (run.workers.every((w) => w.result != null)) {
    run.done = true;
    run.ms = Math.max(...run.workers.map((w) => w.doneAt)) - run.t0;
    const total = run.workers.reduce((a, w) => a + w.result, 0n);
    const base = runs.find((r) => r.done && r.n === 1 && r.max === run.max);
    const speed = base ? `${(base.ms / run.ms).toFixed(2)}×` : "run with 1 child to compare";
    const why = base && run.n > 1 ? whyNotFaster({
      n: run.n, oneMs: base.ms, manyMs: run.ms, startMs: startupMs(run),
      cores: navigator.hardwareConcurrency || null, lateMs: run.lateMs, otherChildren: run.otherChildren,
    }) : null;
    const row = h("tr", { dataset: { n: run.n } }, h("td", {}, String(run.n)), h("td", {}, `0 … ${run.max.toLocaleString()}`), h("td", { class: "answer" }, total.toString()), h("td", {}, fmtMs(run.ms / 1000)), h("td", { class: "speedup" }, run.n === 1 ? "1× (baseline)" : speed, why ? " — slower, see why below" : ""));
    // Below 1×, the reasons, under the row they explain.
    const note = why ? h("tr", { class: "why", dataset: { n: run.n } }, h("td", { colspan: 5 },
      h("strong", {}, `Why ${run.n} children were slower than one:`), h("ul", {}, why.reasons.map((r) => h("li", {}, r))))) : null;
    $("#s-body").prepend(...[row, note].filter(Boolean));
  }
}

/** The median start-up of a run's children: from the request (the job's start) to its first
 *  message, in ms (server times, both from the feed and the API). */
function startupMs(run) {
  const times = run.workers.map((w) => store.jobs.get(w.id)).filter((j) => j?.startedAt != null && j.firstMessageAt != null).map((j) => (j.firstMessageAt - j.startedAt) * 1000).sort((a, b) => a - b);
  return times.length ? times[Math.floor(times.length / 2)] : null;
}

let pendingUpdate = false;
store.subscribe(() => {
  if (pendingUpdate) return;
  pendingUpdate = true;
  requestAnimationFrame(() => {
    pendingUpdate = false;
    for (const r of runs) updateRun(r);
  });
});

$("#s-one").addEventListener("click", () => split(1));
$("#s-many").addEventListener("click", () => split(Number($("#s-n").value) || 2));
$("#s-n").value = String(Math.max(2, Math.min(8, navigator.hardwareConcurrency || 2)));

// The REST heartbeat, once, so the page shows a number even before the feed's first beat.
api.heartbeat().then((hb) => {
  if (hb && hb.late_ms != null && !xs.length) $("#hb-now").textContent = `${Number(hb.late_ms).toFixed(1)} ms`;
}).catch(() => {});
