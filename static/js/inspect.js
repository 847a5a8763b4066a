// The explorer's Inspect panel (templates/_inspectors.html): for the process selected in the
// tree, its file descriptors drawn as a two-column diagram (server ↔ child, one row per fd,
// read from /proc by GET /api/jobs/<id>/fds), the bytes that crossed its channel (frames.js),
// and the trace export links. It follows the selection through the "explorer:select" event
// that explorer.js dispatches, with the page's store: a job the store says has ended has no
// fds left to read, and the panel says so instead of asking the server (a 409 each time).

import { api } from "./api.js";
import { $, h } from "./ui.js";
import { jobName, jobTitle, nameJobs } from "./store.js";
import { FrameView } from "./frames.js";

const LIVE_MS = 2000;

let selected = null; // job id
let selectedJob = null; // its record from the API
let store = null; // the page's store (explorer.js): the job's state as the feed tells it
let unsubscribe = null;
let liveTimer = null;
let reading = false;

const frames = new FrameView($("#frames-view"));

document.addEventListener("explorer:select", (e) => {
  if (e.detail?.store && e.detail.store !== store) {
    unsubscribe?.();
    store = e.detail.store;
    unsubscribe = store.subscribe(onStoreChange);
  }
  select(e.detail?.job ?? null);
});

/** The selected job as the page knows it (its state from the feed), else as the API said. */
function current() {
  return (selected && store?.jobs.get(selected)) || selectedJob;
}

function hasEnded(job) {
  return !!job && ["exited", "signaled", "failed"].includes(job.state);
}

// The moment the feed says the selected job ended: stop re-reading and say why.
let endedShown = null;
function onStoreChange() {
  if (!selected || endedShown === selected || !hasEnded(store.jobs.get(selected))) return;
  if (selectedJob) showEnded();
}

/** A neutral note, not an error: an ended job's fds are gone, by design. The last diagram
 *  read stays, dimmed. */
function showEnded() {
  clearTimeout(liveTimer);
  endedShown = selected;
  const msg = $("#fds-msg");
  msg.textContent = `${jobName(current())} has ended: its fds are closed, so there is nothing to read (the fds of a process exist only while it runs).`;
  msg.className = "form-msg";
  msg.dataset.state = "ended";
  $("#fds-read").disabled = true;
  if ($("#fds-diagram").childElementCount) $("#fds-diagram").dataset.state = "gone";
  frames.ended();
}

async function select(id) {
  if (id === selected) return;
  selected = id;
  selectedJob = null;
  endedShown = null;
  clearTimeout(liveTimer);
  $("#fds-diagram").replaceChildren();
  delete $("#fds-diagram").dataset.state;
  const msg = $("#fds-msg");
  msg.textContent = "";
  msg.className = "form-msg";
  delete msg.dataset.state;
  const traceJob = $("#trace-job");
  if (!id) {
    $("#inspect-title").textContent = "select a process";
    traceJob.setAttribute("aria-disabled", "true");
    traceJob.href = "#";
    frames.show(null);
    return;
  }
  traceJob.removeAttribute("aria-disabled");
  traceJob.href = `/api/trace?job=${encodeURIComponent(id)}`;
  traceJob.download = `ipc-explorer-${id}-trace.json`;
  const known = store?.jobs.get(id);
  $("#inspect-title").textContent = known ? jobTitle(known) : "…"; // its full title once its record is read
  try {
    const data = await api.getJob(id);
    if (selected !== id) return;
    selectedJob = data?.job ?? data;
    $("#inspect-title").textContent = `${jobName(selectedJob)} · ${selectedJob.kind} ${selectedJob.program ?? selectedJob.command ?? ""} · pid ${selectedJob.pid ?? "?"}`;
  } catch (err) {
    if (selected === id) {
      $("#fds-msg").textContent = nameJobs(err.message, known);
      $("#fds-msg").className = "form-msg error";
    }
    return;
  }
  frames.show(selectedJob, hasEnded(current()));
  readFds();
}

$("#trace-job").addEventListener("click", (e) => {
  if (!selected) e.preventDefault();
});

// ---------------------------------------------------------------- tabs
const tabs = [
  [$("#tab-fds"), $("#fds-view")],
  [$("#tab-frames"), $("#frames-view")],
];
function showTab(which) {
  for (const [tab, panel] of tabs) {
    const on = tab === which;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    panel.hidden = !on;
  }
  if (which === tabs[0][0]) readFds();
}
for (const [tab] of tabs) {
  tab.addEventListener("click", () => showTab(tab));
  tab.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const i = tabs.findIndex(([t]) => t === tab);
    const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length][0];
    next.focus();
    showTab(next);
  });
}

// ---------------------------------------------------------------- fd inspector
$("#fds-read").addEventListener("click", () => readFds());
$("#fds-live").addEventListener("change", () => readFds());

