// Views shared by the pages: the process tree, a job's console, the payload details box.
// Each redraws at most once per frame from the store; none keeps state the store does not have.

import { api } from "./api.js";
import { h, fmtBytes, fmtMs, fmtClock, adaptiveThrottle, download, copyText } from "./ui.js";
import { jobName, messageDirection, messagePayload, stateText, stringify } from "./store.js";

/** Start-up cost of a job: time to `spawn` and to its first message, from the job's start. */
export function startupCost(j) {
  const base = j.startedAt;
  return {
    toSpawn: base != null && j.spawnAt != null ? j.spawnAt - base : null,
    toFirstMessage: j.firstMessageAt != null ? j.firstMessageAt - (base ?? j.spawnAt) : null,
  };
}

export class TreeView {
  constructor(root, store, { onSelect, countEl, serverPid = null } = {}) {
    this.root = root;
    this.onSelect = onSelect ?? (() => {});
    this.countEl = countEl;
    this.selected = null;
    this.serverPid = serverPid;
    this.schedule = adaptiveThrottle(() => this.draw(), 100);
    this.setStore(store);
  }

  setStore(store) {
    this.unsub?.();
    this.store = store;
    this.unsub = store.subscribe(() => this.schedule());
    this.schedule();
  }

  select(id) {
    this.selected = id;
    this.schedule.now();
    this.onSelect(id);
  }

  draw() {
    const jobs = [...this.store.jobs.values()];
    // Output does not change the tree: redraw only when something it shows changed.
    const sig = `${this.selected}|${jobs.map((j) => `${j.id}:${j.number}:${j.host}:${j.state}:${j.pid}:${j.rss}:${j.label}:${j.spawnAt}:${j.firstMessageAt}:${j.startedAt}:${j.grandchildren.length}`).join(",")}`;
    if (sig === this.lastSig && this.root.childElementCount) return;
    this.lastSig = sig;
    const byParent = new Map();
    for (const j of jobs) {
      const p = j.parent && this.store.jobs.has(j.parent) ? j.parent : null;
      if (!byParent.has(p)) byParent.set(p, []);
      byParent.get(p).push(j);
    }
    const top = byParent.get(null) ?? [];
    const shown = top.slice(-200);
    // One node per runner (host): the server, and each agent or server sharing its Redis.
    const hosts = new Map();
    for (const j of shown) {
      const key = j.host ?? "";
      if (!hosts.has(key)) hosts.set(key, []);
      hosts.get(key).push(j);
    }
    if (!hosts.size) hosts.set("", []);
    const several = hosts.size > 1;
    const roots = [...hosts].map(([host, mine]) => {
      const pid = (!several && this.serverPid) || mine.find((j) => j.ppid != null)?.ppid || null;
      const name = several ? host || "server" : "server";
      const about = several ? "runner, parent of its jobs" : "the Flask app, parent of every job";
      const node = h("li", { role: "treeitem", "aria-expanded": "true", dataset: { host } },
        h("div", { class: "node server-node", dataset: { state: "running" } },
          h("span", { class: "dot" }), h("span", { class: "name" }, name), h("span", { class: "state", dataset: { state: "running" } }, "running"),
          h("span", { class: "meta" }, `${!several && host ? `${host} · ` : ""}pid ${pid ?? "?"} · ${about}`)));
      node.append(h("ul", { role: "group" }, mine.map((j) => this.item(j, byParent))));
      return node;
    });
    this.root.replaceChildren(...roots);
    if (this.countEl) {
      const live = jobs.filter((j) => j.state === "running" || j.state === "starting").length;
      this.countEl.textContent = `${jobs.length} jobs · ${live} running${top.length > shown.length ? ` · showing last ${shown.length}` : ""}`;
    }
  }

