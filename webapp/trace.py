"""A run exported as a Chrome Trace Event Format document, for Perfetto and chrome://tracing.

The format (the "Trace Event Format" document, JSON Object Format): ``{"traceEvents": [...],
"displayTimeUnit": "ms", "otherData": {...}}``, each event with ``name``, ``cat``, ``ph``
(phase), ``ts`` (microseconds), ``pid``, ``tid`` and ``args``. What each job becomes:

* one **process track** per child (``pid`` = the child's pid), named by ``process_name``
  metadata (``ph: "M"``) ``"#3 compute.py"``: the job's number, as the page shows it (viewers
  add the pid) and ordered by start
  (``process_sort_index``); its thread is named after the program;
* the child's **life** as one complete event (``ph: "X"``, ``dur``) from spawn to close (to
  now, with ``args.running``, while it runs);
* **lifecycle** events (spawn, exit, close, error, disconnect, dropped) as instant events
  (``ph: "i"``, thread scope);
* **messages** as flow events from sender to receiver: ``ph: "s"`` on the sender's track and
  ``ph: "f"`` with ``bp: "e"`` on the receiver's, one ``id`` per message (flows bind to the
  enclosing slice, so the server has one thread per job, ``"#3 (parent side)"``, holding a slice
  for that job's life), plus an instant event on the child's track carrying the payload;
* **output** as counters (``ph: "C"``): the bytes each stream has written so far (a burst is a
  step), and the ``stats`` samples (RSS in MiB, CPU %).

Times are the server's: one timestamp per event, taken when the server saw it. A message to a
child is stamped when the server sends it, a message from a child when the server reads it, so
a flow's two ends carry the same time (the other end's clock is not known). ``ts`` counts µs
from the first event of the trace; ``otherData.ts_zero_unix_s`` is that moment on the wall
clock.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

#: Payload text kept per message in the trace (the full message stays in the event log).
MAX_PAYLOAD_CHARS: Final = 2000
LIFECYCLE: Final = ("spawn", "exit", "close", "error", "disconnect")
#: Synthetic pids for jobs without their own (never started, or a pid a kept job reused).
SYNTHETIC_PID_BASE: Final = 1 << 30


def _payload(message: Any) -> tuple[str, bool]:
    text = json.dumps(message, ensure_ascii=False, default=str)
    if len(text) > MAX_PAYLOAD_CHARS:
        return text[:MAX_PAYLOAD_CHARS], True
    return text, False


def _job_tag(job: dict[str, Any]) -> str:
    """``#3``: the job's number as the page shows it (its id, a UUID, names nothing to a
    person); the id where there is no number."""
    number = job.get("number")
    return f"#{number}" if number else str(job["id"])


def _job_name(job: dict[str, Any]) -> str:
    what = job.get("program") or job.get("label") or job.get("command") or job.get("kind")
    args = " ".join(str(a) for a in job.get("args") or [])
    return f"{what} {args}".strip()


class _Builder:
    def __init__(self, server_pid: int, t0: float) -> None:
        self.server_pid = server_pid
        self.t0 = t0
        self.events: list[dict[str, Any]] = []
        self.flow_ids = 0

    def ts(self, t: float) -> float:
        return round((t - self.t0) * 1e6, 3)

    def add(self, **event: Any) -> None:
        self.events.append(event)

    def meta(self, name: str, pid: int, tid: int | None, args: dict[str, Any]) -> None:
        event: dict[str, Any] = {"name": name, "ph": "M", "pid": pid, "args": args}
        if tid is not None:
            event["tid"] = tid
        self.events.append(event)

    def counter(self, name: str, cat: str, pid: int, t: float, args: dict[str, Any]) -> None:
        """A counter sample (process-level: no tid); each key of `args` is one series."""
        self.add(name=name, cat=cat, ph="C", ts=self.ts(t), pid=pid, args=args)

    def instant(self, name: str, pid: int, tid: int, t: float, args: dict[str, Any]) -> None:
        self.add(
            name=name, cat="lifecycle", ph="i", s="t", ts=self.ts(t), pid=pid, tid=tid, args=args
        )


def build(
    jobs: list[dict[str, Any]],
    events: dict[str, list[dict[str, Any]]],
    *,
    server_pid: int,
    now: float | None = None,
) -> dict[str, Any]:
    """The trace of `jobs` (``Job.to_dict()`` shapes) from their kept `events` (by job id).

    :param now: the end of a running job's slice (default: the current time).
    """
    now = time.time() if now is None else now
    stamps = [e["t"] for j in jobs for e in events.get(j["id"], []) if e["type"] != "dropped"]
    stamps += [j["started_at"] for j in jobs if j.get("started_at") is not None]
    t0 = min(stamps, default=now)
    b = _Builder(server_pid, t0)
    b.meta("process_name", server_pid, None, {"name": "IPC Explorer server (parent)"})
    b.meta("process_sort_index", server_pid, None, {"sort_index": 0})
    used_pids: set[int] = {server_pid}
    ordered = sorted(jobs, key=lambda j: j.get("started_at") or 0)
    for index, job in enumerate(ordered, start=1):
        _add_job(b, job, events.get(job["id"], []), index, used_pids, now)
    return {
        "traceEvents": b.events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "IPC Explorer",
            "server_pid": server_pid,
            "jobs": [job["id"] for job in ordered],
            "ts_zero_unix_s": t0,
            "clock": "the server's wall clock; ts in microseconds from ts_zero_unix_s",
        },
    }


def _add_job(
    b: _Builder,
    job: dict[str, Any],
    job_events: list[dict[str, Any]],
    index: int,
    used_pids: set[int],
    now: float,
) -> None:
    real_pid = job.get("pid")
    # Without a pid of its own (never started, or one an earlier kept job had), a job gets a
    # synthetic one above any real pid (pid_max <= 2^22): a track of its own, never merged.
    reused = real_pid is None or real_pid in used_pids
    pid = SYNTHETIC_PID_BASE + index if reused else real_pid
    used_pids.add(pid)
    tid = pid
    side = index  # the server's thread for this job's parent side
    name = _job_name(job)
    tag = _job_tag(job)
    # Viewers add the pid to the name themselves; only a synthetic one is explained.
    label = f"{tag} {name}"
    if real_pid is None:
        label += " (no pid: it did not start)"
    elif reused:
        label += f" (pid {real_pid}, reused by an earlier kept job)"
    b.meta("process_name", pid, None, {"name": label})
    b.meta("process_sort_index", pid, None, {"sort_index": index})
    b.meta("thread_name", pid, tid, {"name": name})
    b.meta("thread_name", b.server_pid, side, {"name": f"{tag} (parent side)"})

    # A `dropped` notice (history evicted) is stamped when the history is read, not when the
    # events fell out: it marks the start of what is kept and never stretches the life.
    timed = [e for e in job_events if e["type"] != "dropped"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in timed:
        by_type.setdefault(e["type"], []).append(e)
    start = by_type["spawn"][0]["t"] if "spawn" in by_type else job.get("started_at") or b.t0
    start = min([start, *(e["t"] for e in timed)])
    end_event = (by_type.get("close") or by_type.get("exit") or [None])[-1]
    running = end_event is None and job.get("ended_at") is None
    end = end_event["t"] if end_event else (job.get("ended_at") or now)
    end = max([end, *(e["t"] for e in timed)])
    life = {
        "job": job["id"],
        "kind": job.get("kind"),
        "transport": job.get("transport"),
        "state": job.get("state"),
        "exit_code": job.get("exit_code"),
        "signal": job.get("signal"),
        "running": running,
    }
    b.add(
        name=name,
        cat="process",
        ph="X",
        ts=b.ts(start),
        dur=b.ts(end) - b.ts(start),
        pid=pid,
        tid=tid,
        args=life,
    )
    b.add(
        name=f"{tag} {name}",
        cat="process",
        ph="X",
        ts=b.ts(start),
        dur=b.ts(end) - b.ts(start),
        pid=b.server_pid,
        tid=side,
        args={"job": job["id"]},
    )

    written: dict[str, int] = {}
    for e in job_events:
        kind, data, t = e["type"], e.get("data") or {}, e["t"]
        if kind in LIFECYCLE:
            b.instant(kind, pid, tid, t, {"seq": e.get("seq"), **data})
        elif kind == "dropped":
            first_kept = timed[0]["t"] if timed else start
            b.instant("events dropped", pid, tid, first_kept, {"seq": e.get("seq"), **data})
        elif kind == "message":
            _add_message(b, e, pid, tid, side)
        elif kind in ("stdout", "stderr") or (kind.startswith("fd") and kind[2:].isdigit()):
            written[kind] = written.get(kind, 0) + int(data.get("bytes", 0))
            b.counter("output bytes", "output", pid, t, dict(written))
        elif kind == "stats":
            if data.get("rss") is not None:
                b.counter("rss MiB", "stats", pid, t, {"rss": round(data["rss"] / 2**20, 2)})
            if data.get("cpu") is not None:
                b.counter("cpu %", "stats", pid, t, {"cpu": data["cpu"]})


def _add_message(b: _Builder, e: dict[str, Any], pid: int, tid: int, side: int) -> None:
    data = e.get("data") or {}
    to_child = data.get("direction") == "to_child"
    b.flow_ids += 1
    flow = b.flow_ids
    ts = b.ts(e["t"])
    sender, receiver = (
        ((b.server_pid, side), (pid, tid)) if to_child else ((pid, tid), (b.server_pid, side))
    )
    label = "message to child" if to_child else "message to parent"
    b.add(name=label, cat="message", ph="s", id=flow, ts=ts, pid=sender[0], tid=sender[1])
    b.add(
        name=label, cat="message", ph="f", bp="e", id=flow, ts=ts, pid=receiver[0], tid=receiver[1]
    )
    text, cut = _payload(data.get("message"))
    args = {"seq": e.get("seq"), "direction": data.get("direction"), "message": text}
    if cut:
        args["truncated_to_chars"] = MAX_PAYLOAD_CHARS
    b.add(
        name=("→ " if to_child else "← ") + label,
        cat="message",
        ph="i",
        s="t",
        ts=ts,
        pid=pid,
        tid=tid,
        args=args,
    )
