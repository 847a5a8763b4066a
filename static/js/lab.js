// Transport lab: the server measures each transport (webapp/lab.py, the workload of
// `make bench`) and publishes every number as a `lab` event the moment it has it; this page
// only starts, cancels and draws. Each `lab` event carries the whole run as it stands, so the
// newest one is all there is to draw. The optional last row, "through your browser", is the
// one thing timed here: a round trip browser → server (HTTP) → child → server → browser
// (WebSocket), to show what the transports' microseconds look like from a page.

import { Store, jobName, nameJobs } from "./store.js";
import { Feed } from "./feed.js";
import { api } from "./api.js";
import { $, h, initTheme, showStatus, frameThrottle } from "./ui.js";
import { makeChart } from "./charts.js";

initTheme();

const BROWSER = "browser";
const SHORT = { floor: "floor", pipe: "pipe", socketpair: "socketpair", unix: "unix", tcp: "tcp", node: "node", [BROWSER]: "browser" };
const BROWSER_PINGS = 200; // HTTP round trips are ~2 ms: 200 are plenty for a p99

let run = null; // the newest snapshot of the latest run (see webapp/lab.py LabRun.snapshot)
let lastLabSeq = 0;
let startedHere = null; // the id of the run this page started (it times its browser row)
let browser = null; // the "through your browser" row: {state, done, total, p50, p99, error}
let browserJob = null;
const pongWaiters = new Map(); // ping n -> resolve(time the pong arrived)

const store = new Store({ maxEvents: 2000 });
const feed = new Feed({ store, after: null, onStatus: showStatus, onEvent }).start();

function onEvent(ev) {
  if (ev.type === "lab") {
    if (ev.seq <= lastLabSeq) return;
    lastLabSeq = ev.seq;
    setRun(ev.data);
  } else if (ev.type === "message" && ev.job === browserJob && ev.data?.direction === "to_parent") {
    const resolve = pongWaiters.get(ev.data.message?.n);
    if (resolve) {
      pongWaiters.delete(ev.data.message.n);
      resolve(performance.now());
    }
  }
}

// ---------------------------------------------------------------- charts
let categories = []; // subject keys on the x axis, in the run's order (+ "browser")

function barOpts(axes, label, series, y = {}) {
  // Slanted subject names: seven of them never overlap, even on a phone.
  const xAxis = {
    ...axes[0],
    values: (u, ticks) => ticks.map((t) => SHORT[categories[t]] ?? ""),
    splits: () => categories.map((_, i) => i),
    rotate: -35,
    size: 64,
  };
  const subject = { label: "subject", value: (u, i) => (i == null ? "–" : SHORT[categories[i]] ?? "–") };
  return {
    scales: { x: { time: false, range: () => [-0.5, Math.max(0.5, categories.length - 0.5)] }, y },
    axes: [xAxis, { ...axes[1], label, size: 64 }],
    series: [subject, ...series],
    legend: { show: series.length > 1 },
  };
}

const bars = window.uPlot.paths.bars;
const bar = (label, colour, fill, size, align = 0) => ({ label, stroke: colour, fill, paths: bars({ size: [size, 60], align }), points: { show: false } });
const empty = (n) => [[], ...Array.from({ length: n }, () => [])];

const latencyChart = makeChart($("#lat-chart"), (axes) => barOpts(axes, "µs", [
  bar("p50 µs", "#2857c5", "rgba(40,87,197,0.75)", 0.35, -1),
  bar("p99 µs", "#d9480f", "rgba(217,72,15,0.6)", 0.35, 1),
], { distr: 3, log: 10 }), empty(2));
const rateChart = makeChart($("#rate-chart"), (axes) => barOpts(axes, "messages / s", [
  bar("msgs / s", "#1d7a3a", "rgba(29,122,58,0.7)", 0.55),
], { range: (u, min, max) => [0, Math.max(10, (max ?? 0) * 1.15)] }), empty(1));
const mbChart = makeChart($("#mb-chart"), (axes) => barOpts(axes, "MB/s", [
  bar("MB/s", "#7048e8", "rgba(112,72,232,0.65)", 0.55),
], { range: (u, min, max) => [0, Math.max(1, (max ?? 0) * 1.15)] }), empty(1));

