// The explorer page: launch panel, process tree, timeline, console + talk, event log.
// Everything on screen comes from the store, which only the WebSocket feed (or a loaded file,
// in replay) writes to. REST is used for actions (launch, send, kill) and one-off lookups.

import { Store, jobName, jobTitle, nameJobs, parseNDJSON } from "./store.js";
import { Feed } from "./feed.js";
import { api } from "./api.js";
import { $, h, initTheme, showStatus } from "./ui.js";
import { Timeline } from "./timeline.js";
import { TreeView, ConsoleView, showDetails } from "./views.js";
import { EventLog } from "./log.js";
import { lookUpJobs } from "./jobinfo.js";

initTheme();

const live = new Store();
let view = live; // the store on screen: `live`, or a replay store loaded from a file
let selectedJob = null;

const timeline = new Timeline($("#timeline"), live, {
  onSelect: (ev) => {
    showDetails($("#details"), ev, view);
    if (ev.job && view.jobs.has(ev.job)) tree.select(ev.job);
  },
  // A lane's name selects its job everywhere (the tree, the console, the timeline).
  onSelectJob: (id) => tree.select(id),
});

const consoleView = new ConsoleView({
  el: $("#console"),
  statsEl: $("#console-stats"),
  stderrToggle: $("#console-stderr"),
  copyBtn: $("#console-copy"),
  downloadBtn: $("#console-download"),
  store: live,
  onNotice: (text, ok) => notice($("#talk-msg"), text, ok),
});

const tree = new TreeView($("#tree"), live, {
  countEl: $("#tree-count"),
  scrollEl: $("#tree-scroll"),
  filters: $("#tree-filters"),
  search: $("#tree-search"),
  hideFinished: $("#tree-hide-finished"),
  hiddenEl: $("#tree-hidden"),
  onSelect: (id) => {
    selectedJob = id;
    timeline.selectJob(id);
    drawTitle();
    consoleView.show(id);
    // The Inspect panel (inspect.js) follows the selection, and the job's state in the store.
    document.dispatchEvent(new CustomEvent("explorer:select", { detail: { job: id, store: view } }));
  },
});

/** The console's title: the selected job by name ("#3 · echo.py · pid 5420"), kept up to date
 *  (its number and pid may come after it is selected). */
function drawTitle() {
  const j = selectedJob ? view.jobs.get(selectedJob) : null;
  const text = j ? `${jobTitle(j)} · pid ${j.pid ?? "?"}` : "select a process";
  const el = $("#job-title");
  if (el.textContent !== text) el.textContent = text;
}
live.subscribe(drawTitle);

/** The selected job's name for the messages of the talk panel. */
function nameOf(id) {
  return jobName(view.jobs.get(id) ?? { id });
}

const log = new EventLog({
  table: $("#log-table"),
  jobSelect: $("#log-job"),
  typeSelect: $("#log-type"),
  textInput: $("#log-text"),
  countEl: $("#log-count"),
  store: live,
});

// Every job the server knows, then each job the feed brings later (started by another tab):
// their numbers, labels and start times (jobinfo.js).
lookUpJobs(live, { listFirst: true });

// The pill and banner say how the feed is; the tree's server node says it too.
const feed = new Feed({
  store: live, after: 0,
  onStatus: (status, info) => {
    showStatus(status, info);
    tree.setServerStatus(status);
  },
}).start();

// Exposed for the end-to-end tests (they drop the socket the way a network failure would).
window.ipcExplorer = { store: live, feed, timeline, tree, log };

function notice(el, text, ok = true) {
  el.textContent = text;
  el.className = `form-msg ${ok ? "ok" : "error"}`;
}

// ---------------------------------------------------------------- launch panel
const form = $("#launch-form");
const kindSel = $("#l-kind");

function syncKind() {
  const fork = kindSel.value === "fork";
  // The options are short (they must fit the field); what each kind does is said below it.
  $("#l-kind-desc").textContent = kindSel.selectedOptions[0]?.dataset.desc ?? "";
  $("#l-fork").hidden = !fork;
  $("#l-command").hidden = fork;
  // spawn streams and runs until it ends: timeout, max_buffer and kill_signal are exec's.
  $("#l-exec-opts").hidden = kindSel.value === "spawn";
}
kindSel.addEventListener("change", syncKind);
syncKind();

