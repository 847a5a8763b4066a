// The seed examples page: each example runnable with one click, its Node and Python code shown,
// the seed's expected result beside what actually arrived (read live from the store), and a
// timeline that shows the jobs of the example run last.

import { Store, messagePayload, outputText } from "./store.js";
import { Feed } from "./feed.js";
import { api, getText } from "./api.js";
import { $, h, initTheme, showStatus, fmtMs, fmtBytes } from "./ui.js";
import { Timeline } from "./timeline.js";
import { showDetails, startupCost } from "./views.js";
import { EXAMPLES } from "./examples-data.js";
import { lookUpJobs } from "./jobinfo.js";

initTheme();

const store = new Store();
const feed = new Feed({ store, after: null, onStatus: showStatus }).start();
let shownJobs = new Set();
let httpSince = null; // jobs started by an endpoint call (/getSum...) after this seq are shown too

const timeline = new Timeline($("#ex-timeline"), store, {
  filter: (j) => shownJobs.has(j.id) || (httpSince != null && (j.firstSeq ?? 0) > httpSince),
  onSelect: (ev) => showDetails($("#ex-details"), ev, store),
  windowSec: 0,
});

window.ipcExplorer = { store, feed, timeline };
// Jobs the endpoints start (/getSum, /compute) reach the page by the feed, without their
// numbers: looked up once each, so the timeline names them as the explorer does (#7).
lookUpJobs(store);

function waitFor(pred, ms) {
  return new Promise((resolve, reject) => {
    if (pred()) return resolve();
    const timer = setTimeout(() => {
      unsub();
      reject(new Error("timed out waiting for the child"));
    }, ms);
    const unsub = store.subscribe(() => {
      if (pred()) {
        clearTimeout(timer);
        unsub();
        resolve();
      }
    });
  });
}

function makeCtx(run) {
  return {
    jobs: run.jobs,
    notes: run.notes,
    note: (text) => run.notes.push(text),
    async launch(spec) {
      const res = await api.createJob(spec);
      const job = res?.job ?? res;
      store.upsertJob(job);
      run.jobs.push(job.id);
      shownJobs.add(job.id);
      timeline.redraw();
      return job;
    },
    kill: (id, sig) => api.kill(id, sig),
    waitFor,
    job: (id) => store.jobs.get(id),
    events: (id) => store.jobEvents(id),
    output: (id) => store.fullOutput(id),
    payload: messagePayload,
    text: outputText,
  };
}

function renderExample(ex) {
  const result = h("div", { class: "result", "aria-live": "polite", "data-ok": "" }, "Not run yet.");
  const status = h("span", { class: "ex-status muted small" });
  const run = { jobs: [], notes: [] };
  let started = null;

  const update = () => {
    if (!started) return;
    let r;
    try {
      r = ex.check(makeCtx(run));
    } catch (err) {
      r = { ok: false, text: String(err) };
    }
    result.textContent = r.text || "waiting for the child…";
    result.dataset.ok = r.ok ? "true" : "";
    if (r.ok && !run.done) {
      run.done = true;
      status.textContent = `✓ matches the seed (${fmtMs((performance.now() - started) / 1000)})`;
      status.className = "ex-status small";
      // Like the seeds' masters (FCompute.kill()), stop the children that keep listening, so
      // clicking Run again and again does not pile up live processes against the limit.
      for (const id of run.jobs) {
        const j = store.jobs.get(id);
        if (j && (j.state === "running" || j.state === "starting")) api.kill(id, "SIGTERM").catch(() => {});
      }
    } else if (!r.ok) status.textContent = "running…";
  };

  const runBtn = h("button", {
    class: "primary", type: "button", "data-run": ex.id,
    onclick: async () => {
      run.jobs.length = 0;
      run.notes.length = 0;
      run.done = false;
      shownJobs = new Set();
      httpSince = null;
      started = performance.now();
      result.textContent = "starting…";
      result.dataset.ok = "";
      status.textContent = "running…";
      status.className = "ex-status muted small";
      $("#ex-current").textContent = ex.title;
      try {
        await ex.run(makeCtx(run));
      } catch (err) {
        result.textContent = `Could not run: ${err.message}`;
        result.dataset.ok = "false";
        status.textContent = "failed";
        return;
      }
      update();
    },
  }, "▶ Run");

  const extra = [];
  if (ex.endpoint) {
    const out = h("span", { class: "endpoint-result small" });
    extra.push(h("button", {
      type: "button", "data-endpoint": ex.endpoint,
      onclick: async () => {
        httpSince = store.lastSeq ?? 0;
        shownJobs = new Set();
        $("#ex-current").textContent = `GET ${ex.endpoint}`;
        out.textContent = "…";
        const r = await getText(ex.endpoint);
        out.textContent = `GET ${ex.endpoint} → ${r.status} “${r.text}” in ${fmtMs(r.ms / 1000)}`;
        timeline.redraw();
      },
    }, `GET ${ex.endpoint}`), out);
  }

  store.subscribe(() => started && update());

  return h("section", { class: "panel example", id: `ex-${ex.id}`, "aria-labelledby": `ex-${ex.id}-h` },
    h("header", {}, h("h2", { id: `ex-${ex.id}-h` }, ex.title), h("span", { class: "grow" }), h("span", { class: "muted small" }, ex.seed)),
    h("p", { class: "teach" }, ex.teaches),
    h("div", { class: "codes" },
      h("div", {}, h("div", { class: "code-title" }, "Node (from the seed)"), h("pre", { class: "code" }, h("code", {}, ex.node))),
      h("div", {}, h("div", { class: "code-title" }, "Python (ipc)"), h("pre", { class: "code" }, h("code", {}, ex.python)))),
    h("p", { class: "expected" }, "Expected (as the seed shows): ", h("code", {}, ex.expected)),
    h("div", { class: "row" }, h("div", { class: "fit" }, runBtn), ...extra.map((e) => h("div", { class: "fit" }, e)), status),
    result);
}

const list = $("#ex-list");
$("#ex-toc").append(...EXAMPLES.map((ex) => h("a", { href: `#ex-${ex.id}` }, ex.title.split(" — ")[0])));
list.append(...EXAMPLES.map(renderExample));

// Start-up cost and memory per runtime, measured on the jobs of this page, against the
// seed's claim for Node (≥30 ms and ≥10 MB per forked process).
function median(xs) {
  const v = xs.filter((x) => x != null).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : null;
}
function drawCost() {
  const groups = { node: [], python: [] };
  for (const j of store.jobs.values()) {
    if (j.kind !== "fork") continue; // the seed's claim is about fork()
    (/\.js\b/.test(j.label) ? groups.node : groups.python).push(j);
  }
  const row = (name, jobs) => {
    const spawn = median(jobs.map((j) => startupCost(j).toSpawn));
    const first = median(jobs.map((j) => startupCost(j).toFirstMessage));
    const rss = median(jobs.map((j) => j.rss));
    return h("tr", {}, h("td", {}, name), h("td", {}, String(jobs.length)), h("td", {}, fmtMs(spawn)), h("td", {}, fmtMs(first)), h("td", {}, fmtBytes(rss)));
  };
  $("#cost-body").replaceChildren(row("Node children", groups.node), row("Python children", groups.python));
}
let costTimer = null;
store.subscribe(() => {
  if (!costTimer) costTimer = setTimeout(() => { costTimer = null; drawCost(); }, 500);
});
drawCost();
