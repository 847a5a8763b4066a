// Views shared by the pages: the process tree, a job's console, the payload details box.
// Each redraws at most once per frame from the store; none keeps state the store does not have.

import { api } from "./api.js";
import { h, fmtBytes, fmtMs, fmtClock, adaptiveThrottle, download, copyText } from "./ui.js";
import { jobName, jobTitle, jobsByParent, messageDirection, messagePayload, stateText, stringify } from "./store.js";

/** Start-up cost of a job: time to `spawn` and to its first message, from the job's start. */
export function startupCost(j) {
  const base = j.startedAt;
  return {
    toSpawn: base != null && j.spawnAt != null ? j.spawnAt - base : null,
    toFirstMessage: j.firstMessageAt != null ? j.firstMessageAt - (base ?? j.spawnAt) : null,
  };
}

/**
 * Where a job stands, in three words the filters use: "running" (starting or running),
 * "finished" (exited with code 0) or "failed" (another code, a signal, or an error).
 */
export function jobPhase(j) {
  if (j.state === "starting" || j.state === "running") return "running";
  if (j.error || j.signal || (j.exitCode != null && j.exitCode !== 0)) return "failed";
  if (j.state === "exited") return "finished";
  return "failed"; // signaled or failed (ipc.State): it did not end well
}

const HIDE_FINISHED_KEY = "tree.hideFinished";
const MAX_ROWS = 500;

/** The server node's state from the feed's status: the server said it is going away
 *  ("stopped"), the connection dropped without a word ("unreachable"); otherwise it answers. */
export function serverState(feedStatus) {
  if (feedStatus === "stopped") return "stopped";
  if (feedStatus === "reconnecting") return "unreachable";
  return "running";
}

/**
 * The process panel: the server, its jobs (a child job under its parent) and their
 * grandchildren, each parent with the count of its children. It scrolls inside its own box;
 * it filters by phase (running / finished / failed) and by text, and can fold finished jobs
 * away. Keyboard: the WAI-ARIA tree pattern (one tab stop; ↑ ↓ move, → opens or steps in,
 * ← closes or steps out, Home / End, Enter or Space selects).
 */
export class TreeView {
  constructor(root, store, { onSelect, countEl, serverPid = null, scrollEl = null, filters = null, search = null, hideFinished = null, hiddenEl = null } = {}) {
    this.root = root;
    this.onSelect = onSelect ?? (() => {});
    this.countEl = countEl;
    this.scrollEl = scrollEl ?? root.parentElement;
    this.filtersEl = filters;
    this.searchEl = search;
    this.hideEl = hideFinished;
    this.hiddenEl = hiddenEl;
    this.selected = null;
    this.serverPid = serverPid;
    this.serverState = "running";
    this.phase = "all";
    this.query = "";
    this.collapsed = new Set();
    this.focusKey = null; // the node that holds the tree's one tab stop
    this.hideFinished = localStorage.getItem(HIDE_FINISHED_KEY) === "1";
    if (this.hideEl) this.hideEl.checked = this.hideFinished;
    // What the user changes shows at once (the list is redrawn now, not at the next tick).
    filters?.addEventListener("change", (e) => {
      this.phase = e.target.value;
      this.draw();
    });
    search?.addEventListener("input", () => {
      this.query = search.value.trim().toLowerCase();
      this.draw();
    });
    hideFinished?.addEventListener("change", () => {
      this.hideFinished = hideFinished.checked;
      localStorage.setItem(HIDE_FINISHED_KEY, this.hideFinished ? "1" : "0");
      this.draw();
    });
    // Jobs are listed in start order, the newest last: while the list is scrolled to its end
    // (as it starts) it stays there as jobs come, as a terminal does.
    this.stick = true;
    this.scrollEl?.addEventListener("scroll", () => {
      const box = this.scrollEl;
      this.stick = box.scrollTop >= box.scrollHeight - box.clientHeight - 2;
    }, { passive: true });
    root.addEventListener("keydown", (e) => this.onKey(e));
    root.addEventListener("click", (e) => this.onClick(e));
    root.addEventListener("focusin", (e) => {
      const node = e.target.closest?.(".node");
      if (node) this.moveTabStop(node);
    });
    this.schedule = adaptiveThrottle(() => this.draw(), 100);
    this.setStore(store);
  }

  setStore(store) {
    this.unsub?.();
    this.store = store;
    this.unsub = store.subscribe(() => this.schedule());
    this.schedule();
  }

  /** Show the server as the feed last found it (Feed's `onStatus`). */
  setServerStatus(feedStatus) {
    this.serverState = serverState(feedStatus);
    this.schedule.now();
  }