async function readFds() {
  clearTimeout(liveTimer);
  const id = selected;
  if (!id || reading || $("#fds-view").hidden || !selectedJob) return;
  // Known to have ended: its fds are gone, and asking would only get the server's 409.
  if (hasEnded(current())) {
    showEnded();
    return;
  }
  if (current()?.state === "starting") {
    // Not started yet: no process, no fds. Look again in a moment.
    $("#fds-msg").textContent = `${jobName(current())} is starting: its fds can be read once it runs.`;
    liveTimer = setTimeout(readFds, 250);
    return;
  }
  reading = true;
  $("#fds-read").disabled = true;
  const msg = $("#fds-msg");
  let again = false;
  try {
    const body = await api.fds(id);
    if (selected !== id || endedShown === id) return; // another job, or it ended meanwhile
    msg.textContent = `Read at ${new Date().toLocaleTimeString([], { hour12: false })} from /proc/${body.pid}/fd: ${body.fds.length} open fds.`;
    msg.className = "form-msg";
    drawFds(body);
    again = $("#fds-live").checked;
  } catch (err) {
    if (selected !== id || endedShown === id) return;
    if (err.status === 409) {
      // It ended while this read was on its way (before the feed said so): the same note.
      showEnded();
      return;
    }
    msg.textContent = nameJobs(err.message, current());
    msg.className = "form-msg error";
    if (err.status) $("#fds-diagram").dataset.state = "gone"; // 404: the server forgot the job
  } finally {
    reading = false;
    if (selected === id && endedShown !== id) {
      $("#fds-read").disabled = false;
      if (again) liveTimer = setTimeout(readFds, LIVE_MS);
    }
  }
}

const ARROW = { read: "→", write: "←", "read/write": "⇄" }; // data flow, parent on the left

function linkLabel(row, snapshot) {
  if (row.role === "ipc channel") {
    const ch = snapshot.channel;
    const how = ch.variable ? `${ch.variable}=${ch.value}` : "";
    return [`ipc channel · ${snapshot.transport ?? row.transport}`, how];
  }
  return [`${row.role} · ${row.transport}`, ""];
}

function fdBox(side, fd, target, access, flags) {
  return h("div", { class: `fd-box ${side}` },
    h("span", { class: "fd-num" }, `fd ${fd}`),
    h("span", { class: "fd-target" }, target),
    h("span", { class: "fd-flags small muted" }, [access, ...(flags ?? []).filter((f) => f !== "O_RDONLY" && f !== "O_WRONLY" && f !== "O_RDWR")].filter(Boolean).join(" · ")));
}

function drawFds(snap) {
  const job = selectedJob ?? {};
  const linked = snap.fds.filter((r) => r.peer?.where === "parent");
  const rest = snap.fds.filter((r) => r.peer?.where !== "parent");
  const head = h("div", { class: "fd-row fd-head" },
    h("div", { class: "fd-col-title" }, `server (parent) · pid ${snap.parent_pid}`),
    h("div", {}),
    h("div", { class: "fd-col-title" }, `child ${job.id ? jobName(job) : ""} · pid ${snap.pid}`));
  const rows = linked.map((row) => {
    const [label, how] = linkLabel(row, snap);
    const parents = row.peer.fds;
    return h("div", { class: "fd-row", dataset: { fd: String(row.fd), role: row.role, kind: row.kind }, title: row.peer.how },
      h("div", { class: "fd-stack" }, parents.map((p) => fdBox("parent", p.fd, p.target, p.access, p.flags))),
      h("div", { class: "fd-link" },
        h("span", { class: "fd-arrow", "aria-hidden": "true" }, ARROW[row.access] ?? "—"),
        h("span", { class: "fd-role" }, label),
        how ? h("code", { class: "fd-how" }, how) : null,
        row.detail ? h("span", { class: "small muted" }, row.detail) : null),
      fdBox("child", row.fd, row.target, row.access, row.flags));
  });
  const others = rest.map((row) => h("li", { dataset: { fd: String(row.fd), role: row.role } },
    h("code", {}, `fd ${row.fd}`), ` ${row.role} · ${row.target}`,
    h("span", { class: "muted" }, row.peer?.where === "child" ? ` · other end: fd ${row.peer.fds.map((f) => f.fd).join(", ")} of the child itself` : row.peer ? " · other end: not in the parent" : "")));
  $("#fds-diagram").dataset.state = "live";
  const parts = [head, ...rows];
  const open = $("#fds-diagram .fd-others")?.open; // a re-read keeps the list as the user left it
  if (others.length) parts.push(h("details", { class: "fd-others", open }, h("summary", {}, `${others.length} more fd${others.length === 1 ? "" : "s"} with no end in the parent`), h("ul", {}, others)));
  if (!snap.sock_diag) parts.push(h("p", { class: "small muted" }, "sock_diag is not available here: sockets cannot be matched to their peers."));
  $("#fds-diagram").replaceChildren(...parts);
}