  item(j, byParent) {
    const cost = startupCost(j);
    const meta = [
      `pid ${j.pid ?? "?"}`,
      j.ppid != null ? `ppid ${j.ppid}` : null,
      j.kind,
      j.transport,
      `started ${fmtClock(j.startedAt ?? j.spawnAt)}`,
      cost.toSpawn != null ? `spawn ${fmtMs(cost.toSpawn)}` : null,
      cost.toFirstMessage != null ? `1st msg ${fmtMs(cost.toFirstMessage)}` : null,
      j.rss != null ? `rss ${fmtBytes(j.rss)}` : null,
    ].filter(Boolean).join(" · ");
    const node = h("div", {
      class: "node", tabindex: 0, role: "button", "aria-selected": String(this.selected === j.id),
      dataset: { state: j.state, job: j.id, number: j.number ?? "" },
      onclick: () => this.select(j.id),
      onkeydown: (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          this.select(j.id);
        }
      },
    },
    h("span", { class: "dot" }),
    h("span", { class: "name", title: j.label }, `${jobName(j)} · ${j.label || j.kind || ""}`),
    h("span", { class: "state", dataset: { state: j.state } }, stateText(j)),
    h("span", { class: "meta" }, meta));
    const li = h("li", { role: "treeitem" }, node);
    const kids = byParent.get(j.id) ?? [];
    const grand = (j.grandchildren ?? []).filter((g) => !kids.some((k) => k.pid === (g.pid ?? g)));
    if (kids.length || grand.length) {
      li.append(h("ul", { role: "group" },
        kids.map((k) => this.item(k, byParent)),
        // Grandchildren are known only from what the child reported (their pids): while the
        // child runs they are assumed alive; after, a group kill or their own end took them.
        grand.map((g) => {
          const st = g.state ?? (j.state === "running" ? "running" : "ended");
          return h("li", { role: "treeitem" }, h("div", { class: "node", dataset: { state: st } },
          h("span", { class: "dot" }), h("span", { class: "name" }, `grandchild ${g.pid ?? g}`),
          h("span", { class: "state", dataset: { state: st } }, st === "ended" ? "ended with its parent" : st),
          h("span", { class: "meta" }, `pid ${g.pid ?? g} · ppid ${g.ppid ?? j.pid ?? "?"}`)));
        })));
    }
    return li;
  }
}

// A flood changes the lines every frame; redrawing 2000 lines 60 times a second would keep
// the page from answering clicks, so the console redraws at most 5 times a second.
const CONSOLE_REDRAW_MS = 200;

function lineRun(stream, lines) {
  const span = document.createElement("span");
  span.className = stream === "stderr" ? "ln err" : stream === "sys" ? "ln sys" : stream.startsWith("fd") ? "ln fd" : "ln";
  span.textContent = lines.join("\n"); // text, never HTML
  span.dataset.lines = String(lines.length);
  return span;
}

/**
 * The console of one job: stdout and stderr as they arrive, stderr marked, bounded
 * scroll-back (the store keeps the last N lines; the DOM never holds more), dropped counts.
 */
export class ConsoleView {
  constructor({ el, statsEl, stderrToggle, copyBtn, downloadBtn, store, onNotice }) {
    this.el = el;
    this.statsEl = statsEl;
    this.stderrToggle = stderrToggle;
    this.onNotice = onNotice ?? (() => {});
    this.jobId = null;
    this.renderedSerial = 0;
    this.schedule = adaptiveThrottle(() => this.draw(), CONSOLE_REDRAW_MS);
    stderrToggle?.addEventListener("change", () => this.show(this.jobId, true));
    copyBtn?.addEventListener("click", async () => {
      if (!this.jobId) return;
      const ok = await copyText(await this.fullOutput());
      this.onNotice(ok ? "Output copied to the clipboard." : "Copy failed (clipboard not available).", ok);
    });
    downloadBtn?.addEventListener("click", async () => {
      if (!this.jobId) return;
      download(`${this.jobId}-output.txt`, await this.fullOutput());
    });
    this.setStore(store);
  }

  setStore(store) {
    this.unsub?.();
    this.store = store;
    this.unsub = store.subscribe(() => this.schedule());
    this.show(this.jobId, true);
  }

