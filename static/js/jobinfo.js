// What the feed does not say about a job: its events name it by id only, so its number (#3,
// the name people read), label and start time come from the API. Each job is looked up once,
// when the store first sees it (a job started by another tab or by an HTTP endpoint), after one
// list call at start where the page shows every job the server knows. Lookups, not polling.

import { api } from "./api.js";

/**
 * Keep `store`'s jobs named: look up each job it gets without a number.
 * @param {boolean} [opts.listFirst]  list every job the server knows first (one call)
 * @returns {() => void} stops looking
 */
export function lookUpJobs(store, { listFirst = false } = {}) {
  const asked = new Set();
  let ready = !listFirst;
  let seen = -1;
  const sweep = () => {
    // A job is new to the store when its first event comes; only then is there one to ask for.
    if (!ready || store.jobs.size === seen) return;
    seen = store.jobs.size;
    for (const j of store.jobs.values()) {
      if (asked.has(j.id) || (j.number != null && j.label && j.startedAt != null)) continue;
      asked.add(j.id);
      api.getJob(j.id).then((obj) => store.upsertJob(obj?.job ?? obj)).catch(() => {});
    }
  };
  if (listFirst) {
    api.listJobs().then((data) => {
      for (const obj of data?.jobs ?? []) {
        asked.add(obj.id);
        store.upsertJob(obj);
      }
    }).catch(() => {}).finally(() => {
      ready = true;
      sweep();
      store.changed("jobs");
    });
  }
  const unsub = store.subscribe(sweep);
  sweep();
  return unsub;
}
