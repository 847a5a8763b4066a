// The frame inspector (the Inspect panel's "Channel bytes" tab): the raw bytes that crossed a
// fork job's channel, one box per read() or write() the server made (webapp/frames.py through
// the ipc tap), in hex and ASCII, with each frame (message) shaded and decoded beside it. A
// frame that spans two boxes was split across two reads; a box with three frames got three
// messages in one read. Recording is opt-in and bounded (the size limit chosen here).

import { $, h } from "./ui.js";
import { jobName, nameJobs, preview } from "./store.js";
import { api } from "./api.js";

const POLL_MS = 1000;
const DRAW_BYTES_PER_CHUNK = 2048; // bytes drawn in hex per box (the rest is counted)
const DRAW_BYTES_TOTAL = 32 * 1024;
const ARROW = { write: "→", read: "←", eof: "←" };
const WHO = { write: "write() server → child", read: "read() child → server", eof: "read() end of stream" };

function bytesOf(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const hex2 = (b) => b.toString(16).padStart(2, "0");
const ascii = (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "·");

export class FrameView {
  constructor(root) {
    this.root = root;
    this.job = null;
    this.timer = null;
    this.drawnKey = null;
    this.msg = $("#frames-msg", root);
    this.limit = h("select", { id: "frames-limit", "aria-label": "Bytes to keep" },
      h("option", { value: "16384" }, "keep 16 KiB"), h("option", { value: "65536" }, "keep 64 KiB"), h("option", { value: "1048576" }, "keep 1 MiB"));
    this.recordBtn = h("button", { type: "button", id: "frames-record", class: "primary", onclick: () => this.record() }, "Record channel bytes");
    this.stopBtn = h("button", { type: "button", id: "frames-stop", disabled: true, onclick: () => this.stop() }, "Stop");
    // An ended job's channel is closed: what was recorded while it ran is fetched on request
    // only (most jobs have none, and asking for none is a 404).
    this.earlierBtn = h("button", { type: "button", id: "frames-earlier", hidden: true, onclick: () => this.refresh(true) }, "Show a recording made while it ran");
    this.recordedHere = new Set(); // ids of the jobs recorded from this page
    this.summary = h("div", { id: "frames-summary", class: "small muted" });
    this.list = h("div", { id: "frames-list", class: "frame-chunks" });
    root.prepend(
      h("div", { class: "inspect-tools" }, this.recordBtn, this.limit, this.stopBtn, this.earlierBtn),
      h("p", { class: "small muted frames-legend" },
        "Each box is one read() or write() the server made on the channel. → server to child, ← child to server. ",
        "Shaded runs are frames (one message each, ending at its newline ⏎): a frame across two boxes crossed in two reads."),
    );
    root.append(this.summary, this.list);
  }

  /** Show `job`'s channel; `ended`: the page knows it has ended (its channel is closed). */
  show(job, ended = false) {
    clearTimeout(this.timer);
    this.job = job;
    this.drawnKey = null;
    this.list.replaceChildren();
    this.summary.textContent = "";
    this.stopBtn.disabled = true;
    this.earlierBtn.hidden = true;
    if (!job) {
      this.recordBtn.disabled = true;
      this.note("Select a fork job to see the bytes on its channel.");
      return;
    }
    const fork = job.kind === "fork";
    this.recordBtn.disabled = !fork;
    if (!fork) {
      this.note(`${jobName(job)} is a ${job.kind} job: only a fork job has a message channel.`);
      return;
    }
    if (ended) {
      this.ended();
      if (this.recordedHere.has(job.id)) this.refresh();
      return;
    }
    this.note("Not recording. Record, then talk to the child (Send message); bytes already sent are not shown.");
    this.refresh(); // a capture made earlier (another tab, or before a reload) shows at once
  }

  /** The job ended: nothing more can be recorded; a recording made while it ran stays. */
  ended() {
    const job = this.job;
    if (!job || job.kind !== "fork") return;
    this.recordBtn.disabled = true;
    if (this.drawnKey) return; // a recording is on screen: it stays, with its own summary
    this.note(`${jobName(job)} has ended: its channel is closed, so there is nothing more to record.`);
    this.earlierBtn.hidden = this.recordedHere.has(job.id);
  }

  note(text, error = false) {
    this.msg.textContent = text;
    this.msg.className = `form-msg${error ? " error" : ""}`;
  }

  async record() {
    const job = this.job;
    if (!job) return;
    try {
      const data = await api.framesStart(job.id, Number(this.limit.value));
      this.recordedHere.add(job.id);
      if (this.job !== job) return;
      this.drawnKey = null;
      this.draw(data);
    } catch (err) {
      if (this.job === job) this.note(nameJobs(err.message, job), true);
    }
  }

  async stop() {
    const job = this.job;
    if (!job) return;
    try {
      const data = await api.framesStop(job.id);
      if (this.job === job) this.draw(data);
    } catch (err) {
      if (this.job === job) this.note(nameJobs(err.message, job), true);
    }
  }

  /** The capture on the server, if any; `asked`: the user asked for it (say if there is none). */
  async refresh(asked = false) {
    clearTimeout(this.timer);
    const job = this.job;
    if (!job) return;
    try {
      const data = await api.frames(job.id);
      if (this.job === job) this.draw(data);
    } catch (err) {
      if (this.job !== job) return;
      if (err.status !== 404) this.note(nameJobs(err.message, job), true);
      else if (asked) {
        this.earlierBtn.hidden = true;
        this.note(`No recording was made while ${jobName(job)} ran.`);
      } // 404 unasked: none yet
    }
  }

  draw(cap) {
    const live = cap.capturing;
    this.stopBtn.disabled = !live;
    this.earlierBtn.hidden = true;
    if (live) this.timer = setTimeout(() => this.refresh(), POLL_MS);
    const reads = cap.chunks.filter((c) => c.direction === "read").length;
    const writes = cap.chunks.filter((c) => c.direction === "write").length;
    const state = live ? "Recording" : cap.full ? `Full, stopped keeping (${cap.full_reason ?? "its limit"})` : "Stopped";
    this.note(`${state}: ${cap.kept_bytes.toLocaleString("en-US")} of ${cap.limit.toLocaleString("en-US")} bytes kept · ${reads} reads, ${writes} writes.`);
    this.msg.dataset.state = live ? "recording" : "stopped";
    const key = `${cap.started_at}|${cap.chunks.length}|${cap.kept_bytes}|${cap.frames.length}`;
    if (key === this.drawnKey) return;
    this.drawnKey = key;
    this.render(cap);
  }

  render(cap) {
    const byDir = { read: [], write: [] };
    for (const f of cap.frames) byDir[f.direction]?.push(f);
    const ordinal = new Map(); // chunk n -> "read #k" / "write #k"
    const counts = { read: 0, write: 0, eof: 0 };
    for (const c of cap.chunks) ordinal.set(c.n, `${c.direction === "eof" ? "read" : c.direction} #${++counts[c.direction]}`);
    let budget = DRAW_BYTES_TOTAL;
    const boxes = cap.chunks.map((c) => {
      const frames = (byDir[c.direction] ?? []).filter((f) => f.start < c.start + c.size && f.end > c.start);
      const drawn = Math.max(0, Math.min(c.size, DRAW_BYTES_PER_CHUNK, budget));
      budget -= drawn;
      return this.box(cap, c, frames, ordinal, drawn);
    });
    this.list.replaceChildren(...boxes);
    const first = cap.chunks[0];
    this.summary.textContent = first ? `Times are from the first box (${new Date(first.t * 1000).toLocaleTimeString([], { hour12: false })}).` : "Nothing has crossed since recording started.";
  }

  box(cap, c, frames, ordinal, drawn) {
    const t0 = cap.chunks[0].t;
    const data = bytesOf(c.data);
    const whole = frames.filter((f) => f.start >= c.start && f.end <= c.start + c.size && f.complete);
    const notes = [];
    const startsBefore = frames.find((f) => f.start < c.start);
    if (startsBefore) notes.push(`ends a frame begun in ${ordinal.get(startsBefore.chunks[0])}`);
    const runsOn = frames.find((f) => f.end > c.start + c.size || !f.complete);
    if (runsOn && runsOn !== startsBefore) notes.push(runsOn.complete ? `a frame continues in ${ordinal.get(runsOn.chunks.at(-1))}` : "a frame's rest has not crossed yet");
    else if (runsOn && !runsOn.complete) notes.push("its rest has not crossed yet");
    const head = h("header", { class: "chunk-head" },
      h("span", { class: "chunk-arrow", "aria-hidden": "true" }, ARROW[c.direction]),
      h("strong", {}, `${WHO[c.direction]} · ${ordinal.get(c.n)}`),
      ` · ${c.size} byte${c.size === 1 ? "" : "s"} · +${((c.t - t0) * 1000).toFixed(1)} ms · `,
      h("span", { class: "chunk-count" }, `${whole.length} whole frame${whole.length === 1 ? "" : "s"}`),
      notes.length ? h("span", { class: "chunk-notes" }, ` · ${notes.join(" · ")}`) : null,
      c.cut ? h("span", { class: "chunk-notes" }, " · cut: the capture was full") : null);
    return h("article", { class: "chunk", dataset: { direction: c.direction, n: String(c.n), frames: String(whole.length), ordinal: ordinal.get(c.n) } },
      head,
      h("div", { class: "chunk-body" },
        this.hexdump(data, c, frames, drawn),
        h("ol", { class: "chunk-frames" }, frames.map((f) => this.frameItem(f, c, ordinal)))));
  }

  hexdump(data, c, frames, drawn) {
    const frameAt = (offset) => frames.find((f) => f.start <= offset && offset < f.end);
    const rows = [];
    for (let row = 0; row < drawn; row += 16) {
      const hexCells = [];
      const asciiCells = [];
      for (let i = row; i < Math.min(row + 16, drawn); i++) {
        const f = frameAt(c.start + i);
        const cls = `b${f ? ` f${f.index % 2}` : ""}${data[i] === 0x0a ? " nl" : ""}`;
        const title = f ? `${f.direction} frame ${f.index}` : "";
        hexCells.push(h("span", { class: cls, title }, hex2(data[i])));
        asciiCells.push(h("span", { class: cls }, data[i] === 0x0a ? "⏎" : ascii(data[i])));
      }
      rows.push(h("div", { class: "hex-row" },
        h("span", { class: "hex-off" }, (c.start + row).toString(16).padStart(6, "0")),
        h("span", { class: "hex-bytes" }, hexCells),
        h("span", { class: "hex-ascii" }, asciiCells)));
    }
    if (drawn < c.size) rows.push(h("div", { class: "small muted" }, `… ${(c.size - drawn).toLocaleString("en-US")} more bytes not drawn`));
    return h("div", { class: "hexdump", role: "group", "aria-label": "bytes in hex and ASCII" }, rows);
  }

  frameItem(f, c, ordinal) {
    const across = f.chunks.length > 1;
    const where = across
      ? `split across ${f.chunks.map((n) => ordinal.get(n)).join(" and ")}`
      : `bytes ${f.start - c.start}–${f.end - c.start - 1} of this ${c.direction === "write" ? "write" : "read"}`;
    const text = f.message_text != null ? preview(f.message_text, 160) : (f.note ?? "");
    return h("li", { class: `frame-item f${f.index % 2}${across ? " split" : ""}${f.complete ? "" : " partial"}`, dataset: { frame: String(f.index), chunks: f.chunks.join(",") } },
      h("span", { class: "frame-where small" }, `${ARROW[f.direction]} frame ${f.index} · ${f.size} B · ${where}${f.complete ? "" : " · incomplete"}`),
      h("code", { class: "frame-msg" }, text),
      f.message != null && f.note ? h("span", { class: "small muted" }, ` (${f.note})`) : null);
  }
}