async function loadPrograms() {
  try {
    const data = await api.programs();
    const programs = Array.isArray(data) ? data : (data.programs ?? []);
    const sel = $("#l-program");
    catalog = new Map(programs.map((p) => [typeof p === "string" ? p : p.name, p]));
    // The option is the program's name (its extension tells its runtime), short enough for
    // the field; its runtime and what it shows are said below the field (fillDefaults).
    sel.replaceChildren(...programs.map((p) => {
      const name = typeof p === "string" ? p : p.name;
      const desc = typeof p === "string" ? "" : (p.description ?? p.summary ?? "");
      return h("option", { value: name, title: desc, disabled: p.available === false }, name);
    }));
    fillDefaults();
    const commands = data.commands ?? data.allowed_commands ?? [];
    $("#l-commands").replaceChildren(...commands.map((c) => h("option", { value: typeof c === "string" ? c : c.name })));
  } catch (e) {
    notice($("#launch-msg"), `Could not list programs: ${e.message}`, false);
  }
}
loadPrograms();

// Choosing a program fills in its default arguments and first message from the catalogue,
// and shows what it demonstrates.
let catalog = new Map();
function fillDefaults() {
  const p = catalog.get($("#l-program").value);
  if (!p || typeof p === "string") return;
  $("#l-args").value = (p.default_args ?? []).join(" ");
  $("#l-message").value = p.default_message == null ? "" : JSON.stringify(p.default_message);
  const runtime = p.runtime === "node" ? "Node.js" : p.runtime === "python" ? "Python" : p.runtime;
  const how = p.kind === "spawn" ? " (no channel: spawn it with node)" : "";
  $("#l-program-desc").textContent = `${runtime ? `${runtime}${how}. ` : ""}${p.description ?? ""}`;
}
$("#l-program").addEventListener("change", fillDefaults);

export function parseArgs(text) {
  const t = text.trim();
  if (!t) return [];
  if (t.startsWith("[")) {
    const v = JSON.parse(t);
    if (!Array.isArray(v)) throw new Error("arguments: a JSON array of strings");
    return v.map(String);
  }
  return t.split(/\s+/);
}

function shellQuote(arg) {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

function parseMessage(text) {
  const t = text.trim();
  if (!t) return undefined;
  try {
    return JSON.parse(t);
  } catch {
    return t; // plain text goes as a string, as `child.send('开始计算')` does
  }
}

function parseEnv(text) {
  const t = text.trim();
  if (!t) return undefined;
  const env = {};
  for (const line of t.split(/\n/)) {
    const i = line.indexOf("=");
    if (i > 0) env[line.slice(0, i).trim()] = line.slice(i + 1);
  }
  return env;
}

function buildSpec() {
  const kind = kindSel.value;
  const args = parseArgs($("#l-args").value);
  if (kind === "fork") {
    const spec = { kind, program: $("#l-program").value, args, transport: $("#l-transport").value };
    const message = parseMessage($("#l-message").value);
    if (message !== undefined) spec.message = message;
    return spec;
  }
  const command = $("#l-cmd").value.trim();
  // exec takes one command line (as Node's exec), spawn / exec_file a command and its args.
  const spec = kind === "exec" ? { kind, command: [command, ...args.map(shellQuote)].join(" ") } : { kind, command, args };
  if (kind !== "spawn") {
    const timeout = Number($("#l-timeout").value);
    if (timeout > 0) spec.timeout = timeout;
    const maxBuf = Number($("#l-maxbuf").value);
    if (maxBuf > 0) spec.max_buffer = maxBuf;
    spec.kill_signal = $("#l-killsig").value;
  }
  const cwd = $("#l-cwd").value.trim();
  if (cwd) spec.cwd = cwd;
  const env = parseEnv($("#l-env").value);
  if (env) spec.env = env;
  return spec;
}

// With --redis, other runners (server workers, agents) can start the child: offer them.
async function loadHosts() {
  try {
    const { hosts = [] } = await api.hosts();
    const sel = $("#l-host");
    const chosen = sel.value;
    sel.replaceChildren(h("option", { value: "" }, "this server"),
      ...hosts.slice(1).map((r) => h("option", { value: r.name }, `${r.name} (${r.kind}, ${r.live_children}/${r.capacity})`)));
    sel.value = [...sel.options].some((o) => o.value === chosen) ? chosen : "";
    $("#l-host-field").hidden = hosts.length < 2;
  } catch {
    $("#l-host-field").hidden = true; // no runners to offer: launch here
  }
}
loadHosts();
$("#l-host").addEventListener("focus", loadHosts);

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const msg = $("#launch-msg");
  let spec;
  try {
    spec = buildSpec();
    const host = $("#l-host").value;
    if (host && !$("#l-host-field").hidden) spec.host = host;
  } catch (err) {
    notice(msg, err.message, false);
    return;
  }
  if (spec.kind !== "fork" && !spec.command) {
    notice(msg, "Give a command to run (e.g. ls).", false);
    return;
  }
  const n = Math.max(1, Math.min(32, Number($("#l-count").value) || 1));
  $("#l-submit").disabled = true;
  notice(msg, `Launching ${n}…`, true);
  const results = await Promise.allSettled(Array.from({ length: n }, () => api.createJob(spec)));
  $("#l-submit").disabled = false;
  const ok = results.filter((r) => r.status === "fulfilled").map((r) => r.value?.job ?? r.value);
  const bad = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  for (const job of ok) live.upsertJob(job);
  if (ok.length) tree.select(ok[0].id);
  const text = [
    ok.length ? `Launched ${ok.map((j) => `${jobName(j)} (pid ${j.pid ?? "?"})`).join(", ")}.` : "",
    bad.length ? `Refused: ${[...new Set(bad)].join("; ")}` : "",
  ].filter(Boolean).join(" ");
  notice(msg, text, bad.length === 0);
});

