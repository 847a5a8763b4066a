// The event log: a filterable table of every event (by job, type, text), NDJSON export, and
// loading an exported file back for replay. The table shows at most MAX_ROWS matching rows
// (the newest); filtering scans the store, which holds every event.

import { h, fmtClock, download, adaptiveThrottle } from "./ui.js";
import { jobName, jobTitle, preview, stringify } from "./store.js";

const MAX_ROWS = 500;
const REDRAW_MS = 500;

/** A short text for a table cell: long strings inside are cut before stringifying, so a
 *  64 KiB output chunk costs no more than a small message. */
function cell(ev) {
  const d = ev.data;
  if (d && typeof d === "object" && !Array.isArray(d)) {
    const small = {};
    for (const [k, v] of Object.entries(d)) small[k] = typeof v === "string" && v.length > 240 ? `${v.slice(0, 240)}…` : v;
    return preview(small, 240);
  }
  return preview(d ?? "", 240);
}

/** "12 of 40 events match", and how many of them the table shows when it cannot show all. */
function countText(matching, total, shown) {
  return `${matching} of ${total} events match${matching > shown ? ` · table shows the newest ${shown}` : ""}`;
}

export class EventLog {
  constructor({ table, jobSelect, typeSelect, textInput, countEl, store }) {
    this.tbody = table.querySelector("tbody");
    this.jobSelect = jobSelect;
    this.typeSelect = typeSelect;
    this.textInput = textInput;
    this.countEl = countEl;
    this.knownJobs = new Map(); // id -> its <option> in the job filter
    for (const el of [jobSelect, typeSelect]) el.addEventListener("change", () => this.redraw());
    textInput.addEventListener("input", () => this.redraw());
    // The table is often below the fold: while it is off screen it is not redrawn at all.
    this.visible = true;
    this.dirty = false;
    this.throttled = adaptiveThrottle(() => this.draw(), REDRAW_MS);
    new IntersectionObserver((entries) => {
      this.visible = entries.some((e) => e.isIntersecting);
      if (this.visible && this.dirty) this.throttled.now();
    }).observe(table);
    this.setStore(store);
  }

  setStore(store) {
    this.unsub?.();
    this.store = store;
    this.knownJobs.clear();
    this.unnamed = new Set(); // ids whose option still waits for the job's number
    this.jobSelect.replaceChildren(h("option", { value: "" }, "all jobs"));
    this.unsub = store.subscribe(() => this.schedule());
    this.redraw();
  }

  schedule() {
    this.syncJobs(); // cheap, and the filter must offer every job even before a redraw
    this.dirty = true;
    if (this.visible) this.throttled();
    else this.countOffScreen();
  }

  /** The count stays true while the table is off screen (and not redrawn): without filters
   *  every event matches, so no scan is needed; with filters it says when they apply. */
  countOffScreen() {
    if (!this.countEl) return;
    const total = this.store.events.length;
    const filtered = this.jobSelect.value || this.typeSelect.value || this.textInput.value.trim();
    this.countEl.textContent = filtered
      ? `${total} events · the filters apply when the table is in view`
      : countText(total, total, Math.min(total, MAX_ROWS));
  }

  redraw() {
    this.dirty = true;
    this.throttled.now();
  }

  matching() {
    const job = this.jobSelect.value;
    const type = this.typeSelect.value;
    const text = this.textInput.value.trim().toLowerCase();
    return this.store.events.filter((ev) => {
      if (job && ev.job !== job) return false;
      if (type && ev.type !== type) return false;
      if (text) {
        // The job by id and by name ("#3"); the name may come after the event, so it is not cached.
        const hay = (ev._hay ??= `${ev.job ?? ""} ${ev.pid ?? ""} ${ev.type} ${stringify(ev.data ?? "")}`.toLowerCase());
        if (!hay.includes(text) && !(ev.job && this.nameOf(ev.job).includes(text))) return false;
      }
      return true;
    });
  }

  nameOf(id) {
    return jobName(this.store.jobs.get(id) ?? { id });
  }

  /** The job filter offers every job, by name ("#3 · echo.py"); the value is its id. */
  syncJobs() {
    for (const id of this.unnamed) {
      const j = this.store.jobs.get(id);
      if (j?.number == null) continue;
      this.knownJobs.get(id).textContent = jobTitle(j);
      this.unnamed.delete(id);
    }
    if (this.knownJobs.size === this.store.jobs.size) return;
    for (const [id, j] of this.store.jobs) {
      if (this.knownJobs.has(id)) continue;
      const option = h("option", { value: id }, jobTitle(j));
      this.knownJobs.set(id, option);
      if (j.number == null) this.unnamed.add(id);
      this.jobSelect.append(option);
    }
  }

  draw() {
    this.dirty = false;
    this.syncJobs();
    const rows = this.matching();
    const shown = rows.slice(-MAX_ROWS);
    const frag = document.createDocumentFragment();
    for (const ev of shown) {
      frag.append(h("tr", { class: `t-${ev.type}`, dataset: { seq: ev.seq ?? "" } },
        h("td", {}, ev.seq ?? ""), h("td", {}, (ev._clock ??= fmtClock(ev.t))), h("td", { class: "job", dataset: { job: ev.job ?? "" } }, ev.job ? this.nameOf(ev.job) : ""), h("td", {}, ev.pid ?? ""),
        h("td", { class: "type" }, ev.type), h("td", { class: "data" }, cell(ev))));
    }
    this.tbody.replaceChildren(frag);
    if (this.countEl) {
      const total = this.store.events.length;
      this.countEl.textContent = countText(rows.length, total, shown.length);
    }
  }

  exportNDJSON() {
    const events = this.matching();
    download(`ipc-events-${new Date().toISOString().replace(/[:.]/g, "-")}.ndjson`, this.store.toNDJSON(events), "application/x-ndjson");
    return events.length;
  }
}
