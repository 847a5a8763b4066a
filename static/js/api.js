// REST calls to /api. Same-origin fetch sends the token cookie; errors become exceptions
// carrying the server's message, so panels can show the reason (e.g. a refused command).

import { parseJSON } from "./store.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function call(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  let data = null;
  try {
    data = text ? parseJSON(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const msg = (data && (data.message || data.error || data.detail)) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, typeof msg === "string" ? msg : JSON.stringify(msg), data);
  }
  return data;
}

export const api = {
  createJob: (spec) => call("POST", "/api/jobs", spec),
  listJobs: () => call("GET", "/api/jobs"),
  getJob: (id) => call("GET", `/api/jobs/${encodeURIComponent(id)}`),
  events: (id, after = 0) => call("GET", `/api/jobs/${encodeURIComponent(id)}/events?after=${after}`),
  kill: (id, signal) => call("POST", `/api/jobs/${encodeURIComponent(id)}/kill`, { signal }),
  send: (id, message) => call("POST", `/api/jobs/${encodeURIComponent(id)}/send`, { message }),
  stdin: (id, data, end = false) => call("POST", `/api/jobs/${encodeURIComponent(id)}/stdin`, { data, end }),
  forget: (id) => call("DELETE", `/api/jobs/${encodeURIComponent(id)}`),
  output: (id) => call("GET", `/api/jobs/${encodeURIComponent(id)}/output`),
  programs: () => call("GET", "/api/programs"),
  hosts: () => call("GET", "/api/hosts"),
  heartbeat: () => call("GET", "/api/heartbeat"),
  status: () => call("GET", "/api/status"),
  // the tools (webapp/tools_api.py)
  lab: () => call("GET", "/api/lab"),
  labStart: (body) => call("POST", "/api/lab/runs", body),
  labCancel: (id) => call("DELETE", `/api/lab/runs/${encodeURIComponent(id)}`),
  fds: (id) => call("GET", `/api/jobs/${encodeURIComponent(id)}/fds`),
  frames: (id) => call("GET", `/api/jobs/${encodeURIComponent(id)}/frames`),
  framesStart: (id, maxBytes) => call("POST", `/api/jobs/${encodeURIComponent(id)}/frames`, { max_bytes: maxBytes }),
  framesStop: (id) => call("DELETE", `/api/jobs/${encodeURIComponent(id)}/frames`),
};

/** A seed endpoint (/getSum, /sum, /compute): plain text, timed on the client. */
export async function getText(path) {
  const t0 = performance.now();
  const res = await fetch(path, { credentials: "same-origin" });
  const text = await res.text();
  return { status: res.status, ok: res.ok, text, ms: performance.now() - t0 };
}