  select(id) {
    this.selected = id;
    this.focusKey = id;
    this.revealSelected = true;
    this.schedule.now();
    this.onSelect(id);
  }

  matches(j) {
    if (!this.query) return true;
    const grand = (j.grandchildren ?? []).map((g) => g.pid ?? g).join(" ");
    const text = `${j.id} ${jobName(j)} ${j.label} ${j.kind ?? ""} ${j.transport ?? ""} pid ${j.pid ?? ""} ${stateText(j)} ${jobPhase(j)} ${grand}`.toLowerCase();
    return text.includes(this.query);
  }

  draw() {
    const jobs = [...this.store.jobs.values()];
    // Output does not change the tree: redraw only when something it shows changed.
    const sig = `${this.serverState}|${this.selected}|${this.phase}|${this.query}|${this.hideFinished}|${[...this.collapsed]}|${jobs.map((j) => `${j.id}:${j.number}:${j.host}:${j.state}:${j.pid}:${j.rss}:${j.label}:${j.spawnAt}:${j.firstMessageAt}:${j.startedAt}:${j.grandchildren.length}`).join(",")}`;
    if (sig === this.lastSig && this.root.childElementCount) return;
    this.lastSig = sig;

    const counts = { all: jobs.length, running: 0, finished: 0, failed: 0 };
    for (const j of jobs) counts[jobPhase(j)]++;
    for (const input of this.filtersEl?.querySelectorAll("input") ?? []) {
      const n = input.closest("label")?.querySelector(".n");
      if (n) n.textContent = String(counts[input.value] ?? "");
    }

    // Which jobs show: the phase filter, the text, and "hide finished". A child job whose
    // parent is hidden still shows, at the top level.
    let hiddenFinished = 0;
    const shown = jobs.filter((j) => {
      const phase = jobPhase(j);
      if (this.phase !== "all" && phase !== this.phase) return false;
      if (!this.matches(j)) return false;
      if (this.hideFinished && phase === "finished") {
        hiddenFinished++;
        return false;
      }
      return true;
    });
    const byParent = jobsByParent(shown);
    const top = byParent.get(null) ?? [];
    const capped = top.slice(-MAX_ROWS);

    const serverPid = this.serverPid ?? jobs.find((j) => j.ppid != null && !j.parent)?.ppid ?? null;
    // One root per runner (host) when the jobs run on several (servers and agents sharing
    // Redis); otherwise the one server.
    const hosts = new Map();
    for (const j of capped) {
      const host = j.host ?? "";
      if (!hosts.has(host)) hosts.set(host, []);
      hosts.get(host).push(j);
    }
    if (!hosts.size) hosts.set("", []);
    const several = hosts.size > 1;
    // This server's feed says whether it is running, stopped or unreachable; the runners'
    // own state is not known apart from it (their events reach us through this feed).
    const st = this.serverState;
    const roots = [...hosts].map(([host, mine]) => {
      const key = several ? `host:${host}` : "server";
      const open = !this.collapsed.has(key);
      const pid = several ? (mine.find((j) => j.ppid != null)?.ppid ?? null) : serverPid;
      const about = several ? "runner, parent of its jobs" : "the Flask app, parent of every job";
      const count = several ? mine.length : jobs.length;
      const li = h("li", { role: "none", dataset: { host } },
        h("div", { class: "node server-node", role: "treeitem", tabindex: -1, "aria-level": 1, "aria-expanded": String(open), "aria-selected": "false", dataset: { state: st, key } },
          h("span", { class: "twisty", "aria-hidden": "true" }, open ? "▾" : "▸"),
          h("span", { class: "dot" }), h("span", { class: "name" }, several ? host || "server" : "server"), h("span", { class: "state", dataset: { state: st } }, st),
          h("span", { class: "meta" }, `${!several && host ? `${host} · ` : ""}pid ${pid ?? "?"} · ${about}`,
            h("span", { class: "kids" }, ` · ${count} job${count === 1 ? "" : "s"}`))));
      if (open) li.append(h("ul", { role: "group" }, mine.map((j) => this.item(j, byParent, 2))));
      return li;
    });

    // Keyboard users keep their place: the focused node is focused again after the redraw.
    const active = document.activeElement;
    const hadFocus = active && this.root.contains(active) ? active.dataset.key : null;
    this.root.replaceChildren(...roots);
    this.nodes = [...this.root.querySelectorAll(".node")];
    const stop = this.nodes.find((n) => n.dataset.key === this.focusKey) ?? this.nodes.find((n) => n.getAttribute("aria-selected") === "true") ?? this.nodes[0];
    stop.tabIndex = 0;
    if (hadFocus) (this.nodes.find((n) => n.dataset.key === hadFocus) ?? stop).focus({ preventScroll: true });
    const sel = this.revealSelected && this.nodes.find((n) => n.getAttribute("aria-selected") === "true");
    this.revealSelected = false;
    if (sel) this.reveal(sel);
    else if (this.stick && this.scrollEl) this.scrollEl.scrollTop = this.scrollEl.scrollHeight;

    const live = counts.running;
    if (this.countEl) this.countEl.textContent = `${jobs.length} jobs · ${live} running${shown.length < jobs.length ? ` · ${shown.length} shown` : ""}`;
    if (this.hiddenEl) {
      const parts = [];
      if (hiddenFinished) parts.push(`${hiddenFinished} finished job${hiddenFinished === 1 ? "" : "s"} folded away ("hide finished")`);
      if (top.length > capped.length) parts.push(`the oldest ${top.length - capped.length} not listed (showing the newest ${capped.length})`);
      if (!shown.length && jobs.length) parts.push("no job matches the filters");
      this.hiddenEl.textContent = parts.join(" · ");
    }
  }