  /**
   * The whole output: what the page kept, in arrival order, while it is complete; past the
   * page's cap, the server's copy (GET /api/jobs/<id>/output, stdout then stderr, up to the
   * server's own per-job cap).
   */
  async fullOutput() {
    const j = this.store.jobs.get(this.jobId);
    // Complete here unless the page's cap cut it or the server dropped events on the way.
    if (j && !j.truncated && !j.serverDropped) return this.store.fullOutput(this.jobId);
    try {
      const out = await api.output(this.jobId);
      return out.stdout + (out.stderr ? `\n--- stderr ---\n${out.stderr}` : "");
    } catch {
      return this.store.fullOutput(this.jobId);
    }
  }

  show(jobId, force = false) {
    if (jobId === this.jobId && !force) return;
    this.jobId = jobId;
    this.el.replaceChildren();
    this.renderedSerial = 0;
    this.schedule.now();
  }

  draw() {
    const j = this.jobId ? this.store.jobs.get(this.jobId) : null;
    if (!j) {
      if (this.statsEl) this.statsEl.textContent = "";
      return;
    }
    const serial = j.lineSerial ?? 0;
    if (serial === this.renderedSerial) {
      this.stats(j);
      return;
    }
    const atBottom = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 40;
    const showErr = this.stderrToggle ? this.stderrToggle.checked : true;
    // Consecutive lines of one stream become one element: a few nodes, not thousands.
    const frag = document.createDocumentFragment();
    let run = null;
    let runStream = null;
    for (const ln of j.lines) {
      if (ln.stream === "stderr" && !showErr) continue;
      const text = ln.stream === "stdout" || ln.stream === "sys" ? ln.text : `${ln.stream} │ ${ln.text}`;
      if (ln.stream !== runStream) {
        if (run) frag.append(lineRun(runStream, run));
        run = [];
        runStream = ln.stream;
      }
      run.push(text);
    }
    if (run) frag.append(lineRun(runStream, run));
    this.el.replaceChildren(frag);
    this.renderedSerial = serial;
    if (atBottom) this.el.scrollTop = this.el.scrollHeight;
    this.stats(j);
  }

  stats(j) {
    if (!this.statsEl) return;
    const lost = j.droppedLines ? `${j.droppedLines} lines / ${fmtBytes(j.droppedBytes)} dropped from scroll-back` : "";
    const srv = j.serverDropped ? `${j.serverDropped} events dropped by the server` : "";
    const parts = [`${j.lines.length} lines shown`, `${fmtBytes(j.outBytes)} received`];
    this.statsEl.replaceChildren(
      parts.join(" · "),
      lost ? h("span", { class: "dropped" }, ` · ${lost}`) : "",
      srv ? h("span", { class: "dropped" }, ` · ${srv}`) : "",
      j.truncated ? h("span", { class: "dropped" }, " · copy/download keep the first 4 MiB") : "",
    );
  }
}

/** The details box: the full payload of one event, and its latency for a reply. */
export function showDetails(el, ev, store) {
  const rows = [h("strong", {}, `#${ev.seq ?? "–"} ${ev.type}`), ` · job ${ev.job ?? "–"} · pid ${ev.pid ?? "–"} · ${fmtClock(ev.t)}`];
  if (ev.type === "message") {
    const dir = messageDirection(ev);
    const payload = messagePayload(ev);
    const size = new TextEncoder().encode(stringify(payload) ?? "").length;
    rows.push(` · ${dir === "to_child" ? "parent → child" : "child → parent"} · ${size} bytes`);
    if (ev._latency != null) rows.push(` · ${fmtMs(ev._latency)} after the last message to the child`);
    const j = store?.jobs.get(ev.job);
    if (j && dir === "to_parent" && j.spawnAt != null && j.firstMessageAt === ev.t) rows.push(` · first message ${fmtMs(ev.t - (j.startedAt ?? j.spawnAt))} after start`);
  }
  el.replaceChildren(h("div", {}, rows), h("pre", {}, stringify(stripPriv(ev), null, 2)));
}

function stripPriv(ev) {
  const o = {};
  for (const k of Object.keys(ev)) if (!k.startsWith("_")) o[k] = ev[k];
  return o;
}