// ---------------------------------------------------------------- talk to a child
function needJob() {
  if (!selectedJob) {
    notice($("#talk-msg"), "Select a process in the tree first.", false);
    return null;
  }
  if (view !== live) {
    notice($("#talk-msg"), "This is a replay; go back to live to talk to processes.", false);
    return null;
  }
  return selectedJob;
}

async function act(id, fn, okText) {
  try {
    await fn();
    notice($("#talk-msg"), okText, true);
  } catch (err) {
    notice($("#talk-msg"), nameJobs(err.message, view.jobs.get(id)), false);
  }
}

$("#send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = needJob();
  if (!id) return;
  const text = $("#send-input").value;
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    notice($("#talk-msg"), 'The message must be JSON (a string needs quotes: "hello").', false);
    return;
  }
  act(id, () => api.send(id, message), `Sent to ${nameOf(id)}.`);
});

$("#stdin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = needJob();
  if (!id) return;
  const data = $("#stdin-input").value;
  const end = $("#stdin-end").checked;
  act(id, () => api.stdin(id, data + (data && !data.endsWith("\n") ? "\n" : ""), end), `Wrote ${data.length} chars to ${nameOf(id)}'s stdin${end ? " and closed it" : ""}.`);
});

$("#kill-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = needJob();
  if (!id) return;
  const sig = $("#kill-signal").value;
  act(id, () => api.kill(id, sig), `${sig} sent to ${nameOf(id)}.`);
});

$("#forget-btn").addEventListener("click", () => {
  const id = needJob();
  if (!id) return;
  const name = nameOf(id);
  act(id, async () => {
    await api.forget(id);
    live.jobs.delete(id);
    live.changed("jobs");
  }, `${name} forgotten.`);
});

// ---------------------------------------------------------------- event log, export, replay
$("#log-export").addEventListener("click", () => {
  const n = log.exportNDJSON();
  $("#log-count").textContent = `Exported ${n} events as NDJSON.`;
});

function setView(store, label) {
  view = store;
  timeline.setStore(store);
  // A replay is seen whole; live, the last half minute follows the newest events.
  if (store === live) timeline.followRecent();
  else timeline.fitAll();
  tree.setStore(store);
  consoleView.setStore(store);
  drawTitle();
  log.setStore(store);
  $("#replay-bar").hidden = store === live;
  $("#replay-banner").textContent = label ?? "";
  $("#log-live").hidden = store === live;
}

$("#log-load").addEventListener("change", async (e) => {
  const file = e.target.files?.[0];
  if (!file) return;
  const { events, bad } = parseNDJSON(await file.text());
  loaded = events;
  // Jobs the live page knows keep their numbers in the replay.
  const replay = new Store({ maxEvents: Math.max(100000, events.length), namesFrom: live });
  replay.applyAll(events);
  setView(replay, `Replaying ${file.name}: ${events.length} events${bad ? `, ${bad} unreadable lines skipped` : ""}. Live events keep arriving in the background.`);
  e.target.value = "";
});

$("#log-live").addEventListener("click", () => {
  clearInterval(playTimer);
  setView(live);
});

// Play a loaded file again in its own time (sped up): events are applied as their moment
// comes, so the timeline grows as it did live.
let loaded = [];
let playTimer = null;
$("#replay-play").addEventListener("click", () => {
  if (!loaded.length || view === live) return;
  clearInterval(playTimer);
  const speed = Number($("#replay-speed").value) || 1;
  const store = view;
  store.reset();
  store.changed("reset");
  const t0 = loaded[0].t ?? 0;
  const started = performance.now();
  let i = 0;
  const progress = $("#replay-progress");
  playTimer = setInterval(() => {
    const now = t0 + ((performance.now() - started) / 1000) * speed;
    const batch = [];
    while (i < loaded.length && (loaded[i].t ?? t0) <= now) batch.push(loaded[i++]);
    if (batch.length) store.applyAll(batch);
    progress.textContent = `${i} / ${loaded.length} events`;
    if (i >= loaded.length) clearInterval(playTimer);
  }, 50);
});
