// Why splitting a range over N children was not faster than one child, said with the numbers
// the lesson page has: the runs' times, each child's start-up (from the request to its first
// message, read from the feed), the cores this browser reports, and how busy the server was
// (its heartbeat's lateness during the run, the children it ran besides). Pure: no DOM.

/**
 * @param {object} run
 * @param {number} run.n                 children in the run
 * @param {number} run.oneMs             the same range with 1 child, in ms
 * @param {number} run.manyMs            the range over `n` children, in ms
 * @param {number|null} run.startMs      median start-up of the run's children, in ms
 * @param {number|null} run.cores        logical CPUs (navigator.hardwareConcurrency)
 * @param {number|null} run.lateMs       the server's worst heartbeat lateness during the run
 * @param {number|null} run.otherChildren  children the server ran besides the run's, at its start
 * @returns {{speedup: number, reasons: string[]} | null}  null when it was faster (≥ 1×)
 */
export function whyNotFaster({ n, oneMs, manyMs, startMs = null, cores = null, lateMs = null, otherChildren = null }) {
  const speedup = oneMs / manyMs;
  if (!(speedup < 1)) return null;
  const reasons = [];
  const each = oneMs / n;
  if (startMs != null) {
    const share = startMs / each;
    reasons.push(
      `Starting a process costs time: each child took ${ms(startMs)} from the request to its first message, ` +
      `against at most ${ms(each)} of work each (${ms(oneMs)} for the whole run with one child, start-up included, split ${n} ways)` +
      (share >= 0.25 ? `: the work is too small for the cost of ${n} children; try a bigger range.` : "."),
    );
  } else {
    reasons.push(`Starting a process costs time, against at most ${ms(each)} of work per child (${ms(oneMs)} for the whole run with one child, split ${n} ways).`);
  }
  if (cores != null) {
    reasons.push(n > cores
      ? `${n} children for ${cores} cores (as this browser counts them): they take turns on the CPUs rather than run at once.`
      : `${cores} cores (as this browser counts them) for ${n} children: enough, but only if nothing else needs them.`);
  }
  const busy = [];
  if (lateMs != null && lateMs >= BUSY_LATE_MS) busy.push(`the server's heartbeat ran up to ${ms(lateMs)} late during the run (about 1 ms when the machine is idle)`);
  if (otherChildren) busy.push(`${otherChildren} other child${otherChildren === 1 ? " was" : "ren were"} running on the server when it started`);
  if (busy.length) reasons.push(`The machine was busy: ${busy.join(", and ")}.`);
  else reasons.push("Nothing this page can see was busy; other programs on the machine may have been.");
  return { speedup, reasons };
}

/** Heartbeat lateness (ms) past which the server's machine counts as busy. */
export const BUSY_LATE_MS = 20;

function ms(v) {
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}
