// Transport lab: the same ping-pong workload over each transport, side by side. Each message
// to the child and its echo are events on the feed with the server's own timestamps, so the
// round trip measured here is the server's (parent → child → parent), not the browser's HTTP.

import { Store, jobName, messageDirection } from "./store.js";
import { Feed } from "./feed.js";
import { api } from "./api.js";
import { $, h, initTheme, showStatus } from "./ui.js";
import { makeChart } from "./charts.js";

initTheme();

const TRANSPORTS = ["pipe", "socketpair", "unix", "tcp"];
const store = new Store();
const feed = new Feed({ store, after: null, onStatus: showStatus }).start();
const lanes = new Map(); // transport -> {jobId, sent, t0}

const bars = window.uPlot.paths.bars;
const latencyChart = makeChart($("#lat-chart"), (axes) => ({
  scales: { x: { time: false, range: [-0.5, TRANSPORTS.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(0.5, max * 1.15)] } },
  axes: [{ ...axes[0], values: (u, ticks) => ticks.map((t) => TRANSPORTS[t] ?? ""), splits: () => TRANSPORTS.map((_, i) => i) }, { ...axes[1], label: "round trip (ms)", size: 60 }],
  series: [
    {},
    { label: "p50 (ms)", stroke: "#2857c5", fill: "rgba(40,87,197,0.7)", paths: bars({ size: [0.35, 50], align: -1 }), points: { show: false } },
    { label: "p99 (ms)", stroke: "#d9480f", fill: "rgba(217,72,15,0.55)", paths: bars({ size: [0.35, 50], align: 1 }), points: { show: false } },
  ],
}), [TRANSPORTS.map((_, i) => i), TRANSPORTS.map(() => null), TRANSPORTS.map(() => null)]);

const rateChart = makeChart($("#rate-chart"), (axes) => ({
  scales: { x: { time: false, range: [-0.5, TRANSPORTS.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.15)] } },
  axes: [{ ...axes[0], values: (u, ticks) => ticks.map((t) => TRANSPORTS[t] ?? ""), splits: () => TRANSPORTS.map((_, i) => i) }, { ...axes[1], label: "messages / s", size: 70 }],
  series: [{}, { label: "round trips / s", stroke: "#1d7a3a", fill: "rgba(29,122,58,0.6)", paths: bars({ size: [0.5, 60] }), points: { show: false } }],
}), [TRANSPORTS.map((_, i) => i), TRANSPORTS.map(() => null)]);

window.ipcExplorer = { store, feed, latencyChart, rateChart };

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Pair each ping with its pong by `n` (ping_pong.py copies every field back). Two phases:
 * "lat" pings go one at a time, so each round trip is the transport's and nothing queues;
 * "rate" pings go many at once, so the child and the channel are kept busy and the pongs per
 * second say how much the transport carries. The warm-up ping (n = -1) is left out: it
 * includes the child's start-up.
 */
function measure(jobId) {
  const sent = new Map();
  const lat = [];
  let received = 0;
  let rateFirst = null;
  let rateLast = null;
  let rateCount = 0;
  for (const e of store.jobEvents(jobId)) {
    if (e.type !== "message") continue;
    const m = e.data?.message;
    if (!m || typeof m !== "object" || m.n == null || m.n < 0) continue;
    const key = `${m.phase}:${m.n}`;
    if (messageDirection(e) === "to_child") {
      sent.set(key, e.t);
      if (m.phase === "rate" && rateFirst == null) rateFirst = e.t;
    } else if (m.type === "pong" && sent.has(key)) {
      if (m.phase === "lat") {
        received++;
        lat.push((e.t - sent.get(key)) * 1000);
      } else {
        rateCount++;
        rateLast = e.t;
      }
    }
  }
  const sorted = lat.sort((a, b) => a - b);
  const span = rateLast != null && rateFirst != null ? rateLast - rateFirst : null;
  return { received, p50: percentile(sorted, 50), p99: percentile(sorted, 99), rate: span > 0 ? rateCount / span : null, rateCount };
}