window.ipcExplorer = { store, feed, latencyChart, rateChart, mbChart, run: () => run, browser: () => browser };

// ---------------------------------------------------------------- drawing
const fmt = (v, digits = 1) => (v == null ? "–" : v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }));

function rows() {
  const list = run ? run.subjects.map((s) => ({ ...s })) : [];
  if (browser) {
    list.push({
      key: BROWSER,
      label: "through your browser",
      note: `HTTP POST to the server, which sends to a ping_pong.py child (${browser.job ?? "a fork job"}, auto transport); the pong comes back over the WebSocket feed. Timed in this page.`,
      state: browser.state,
      phase: browser.state === "running" ? "rtt" : null,
      rtt_done: browser.done,
      rtt_total: browser.total,
      rtt_p50_us: browser.p50,
      rtt_p99_us: browser.p99,
      msgs_per_s: null,
      mb_per_s: null,
      error: browser.error,
    });
  }
  return list;
}

function progressCell(s) {
  const pct = s.rtt_total ? Math.round((100 * s.rtt_done) / s.rtt_total) : 0;
  const words = {
    waiting: "waiting",
    running: { starting: "starting the child…", rtt: `round trips ${s.rtt_done}/${s.rtt_total}`, msgs: "pipelined burst…", big: "1 MiB messages…" }[s.phase] ?? "running",
    done: "done",
    cancelled: "cancelled",
    failed: `failed: ${s.error ?? ""}`,
  }[s.state] ?? s.state;
  return h("td", { class: "progress-cell" },
    h("div", { class: "progress", role: "progressbar", "aria-label": `${s.label} round trips`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct) }, h("div", { style: `width:${pct}%` })),
    h("span", { class: "small state-text" }, words));
}

function render() {
  const list = rows();
  categories = list.map((s) => s.key);
  const xs = categories.map((_, i) => i);
  latencyChart.setData([xs, list.map((s) => s.rtt_p50_us), list.map((s) => s.rtt_p99_us)]);
  rateChart.setData([xs, list.map((s) => s.msgs_per_s)]);
  mbChart.setData([xs, list.map((s) => s.mb_per_s)]);
  $("#lab-body").replaceChildren(...list.map((s) => h("tr", { dataset: { subject: s.key, state: s.state }, class: s.key === BROWSER ? "via-browser" : null },
    h("th", { scope: "row", title: s.note }, s.label, h("div", { class: "small muted note" }, s.note)),
    progressCell(s),
    // The page's clock (performance.now) ticks in 0.1 ms steps: no decimals for the browser row.
    h("td", { class: "num p50" }, fmt(s.rtt_p50_us, s.key === BROWSER ? 0 : 1)),
    h("td", { class: "num p99" }, fmt(s.rtt_p99_us, s.key === BROWSER ? 0 : 1)),
    h("td", { class: "num rate" }, fmt(s.msgs_per_s, 0)),
    h("td", { class: "num mbs" }, fmt(s.mb_per_s)))));
  const running = run?.state === "running";
  $("#lab-run").disabled = running || browser?.state === "running";
  $("#lab-cancel").disabled = !running;
  $("#lab-run-id").textContent = run ? `run ${run.id} · ${run.state}${run.reason ? ` (${run.reason})` : ""}` : "";
  const msg = $("#lab-msg");
  if (!run) return;
  if (running) {
    const cur = run.subjects.find((s) => s.key === run.current);
    msg.textContent = cur ? `Measuring ${cur.label}…` : "Measuring…";
    msg.className = "form-msg";
  } else if (browser?.state === "running") {
    msg.textContent = "Timing round trips through your browser…";
    msg.className = "form-msg";
  } else if (run.state === "cancelled") {
    msg.textContent = `Run ${run.id} cancelled: ${run.reason ?? "stopped"}.`;
    msg.className = "form-msg error";
  } else {
    const failed = run.subjects.filter((s) => s.state === "failed");
    msg.textContent = `Run ${run.id} done${failed.length ? `; failed: ${failed.map((s) => s.label).join(", ")}` : ""}.`;
    msg.className = `form-msg ${failed.length ? "error" : "ok"}`;
  }
}
const draw = frameThrottle(render);