  item(j, byParent, level) {
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
    const kids = byParent.get(j.id) ?? [];
    const grand = (j.grandchildren ?? []).filter((g) => !kids.some((k) => k.pid === (g.pid ?? g)));
    const n = kids.length + grand.length;
    const open = n > 0 && !this.collapsed.has(j.id);
    const node = h("div", {
      class: "node", role: "treeitem", tabindex: -1, "aria-level": level, "aria-selected": String(this.selected === j.id),
      "aria-expanded": n ? String(open) : null,
      dataset: { state: j.state, phase: jobPhase(j), job: j.id, number: j.number ?? "", key: j.id, ...(j.parent ? { parent: j.parent } : {}) },
    },
    h("span", { class: "twisty", "aria-hidden": "true" }, n ? (open ? "▾" : "▸") : ""),
    h("span", { class: "dot" }),
    h("span", { class: "name" }, jobTitle(j)),
    h("span", { class: "state", dataset: { state: j.state } }, stateText(j)),
    h("span", { class: "meta" }, meta, n ? h("span", { class: "kids" }, `${n} child${n === 1 ? "" : "ren"}`) : null));
    const li = h("li", { role: "none" }, node);
    if (open) {
      li.append(h("ul", { role: "group" },
        kids.map((k) => this.item(k, byParent, level + 1)),
        // Grandchildren are known only from what the child reported (their pids): while the
        // child runs they are assumed alive; after, a group kill or their own end took them.
        grand.map((g) => {
          const pid = g.pid ?? g;
          const st = g.state ?? (j.state === "running" ? "running" : "ended");
          return h("li", { role: "none" }, h("div", { class: "node", role: "treeitem", tabindex: -1, "aria-level": level + 1, "aria-selected": "false", dataset: { state: st, key: `${j.id}/${pid}`, parent: j.id } },
            h("span", { class: "twisty", "aria-hidden": "true" }),
            h("span", { class: "dot" }),
            h("span", { class: "name" }, `grandchild ${pid}`),
            h("span", { class: "state", dataset: { state: st } }, st),
            h("span", { class: "meta" }, `pid ${pid} · ppid ${g.ppid ?? j.pid ?? "?"}${st === "ended" ? " · ended with its parent" : ""}`)));
        })));
    }
    return li;
  }

  /** Scroll the panel (never the page) so that `node` is in view. */
  reveal(node) {
    const box = this.scrollEl;
    if (!box) return;
    const r = node.getBoundingClientRect();
    const b = box.getBoundingClientRect();
    if (r.top < b.top) box.scrollTop -= b.top - r.top + 4;
    else if (r.bottom > b.bottom) box.scrollTop += r.bottom - b.bottom + 4;
  }

  moveTabStop(node) {
    for (const n of this.nodes ?? []) if (n !== node && n.tabIndex === 0) n.tabIndex = -1;
    node.tabIndex = 0;
    this.focusKey = node.dataset.key;
  }

  focusNode(node) {
    if (!node) return;
    this.moveTabStop(node);
    node.focus({ preventScroll: true });
    this.reveal(node);
  }

  toggle(key, open) {
    if (open) this.collapsed.delete(key);
    else this.collapsed.add(key);
    this.focusKey = key;
    this.draw();
    this.focusNode(this.nodes.find((n) => n.dataset.key === key));
  }