function render() {
  const stats = TRANSPORTS.map((t) => (lanes.get(t)?.jobId ? measure(lanes.get(t).jobId) : null));
  latencyChart.setData([TRANSPORTS.map((_, i) => i), stats.map((s) => s?.p50 ?? null), stats.map((s) => s?.p99 ?? null)]);
  rateChart.setData([TRANSPORTS.map((_, i) => i), stats.map((s) => (s?.rate != null ? Math.round(s.rate) : null))]);
  $("#lab-body").replaceChildren(...TRANSPORTS.map((t, i) => {
    const s = stats[i];
    const lane = lanes.get(t);
    const j = lane?.jobId ? store.jobs.get(lane.jobId) : null;
    const f = (v, d = 3) => (v == null ? "–" : v.toFixed(d));
    return h("tr", { dataset: { transport: t } },
      h("td", {}, t), h("td", {}, lane?.error ?? (j ? `${jobName(j)} pid ${j.pid ?? "?"} · ${j.state}` : "–")),
      h("td", { class: "count" }, s ? `${s.received}/${lane.total}` : "–"),
      h("td", { class: "p50" }, f(s?.p50)), h("td", { class: "p99" }, f(s?.p99)), h("td", { class: "rate" }, s?.rate != null ? String(Math.round(s.rate)) : "–"));
  }));
}

let queued = false;
store.subscribe(() => {
  if (queued) return;
  queued = true;
  setTimeout(() => {
    queued = false;
    render();
  }, 200);
});
render();

async function runLane(transport, count, program) {
  const lane = { total: count };
  lanes.set(transport, lane);
  try {
    const res = await api.createJob({ kind: "fork", program, transport });
    const job = res?.job ?? res;
    lane.jobId = job.id;
    store.upsertJob(job);
  } catch (err) {
    lane.error = `refused: ${err.message}`;
    render();
    return;
  }
  try {
    // Warm-up: the first ping waits for the child to start; it is not measured.
    await api.send(lane.jobId, { type: "ping", n: -1, phase: "warmup" });
    await waitForPong(lane.jobId);
    // Latency: one ping at a time (the next leaves when the server accepted the previous).
    for (let i = 0; i < count; i++) await api.send(lane.jobId, { type: "ping", n: i, phase: "lat" });
    // Throughput: many in flight at once, 16 requests deep.
    let next = 0;
    const worker = async () => {
      while (next < count) await api.send(lane.jobId, { type: "ping", n: next++, phase: "rate" });
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  } catch (err) {
    lane.error = err.message;
  }
}

function waitForPong(jobId) {
  return new Promise((resolve) => {
    const done = () => store.jobEvents(jobId).some((e) => e.type === "message" && e.data?.message?.type === "pong");
    if (done()) return resolve();
    const unsub = store.subscribe(() => {
      if (done()) {
        unsub();
        resolve();
      }
    });
    setTimeout(() => {
      unsub();
      resolve();
    }, 15000);
  });
}

$("#lab-run").addEventListener("click", async () => {
  const count = Math.max(1, Math.min(2000, Number($("#lab-count").value) || 100));
  const program = $("#lab-program").value;
  for (const lane of lanes.values()) if (lane.jobId) api.kill(lane.jobId, "SIGTERM").catch(() => {});
  lanes.clear();
  $("#lab-run").disabled = true;
  $("#lab-msg").textContent = `Sending ${count} pings over each transport…`;
  await Promise.all(TRANSPORTS.map((t) => runLane(t, count, program)));
  $("#lab-run").disabled = false;
  $("#lab-msg").textContent = "Done. The children keep running until you run again or leave the page.";
  render();
});

addEventListener("pagehide", () => {
  for (const lane of lanes.values()) if (lane.jobId) navigator.sendBeacon?.(`/api/jobs/${lane.jobId}/kill`, new Blob([JSON.stringify({ signal: "SIGTERM" })], { type: "application/json" }));
});