function setRun(snapshot) {
  const ended = run && run.id === snapshot.id && run.state === "running" && snapshot.state !== "running";
  if (!run || run.id !== snapshot.id) browser = null;
  run = snapshot;
  draw();
  if (ended && snapshot.state === "done" && startedHere === snapshot.id && $("#lab-browser").checked) {
    measureBrowser(Math.min(BROWSER_PINGS, snapshot.config.rtt));
  }
}

// ---------------------------------------------------------------- through your browser
function waitPong(n, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pongWaiters.delete(n);
      reject(new Error(`no pong for ping ${n} within ${ms / 1000} s`));
    }, ms);
    pongWaiters.set(n, (t) => {
      clearTimeout(timer);
      resolve(t);
    });
  });
}

async function measureBrowser(n) {
  browser = { state: "running", done: 0, total: n, p50: null, p99: null, error: null, job: null };
  draw();
  let jobId = null;
  let job = null;
  try {
    const res = await api.createJob({ kind: "fork", program: "ping_pong.py", transport: "auto" });
    job = res?.job ?? res;
    jobId = job.id;
    browserJob = jobId;
    browser.job = jobName(job); // "#7": the job as the explorer's tree names it
    const times = [];
    for (let i = -1; i < n; i++) { // ping -1 waits for the child's start-up: not counted
      const pong = waitPong(i, 15000);
      const t0 = performance.now();
      await api.send(jobId, { type: "ping", n: i });
      const t1 = await pong;
      if (i < 0) continue;
      times.push((t1 - t0) * 1000);
      browser.done = times.length;
      if (times.length % 20 === 0) draw();
    }
    times.sort((a, b) => a - b);
    const pct = (p) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
    Object.assign(browser, { state: "done", p50: pct(50), p99: pct(99) });
  } catch (err) {
    Object.assign(browser, { state: "failed", error: nameJobs(err.message, job) });
  } finally {
    browserJob = null;
    pongWaiters.clear();
    if (jobId) api.send(jobId, { type: "stop" }).catch(() => api.kill(jobId, "SIGTERM").catch(() => {}));
    draw();
  }
}

// ---------------------------------------------------------------- controls
function notice(text, ok) {
  $("#lab-msg").textContent = text;
  $("#lab-msg").className = `form-msg ${ok ? "ok" : "error"}`;
}

$("#lab-run").addEventListener("click", async () => {
  const body = {
    rtt: Number($("#lab-rtt").value),
    msgs: Number($("#lab-msgs").value),
    big: Number($("#lab-big").value),
    subjects: [...document.querySelectorAll("#lab-subjects input:checked")].map((el) => el.value),
  };
  $("#lab-run").disabled = true;
  try {
    const data = await api.labStart(body);
    startedHere = data.run.id;
    if (!run || run.id !== data.run.id) setRun(data.run);
  } catch (err) {
    notice(`Not started: ${err.message}`, false);
    $("#lab-run").disabled = run?.state === "running";
  }
});

$("#lab-cancel").addEventListener("click", async () => {
  if (!run) return;
  try {
    await api.labCancel(run.id);
  } catch (err) {
    notice(err.message, false);
  }
});

// What this server can measure, its defaults and bounds, and the latest run (a page opened
// during or after a run shows it; a `lab` event that came first is newer and wins).
api.lab().then((info) => {
  for (const [name, lim] of Object.entries(info.limits)) {
    const input = $(`#lab-${name}`);
    if (!input) continue;
    input.min = lim.min;
    input.max = lim.max;
    input.value = info.defaults[name];
  }
  $("#lab-subjects").append(...info.subjects.map((s) => h("label", { class: "inline-check", title: s.note },
    h("input", { type: "checkbox", value: s.key, checked: true, name: "subject" }), s.label)));
  if (info.run && !lastLabSeq) setRun(info.run);
  draw();
}).catch((err) => notice(`Could not load the lab: ${err.message}`, false));

addEventListener("pagehide", () => {
  if (browserJob) navigator.sendBeacon?.(`/api/jobs/${browserJob}/kill`, new Blob([JSON.stringify({ signal: "SIGTERM" })], { type: "application/json" }));
});
