// Small DOM helpers shared by the pages. Text always goes in through textContent: nothing a
// child prints, and nothing from a loaded file, is ever parsed as HTML.

/** h("div", {class: "x", onclick: fn}, "text", child) -> element */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Run `fn` at most once per animation frame however often it is asked for. */
export function frameThrottle(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/**
 * Run `fn` on an animation frame, at most every `baseMs`, and never more often than
 * `factor` times its own cost: a view that takes 40 ms to draw waits 160 ms before the next
 * draw, so however busy the feed is, the page keeps most of each second for the user.
 * The returned function schedules; `.now()` draws at the next frame regardless of the wait.
 */
export function adaptiveThrottle(fn, baseMs, factor = 4) {
  let last = 0;
  let cost = 0;
  let timer = null;
  let frame = false;
  const run = () => {
    frame = false;
    const t0 = performance.now();
    fn();
    last = performance.now();
    cost = last - t0;
  };
  const schedule = () => {
    if (timer || frame) return;
    const wait = Math.max(baseMs, cost * factor) - (performance.now() - last);
    timer = setTimeout(() => {
      timer = null;
      frame = true;
      requestAnimationFrame(run);
    }, Math.max(0, wait));
  };
  schedule.now = () => {
    clearTimeout(timer);
    timer = null;
    if (!frame) {
      frame = true;
      requestAnimationFrame(run);
    }
  };
  return schedule;
}

export function fmtBytes(n) {
  if (n == null) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function fmtMs(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return "–";
  const ms = seconds * 1000;
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function fmtClock(t) {
  if (t == null) return "–";
  const d = new Date(t * 1000);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

export function download(filename, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API needs a secure context or permission; fall back to a hidden textarea.
    const ta = h("textarea", { style: "position:fixed;left:-9999px" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand("copy");
    ta.remove();
    return ok;
  }
}

/** Light / dark: follows the system unless the user picked one (kept in localStorage). */
export function initTheme() {
  const btn = $("#theme-toggle");
  const saved = localStorage.getItem("theme");
  const systemDark = matchMedia("(prefers-color-scheme: dark)").matches;
  const apply = (t) => {
    document.documentElement.dataset.theme = t;
    if (btn) {
      btn.textContent = t === "dark" ? "☀ Light" : "☾ Dark";
      btn.setAttribute("aria-pressed", String(t === "dark"));
    }
    document.dispatchEvent(new CustomEvent("themechange", { detail: t }));
  };
  apply(saved ?? (systemDark ? "dark" : "light"));
  btn?.addEventListener("click", () => {
    const t = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem("theme", t);
    apply(t);
  });
}

const STATUS_TEXT = {
  connecting: "connecting…",
  live: "live",
  behind: "behind — catching up",
  reconnecting: "reconnecting…",
  stopped: "server stopped",
  full: "server full",
  offline: "offline",
};

/** The status pill in the top bar and the banner that says the connection dropped. */
export function showStatus(status, info = {}) {
  const pill = $("#feed-status");
  if (pill) {
    pill.dataset.state = status;
    pill.textContent = STATUS_TEXT[status] ?? status;
    pill.title = `last seq ${info.lastSeq ?? "–"}, reconnects ${info.reconnects ?? 0}`;
  }
  const banner = $("#feed-banner");
  if (banner) {
    if (status === "reconnecting") {
      banner.hidden = false;
      banner.textContent = `Connection to the server lost — reconnecting and resuming after event #${info.lastSeq ?? 0}.`;
    } else if (status === "stopped") {
      banner.hidden = false;
      banner.textContent = "The server stopped. This page reconnects by itself when it is back, and keeps what it has shown.";
    } else if (status === "full") {
      banner.hidden = false;
      const max = info.capacity ? ` (${info.capacity})` : "";
      banner.textContent = `The server is full: every live feed${max} is in use. Close a tab you do not need, or restart the server with a larger --max-feeds; this page keeps trying.`;
    } else if (status === "offline") {
      banner.hidden = false;
      banner.textContent = "The server refused the live feed. Open the URL printed when the server started (it carries the access token).";
    } else banner.hidden = true;
  }
}

export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
