// Transport lab: the same ping-pong workload over each transport, side by side. Each message
// to the child and its echo are events on the feed with the server's own timestamps, so the
// round trip measured here is the server's (parent → child → parent), not the browser's HTTP.

import { Store, messageDirection } from "./store.js";
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
    { label: "p99 (ms)", stroke: "#d9480f", fill: "rgba(217,72,15,0.35)", paths: bars({ size: [0.7, 80] }), points: { show: false } },
    { label: "p50 (ms)", stroke: "#2857c5", fill: "rgba(40,87,197,0.7)", paths: bars({ size: [0.35, 40] }), points: { show: false } },
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

/** Pair each message to the child with the next reply, in order (the child answers in order). */
function measure(jobId) {
  const evs = store.jobEvents(jobId).filter((e) => e.type === "message");
  const out = [];
  const back = [];
  for (const e of evs) (messageDirection(e) === "to_child" ? out : back).push(e.t);
  // A child may greet first (a "ready" message) before any ping; drop replies before the first ping.
  const replies = back.filter((t) => out.length && t >= out[0]);
  const rtts = [];
  for (let i = 0; i < Math.min(out.length, replies.length); i++) rtts.push((replies[i] - out[i]) * 1000);
  const sorted = rtts.slice().sort((a, b) => a - b);
  const span = replies.length > 1 ? replies.at(-1) - out[0] : null;
  return { sent: out.length, received: replies.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), rate: span ? replies.length / span : null };
}

function render() {
  const stats = TRANSPORTS.map((t) => (lanes.get(t)?.jobId ? measure(lanes.get(t).jobId) : null));
  latencyChart.setData([TRANSPORTS.map((_, i) => i), stats.map((s) => s?.p99 ?? null), stats.map((s) => s?.p50 ?? null)]);
  rateChart.setData([TRANSPORTS.map((_, i) => i), stats.map((s) => (s?.rate != null ? Math.round(s.rate) : null))]);
  $("#lab-body").replaceChildren(...TRANSPORTS.map((t, i) => {
    const s = stats[i];
    const lane = lanes.get(t);
    const j = lane?.jobId ? store.jobs.get(lane.jobId) : null;
    const f = (v, d = 3) => (v == null ? "–" : v.toFixed(d));
    return h("tr", { dataset: { transport: t } },
      h("td", {}, t), h("td", {}, lane?.error ?? (j ? `${lane.jobId} pid ${j.pid ?? "?"} · ${j.state}` : "–")),
      h("td", { class: "count" }, s ? `${s.received}/${lane.total ?? s.sent}` : "–"),
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
  // Sequential sends: each ping leaves after the previous HTTP call returned, the way a
  // person clicking "send" would; the round trip itself is timed by the server's events.
  for (let i = 0; i < count; i++) {
    try {
      await api.send(lane.jobId, { type: "ping", n: i, t: Date.now() });
    } catch (err) {
      lane.error = err.message;
      break;
    }
  }
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
