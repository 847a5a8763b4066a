// The event store: every page's single source of truth, fed by the WebSocket feed (or by a
// loaded NDJSON file for replay). Pure logic, no DOM, so it can be tested on its own.
//
// Events keep the one shape of DESIGN.md: {seq, job, pid, type, t, data, host} (host: the
// runner whose child it is, when servers and agents share Redis). The store keeps them
// all (up to `maxEvents`, oldest dropped and counted) and derives per-job state from them:
// views ask the store, they never keep their own copies.

const TEXT_TYPES = new Set(["stdout", "stderr"]);
const ENC = new TextEncoder();

// ---- JSON that keeps big integers exact --------------------------------------------------
// Python children send exact integers past 2^53 (the seed's 0..4e9 sum is 7999999998000000000);
// JSON.parse would round them to a double. Parsing keeps such an integer as a BigInt (the
// reviver sees the source text), and `stringify` writes it back as a bare number.

function bigReviver(key, value, context) {
  if (typeof value === "number" && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

export function parseJSON(text) {
  return JSON.parse(text, bigReviver);
}

const BIG = "\u0000big:";
export function stringify(value, space) {
  const out = JSON.stringify(value, (k, v) => (typeof v === "bigint" ? `${BIG}${v}` : v), space);
  return out === undefined ? out : out.replace(/"\\u0000big:(-?\d+)"/g, "$1");
}

/** The text carried by an output event, whatever the server called the field. */
export function outputText(ev) {
  const d = ev.data ?? {};
  if (typeof d === "string") return d;
  if (typeof d.text === "string") return d.text;
  if (typeof d.data === "string" && !d.encoding) return d.data;
  const b64 = d.base64 ?? d.b64 ?? (d.encoding === "base64" ? d.data : undefined);
  if (typeof b64 === "string") {
    // Bytes that are not valid UTF-8 become U+FFFD replacement marks, as the issue asks.
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  }
  if (typeof d.chunk === "string") return d.chunk;
  return "";
}

/** The payload of a message event. */
export function messagePayload(ev) {
  const d = ev.data ?? {};
  if ("message" in d) return d.message;
  if ("msg" in d) return d.msg;
  if ("payload" in d) return d.payload;
  return d;
}

export function messageDirection(ev) {
  const d = ev.data ?? {};
  return d.direction === "to_child" ? "to_child" : "to_parent";
}

/** A short one-line preview of any value (for timeline labels and table cells). */
export function preview(value, max = 60) {
  let s;
  // Cut long strings before any regex: a flood chunk may be 64 KiB.
  if (typeof value === "string") s = value.length > max * 2 ? value.slice(0, max * 2) : value;
  else {
    try {
      s = stringify(value);
    } catch {
      s = String(value);
    }
  }
  if (s === undefined) s = String(value);
  s = s.replace(/\s+/g, " ");
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** UTF-8 length of a string; ASCII (most output) without encoding it. */
export function utf8Length(s) {
  return /^[\x00-\x7f]*$/.test(s) ? s.length : ENC.encode(s).length;
}

export function byteLength(value) {
  const s = typeof value === "string" ? value : stringify(value) ?? "";
  return ENC.encode(s).length;
}

/** A job's name for people: its short per-run number (the id is a long random key, kept for
 *  URLs and data attributes). A job whose number is not known (yet: it is looked up; or in a
 *  file replayed from another server) is named by the start of its id, so two stay apart. */
export function jobName(job) {
  if (job?.number != null) return `#${job.number}`;
  return job?.id ? `job ${String(job.id).slice(0, 8)}` : "job";
}

/** A job's name and what it runs, as the tree, the lanes and the titles show it: "#3 · echo.py". */
export function jobTitle(job) {
  return `${jobName(job)} · ${job?.label || job?.kind || "job"}`;
}

/** `text` (a server's error message, say) with the ids of `jobs` in it replaced by their
 *  names: "job 39d6…e2 is not running" reads "#3 is not running". */
export function nameJobs(text, ...jobs) {
  let out = String(text ?? "");
  for (const j of jobs) {
    if (!j?.id || j.number == null || !out.includes(j.id)) continue;
    out = out.replaceAll(`job ${j.id}`, jobName(j)).replaceAll(j.id, jobName(j));
  }
  return out;
}

// A job's state uses the library's names (ipc.State), the same the API's `state` field sends:
// starting, running, exited, signaled (ended by a signal), failed (could not start). `close`
// is not a state (job.closed), and an `error` event after the start is not an end.
export const STATES = Object.freeze(["starting", "running", "exited", "signaled", "failed"]);

/** Human-readable state of a job for the tree and the tests ("exited 0", "signaled SIGKILL"). */
export function stateText(job) {
  switch (job.state) {
    case "exited":
      return `exited ${job.exitCode ?? "?"}`;
    case "signaled":
      return `signaled ${job.signal ?? ""}`.trim();
    case "lost":
      return "lost (runner gone)";
    default:
      return job.state;
  }
}

/** How a child ended, from its `exit` / `close` data. */
function endState(signal) {
  return signal ? "signaled" : "exited";
}

function newJob(id) {
  return {
    id,
    number: null, // the server's per-run number (#3), from the API: the feed's events carry only the id
    pid: null,
    ppid: null,
    parent: null,
    host: null, // the runner that owns the child
    kind: null,
    label: "",
    transport: null,
    state: "starting",
    exitCode: null,
    signal: null,
    startedAt: null,
    spawnAt: null,
    firstMessageAt: null,
    exitAt: null,
    closed: false,
    rss: null,
    cpu: null,
    error: null,
    lines: [], // bounded scroll-back: {stream, text}
    partial: { stdout: "", stderr: "" },
    droppedLines: 0,
    droppedBytes: 0,
    serverDropped: 0,
    outBytes: 0,
    outChunks: [], // full output (bounded by maxKeepBytes) for copy / download
    keptBytes: 0,
    truncated: false,
    eventCount: 0,
    messages: 0,
    lastToChild: null,
    grandchildren: [],
  };
}

export class Store {
  /**
   * @param {Store} [opts.namesFrom]  a store whose jobs' numbers this one's jobs take (a replay
   *   of a file names the jobs the live page knows as the live page does)
   */
  constructor({ maxEvents = 100000, maxLines = 2000, maxKeepBytes = 4 * 1024 * 1024, namesFrom = null } = {}) {
    this.namesFrom = namesFrom;
    this.maxEvents = maxEvents;
    this.maxLines = maxLines;
    this.maxKeepBytes = maxKeepBytes;
    this.reset();
    this.listeners = new Set();
  }

  reset() {
    this.events = [];
    this.droppedEvents = 0; // dropped from this store's memory (oldest first)
    this.serverDropped = 0; // announced by the server in `dropped` events
    this.jobs = new Map();
    this.hosts = new Set(); // the runners whose children the jobs are (several with --redis)
    this.lastSeq = null;
    this.firstT = null;
    this.lastT = null;
    this.version = 0;
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Tell listeners something changed; they batch their own drawing (requestAnimationFrame). */
  changed(kind) {
    this.version++;
    for (const fn of this.listeners) fn(kind);
  }

  job(id) {
    let j = this.jobs.get(id);
    if (!j) {
      j = newJob(id);
      const known = this.namesFrom?.jobs.get(id);
      if (known?.number != null) j.number = known.number;
      this.jobs.set(id, j);
    }
    return j;
  }

  /** Merge a job object from the REST API (POST /api/jobs, GET /api/jobs). */
  upsertJob(obj) {
    if (!obj || !obj.id) return null;
    const j = this.job(obj.id);
    if (obj.pid != null) j.pid = obj.pid;
    if (obj.number != null) j.number = obj.number;
    if (obj.ppid != null) j.ppid = obj.ppid;
    if (obj.parent != null) j.parent = obj.parent;
    if (obj.host) {
      j.host = obj.host;
      this.hosts.add(obj.host);
    }
    if (obj.kind) j.kind = obj.kind;
    if (obj.transport) j.transport = obj.transport;
    const label = obj.program ?? obj.command;
    if (label) j.label = [label, ...(obj.args ?? [])].join(" ");
    else if (obj.label) j.label = obj.label;
    if (obj.started_at != null && j.startedAt == null) j.startedAt = obj.started_at;
    if (obj.rss != null) j.rss = obj.rss;
    // The feed is the authority on state; take the REST state only if the feed said nothing.
    if (j.eventCount === 0 && STATES.includes(obj.state)) j.state = obj.state;
    if (j.exitCode == null && obj.exit_code != null) j.exitCode = obj.exit_code;
    if (j.signal == null && obj.signal != null) j.signal = obj.signal;
    this.changed("jobs");
    return j;
  }

  /** Apply many events at once (replay, gap fill); one change notification. */
  applyAll(events) {
    for (const ev of events) this._apply(ev);
    this.changed("events");
  }

  apply(ev) {
    const took = this._apply(ev);
    if (took) this.changed("events");
    return took;
  }

  _apply(ev) {
    if (!ev || typeof ev !== "object" || !ev.type) return false;
    if (ev.seq != null) {
      if (this.lastSeq != null && ev.seq <= this.lastSeq) return false; // already have it
      this.lastSeq = ev.seq;
    }
    this.events.push(ev);
    if (this.events.length > this.maxEvents) {
      const cut = this.events.length - this.maxEvents;
      this.events.splice(0, cut);
      this.droppedEvents += cut;
    }
    if (ev.t != null) {
      if (this.firstT == null) this.firstT = ev.t;
      this.lastT = ev.t;
    }
    const d = ev.data ?? {};
    if (ev.type === "dropped") {
      const n = d.count ?? d.events ?? d.dropped ?? 0;
      this.serverDropped += n;
      if (ev.job) this.job(ev.job).serverDropped += n;
      return true;
    }
    if (!ev.job) return true;
    const j = this.job(ev.job);
    if (j.firstSeq == null) j.firstSeq = ev.seq ?? 0;
    if (ev.t != null) j.lastT = ev.t;
    j.eventCount++;
    if (ev.pid != null && j.pid == null) j.pid = ev.pid;
    if (ev.host && j.host == null) {
      j.host = ev.host;
      this.hosts.add(ev.host);
    }
    switch (ev.type) {
      case "spawn":
        j.spawnAt = ev.t;
        if (j.state === "starting") j.state = "running";
        if (d.ppid != null) j.ppid = d.ppid;
        if (d.parent != null) j.parent = d.parent;
        if (d.kind) j.kind = d.kind;
        if (d.transport) j.transport = d.transport;
        if (d.started_at != null && j.startedAt == null) j.startedAt = d.started_at;
        if (!j.label) {
          if (Array.isArray(d.argv) && d.argv.length) {
            // argv[0] may be a full interpreter path: show its base name, and the program's.
            const base = (s) => String(s).split("/").pop();
            j.label = d.program ? [d.program, ...d.argv.slice(2)].join(" ") : d.argv.map(base).join(" ");
          } else {
            const label = d.program ?? d.command ?? d.file;
            if (label) j.label = [label, ...(d.args ?? [])].join(" ");
          }
        }
        if (d.pid != null) j.pid = d.pid;
        break;
      case "message": {
        j.messages++;
        const dir = messageDirection(ev);
        if (dir === "to_child") j.lastToChild = ev;
        else {
          if (j.firstMessageAt == null) j.firstMessageAt = ev.t;
          ev._latency = j.lastToChild && ev.t != null ? ev.t - j.lastToChild.t : null;
          const m = messagePayload(ev);
          // grandchildren.py reports the pids it started: {"type": "grandchildren", "pids": [...]}
          if (m && typeof m === "object" && m.type === "grandchildren" && Array.isArray(m.pids)) j.grandchildren = m.pids;
        }
        break;
      }
      case "stdout":
      case "stderr":
        this._output(j, ev.type, outputText(ev));
        break;
      case "exit":
        j.exitAt = ev.t;
        j.exitCode = d.code ?? null;
        j.signal = d.signal ?? null;
        j.state = endState(j.signal);
        this._flushPartial(j);
        break;
      case "close":
        j.closed = true;
        if (j.state === "running" || j.state === "starting") {
          j.exitCode = d.code ?? j.exitCode;
          j.signal = d.signal ?? j.signal;
          j.state = endState(j.signal);
        }
        this._flushPartial(j);
        break;
      case "error":
        j.error = d.message ?? d.error ?? preview(d);
        // Before `spawn`, an error is the failed start (the server's state is then "failed").
        if (j.state === "starting") j.state = "failed";
        this._line(j, "sys", `error: ${j.error}`);
        break;
      case "lost":
        // Its runner stopped answering: the job will never close; say so, do not wait.
        j.state = "lost";
        j.error = d.message ?? "its runner stopped answering";
        this._flushPartial(j);
        this._line(j, "sys", `lost: ${j.error}`);
        break;
      case "stats":
        if (d.rss != null) j.rss = d.rss;
        if (d.cpu != null) j.cpu = d.cpu;
        if (Array.isArray(d.children)) j.grandchildren = d.children;
        break;
      default:
        // Extra stdio pipes (fd3, ...) and future types are kept and shown as output lines.
        if (/^fd\d+$/.test(ev.type)) this._output(j, ev.type, outputText(ev));
        break;
    }
    return true;
  }

  _output(j, stream, text) {
    const bytes = utf8Length(text);
    j.outBytes += bytes;
    if (j.keptBytes + bytes <= this.maxKeepBytes) {
      j.outChunks.push({ stream, text });
      j.keptBytes += bytes;
    } else j.truncated = true;
    const key = stream === "stderr" ? "stderr" : "stdout";
    const buf = (j.partial[key] ?? "") + text;
    const parts = buf.split("\n");
    j.partial[key] = parts.pop();
    for (const p of parts) this._line(j, stream, p, false);
    // A line without a newline for a long time is still shown once it grows big.
    if (j.partial[key].length > 4096) {
      this._line(j, stream, j.partial[key], false);
      j.partial[key] = "";
    }
    this._trim(j);
  }

  _flushPartial(j) {
    for (const key of ["stdout", "stderr"]) {
      if (j.partial[key]) {
        this._line(j, key, j.partial[key]);
        j.partial[key] = "";
      }
    }
  }

  _line(j, stream, text, trim = true) {
    j.lines.push({ stream, text });
    j.lineSerial = (j.lineSerial ?? 0) + 1;
    if (trim) this._trim(j);
  }

  /** Keep the last maxLines lines. Once per chunk, not per line: a flood chunk carries
   *  hundreds of lines, and cutting the array's head for each one is quadratic. */
  _trim(j) {
    if (j.lines.length <= this.maxLines) return;
    const cut = j.lines.length - this.maxLines;
    for (let i = 0; i < cut; i++) j.droppedBytes += utf8Length(j.lines[i].text) + 1;
    j.lines.splice(0, cut);
    j.droppedLines += cut;
  }

  /** Every output chunk of a job as one string (what copy / download give). */
  fullOutput(id, { streams = ["stdout", "stderr"] } = {}) {
    const j = this.jobs.get(id);
    if (!j) return "";
    return j.outChunks.filter((c) => streams.includes(c.stream) || !["stdout", "stderr"].includes(c.stream)).map((c) => c.text).join("");
  }

  jobEvents(id) {
    return this.events.filter((e) => e.job === id);
  }

  toNDJSON(events = this.events) {
    return events.map((e) => stringify(stripPrivate(e))).join("\n") + (events.length ? "\n" : "");
  }
}

function stripPrivate(ev) {
  const out = {};
  for (const k of Object.keys(ev)) if (!k.startsWith("_")) out[k] = ev[k];
  return out;
}

/** Parse an exported NDJSON file; bad lines are counted, not fatal. */
export function parseNDJSON(text) {
  const events = [];
  let bad = 0;
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    try {
      const ev = parseJSON(line);
      if (ev && typeof ev === "object" && typeof ev.type === "string") events.push(ev);
      else bad++;
    } catch {
      bad++;
    }
  }
  events.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  return { events, bad };
}

/** Jobs by the job they were started from (key null: the server's own), in the order given;
 *  a job whose parent is not among `jobs` counts as the server's, so it is not lost. */
export function jobsByParent(jobs) {
  const ids = new Set(jobs.map((j) => j.id));
  const byParent = new Map();
  for (const j of jobs) {
    const p = j.parent && ids.has(j.parent) ? j.parent : null;
    if (!byParent.has(p)) byParent.set(p, []);
    byParent.get(p).push(j);
  }
  return byParent;
}

export { TEXT_TYPES };