  parentOf(node) {
    const level = Number(node.getAttribute("aria-level"));
    const i = this.nodes.indexOf(node);
    for (let k = i - 1; k >= 0; k--) if (Number(this.nodes[k].getAttribute("aria-level")) < level) return this.nodes[k];
    return null;
  }

  onClick(e) {
    const node = e.target.closest(".node");
    if (!node) return;
    if (e.target.closest(".twisty") && node.hasAttribute("aria-expanded")) {
      this.toggle(node.dataset.key, node.getAttribute("aria-expanded") !== "true");
      return;
    }
    if (node.dataset.job) this.select(node.dataset.job);
  }

  onKey(e) {
    const node = e.target.closest?.(".node");
    if (!node || e.altKey || e.ctrlKey || e.metaKey) return;
    const i = this.nodes.indexOf(node);
    const expanded = node.getAttribute("aria-expanded");
    let handled = true;
    switch (e.key) {
      case "ArrowDown":
        this.focusNode(this.nodes[i + 1]);
        break;
      case "ArrowUp":
        this.focusNode(this.nodes[i - 1]);
        break;
      case "Home":
        this.focusNode(this.nodes[0]);
        break;
      case "End":
        this.focusNode(this.nodes.at(-1));
        break;
      case "ArrowRight":
        if (expanded === "false") this.toggle(node.dataset.key, true);
        else if (expanded === "true") this.focusNode(this.nodes[i + 1]);
        break;
      case "ArrowLeft":
        if (expanded === "true") this.toggle(node.dataset.key, false);
        else this.focusNode(this.parentOf(node));
        break;
      case "Enter":
      case " ":
        if (node.dataset.job) this.select(node.dataset.job);
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
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
    this.renderedSerial = -1; // the next draw renders: the lines, or a note saying why none
    this.schedule.now();
  }

  draw() {
    const j = this.jobId ? this.store.jobs.get(this.jobId) : null;
    const serial = j?.lineSerial ?? 0;
    if (serial !== this.renderedSerial) {
      this.renderedSerial = serial;
      this.renderLines(j);
    }
    // With no line to show, a note says so: which job, and whether it is still to come.
    if (!this.linesShown) this.note(this.emptyText(j));
    if (j) this.stats(j);
    else if (this.statsEl) this.statsEl.textContent = "";
  }

  renderLines(j) {
    const atBottom = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 40;
    const showErr = this.stderrToggle ? this.stderrToggle.checked : true;
    // Consecutive lines of one stream become one element: a few nodes, not thousands.
    const frag = document.createDocumentFragment();
    let run = null;
    let runStream = null;
    this.hiddenErr = 0;
    for (const ln of j?.lines ?? []) {
      if (ln.stream === "stderr" && !showErr) {
        this.hiddenErr++;
        continue;
      }
      const text = ln.stream === "stdout" || ln.stream === "sys" ? ln.text : `${ln.stream} │ ${ln.text}`;
      if (ln.stream !== runStream) {
        if (run) frag.append(lineRun(runStream, run));
        run = [];
        runStream = ln.stream;
      }
      run.push(text);
    }
    if (run) frag.append(lineRun(runStream, run));
    this.linesShown = run !== null;
    this.noteText = null;
    this.el.replaceChildren(frag);
    if (atBottom) this.el.scrollTop = this.el.scrollHeight;
  }

  /** Why the console shows no line: nothing selected, nothing printed yet (or ever), only
   *  stderr while stderr is hidden, or bytes that do not make a whole line yet. */
  emptyText(j) {
    if (!this.jobId) return "Select a process in the tree (or a mark on the timeline) to see its output here.";
    if (!j) return "This process is not in the page's records (forgotten, or from before a reload of the server).";
    const who = jobTitle(j);
    if (this.hiddenErr) return `${who}: ${this.hiddenErr} stderr line${this.hiddenErr === 1 ? "" : "s"} hidden (tick "stderr" to show them).`;
    const running = j.state === "running" || j.state === "starting";
    if (j.outBytes) return `${who}: ${fmtBytes(j.outBytes)} received, no whole line yet.`;
    return running ? `${who} has no output yet.` : `${who} ended with no output.`;
  }

  note(text) {
    if (text === this.noteText) return;
    this.noteText = text;
    this.el.replaceChildren(h("span", { class: "console-note" }, text));
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
  // "#3" names a job (its number); the event's own number is its seq.
  const job = ev.job ? jobTitle(store?.jobs.get(ev.job) ?? { id: ev.job }) : "–";
  const rows = [h("strong", {}, `${ev.type} · seq ${ev.seq ?? "–"}`), ` · ${job} · pid ${ev.pid ?? "–"} · ${fmtClock(ev.t)}`];
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
