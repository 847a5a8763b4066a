"""The transport lab: the server's own parent measures each transport, and the page watches.

A browser cannot time a transport: its round trip to a child goes browser → server → child →
server → browser, and the two HTTP/WebSocket hops (about 2 ms) hide the channel (tens of µs).
So the server drives the workload itself, exactly the one ``make bench`` runs (the package
``ipc_workload``, which both import): per subject, warm-up, N one-at-a-time round trips
(p50/p99), a pipelined burst of small messages (msgs/s), then pipelined 1 MiB messages (MB/s).
Subjects, in order: the raw ``socketpair`` JSON-lines floor, ``ipc.fork`` over pipe,
socketpair, unix and tcp, and Node's own ``fork()`` IPC when ``node`` is installed.

Every number is published as a ``lab`` event on the feed the moment it is measured (plus a
few progress events during the round trips). Each event's ``data`` is the whole run as it
stands (`LabRun.snapshot`, about 2 KB), so a page that joins late or misses one is right again
with the next, and applying them twice changes nothing.

Bounded: one run at a time (a second gets 409), counts capped (`LIMITS`), a time limit
(`MAX_SECONDS`), cancellable (`cancel`, which kills the child being measured), and stopped
with the server. The lab's children are not jobs: they do not count against
``MAX_CHILDREN`` and do not appear in the process tree (at most two run at a time).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import ipc_workload as workload

from .errors import ApiError
from .events import EventBus

#: Subject keys, in the order a run measures them.
SUBJECTS: Final = ("floor", "pipe", "socketpair", "unix", "tcp", "node")
LABELS: Final = {
    "floor": "raw socketpair floor",
    "pipe": "ipc pipe",
    "socketpair": "ipc socketpair",
    "unix": "ipc unix",
    "tcp": "ipc tcp",
    "node": "node fork()",
}
NOTES: Final = {
    "floor": "socket.socketpair(), JSON lines, blocking reads, no library: the floor",
    "pipe": "ipc.fork over two os.pipe()s (Python children only)",
    "socketpair": "ipc.fork over an anonymous AF_UNIX socketpair (what Node uses; auto)",
    "unix": "ipc.fork over a named AF_UNIX socket the child connects to",
    "tcp": "ipc.fork over a TCP connection on 127.0.0.1",
    "node": "Node's own child_process.fork() IPC, parent and child in Node, timed by Node",
}
#: Workload sizes: `make bench`'s by default, and the bounds a request may ask for.
DEFAULTS: Final = {"rtt": 3000, "msgs": 20000, "big": 40, "warmup": 200}
LIMITS: Final = {"rtt": (10, 20000), "msgs": (10, 200000), "big": (1, 100), "warmup": (0, 2000)}
#: A run that takes longer than this is cancelled (the defaults take about 5 s here).
MAX_SECONDS: Final = 180.0
#: Finished runs remembered (GET /api/lab/runs/<id>).
KEEP_RUNS: Final = 5


def available_subjects() -> list[str]:
    """The subjects this machine can measure (``node`` only with Node installed)."""
    return [s for s in SUBJECTS if s != "node" or workload.node_path() is not None]


@dataclass
class SubjectResult:
    """One subject of a run, as the page shows it (latencies in µs)."""

    key: str
    label: str
    note: str
    state: str = "waiting"  # waiting | running | done | failed | cancelled
    phase: str | None = None  # starting | rtt | msgs | big, while running
    rtt_done: int = 0
    rtt_total: int = 0
    rtt_p50_us: float | None = None
    rtt_p99_us: float | None = None
    msgs_per_s: float | None = None
    mb_per_s: float | None = None
    error: str | None = None


@dataclass
class LabRun:
    """One run: its settings, its subjects' results so far, and how it ended."""

    id: str
    config: dict[str, int]
    subjects: list[SubjectResult]
    state: str = "running"  # running | done | cancelled
    reason: str | None = None  # why it was cancelled
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    current: str | None = None
    control: workload.Control = field(default_factory=workload.Control, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def subject(self, key: str) -> SubjectResult:
        return next(s for s in self.subjects if s.key == key)

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "reason": self.reason,
            "config": dict(self.config),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "current": self.current,
            "pid": os.getpid(),
            "subjects": [asdict(s) for s in self.subjects],
        }


def parse_config(body: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    """A run request's sizes (the defaults filled in) and subjects in the order they are
    measured. `body` has the shape of schemas.py's ``LabRunRequest`` (field names, integer
    bounds from `LIMITS`, subject names: checked when the request was read); what a schema
    cannot say is checked here.

    :raises ApiError: 400 for a subject this machine cannot measure (``node`` without Node).
    """
    config = {name: int(body.get(name, default)) for name, default in DEFAULTS.items()}
    available = available_subjects()
    subjects = body.get("subjects", available)
    for name in subjects:
        if name not in available:
            raise ApiError(400, f"subject {name!r} needs node, which is not installed here")
    return config, [s for s in SUBJECTS if s in subjects]  # always measured in the same order


class LabRunner:
    """Runs lab runs one at a time on a thread of their own, publishing `lab` events."""

    def __init__(self, bus: EventBus, max_seconds: float = MAX_SECONDS) -> None:
        self.bus = bus
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._runs: dict[str, LabRun] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ---- queries ------------------------------------------------------------------------

    def get(self, run_id: str) -> LabRun:
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise ApiError(404, f"no lab run {run_id!r}; GET /api/lab shows the latest one")
        return run

    def latest(self) -> LabRun | None:
        with self._lock:
            return next(reversed(self._runs.values()), None)

    # ---- control ------------------------------------------------------------------------

    def start(self, body: dict[str, Any]) -> LabRun:
        """Start a run. :raises ApiError: 400 bad settings, 409 while another runs, 503
        while the server stops."""
        config, keys = parse_config(body)
        with self._lock:
            if self._stopping:
                raise ApiError(503, "the server is stopping; run the lab after it restarts")
            busy = next((r for r in self._runs.values() if r.running), None)
            if busy is not None:
                raise ApiError(
                    409,
                    f"lab run {busy.id} is still measuring (one run at a time, so runs do not "
                    f"disturb each other's numbers); wait for it or cancel it with "
                    f"DELETE /api/lab/runs/{busy.id}",
                    run=busy.id,
                )
            run = LabRun(
                id=f"r{next(self._ids)}",
                config=config,
                subjects=[
                    SubjectResult(key, LABELS[key], NOTES[key], rtt_total=config["rtt"])
                    for key in keys
                ],
            )
            run.control = workload.Control(report=self._reporter(run))
            self._runs[run.id] = run
            while len(self._runs) > KEEP_RUNS:
                del self._runs[next(iter(self._runs))]
            self._thread = threading.Thread(
                target=self._run, args=(run,), name=f"lab-{run.id}", daemon=True
            )
            self._thread.start()
        return run

    def cancel(self, run: LabRun, reason: str = "cancelled by the user") -> None:
        """Stop `run` now. :raises ApiError: 409 when it has already ended."""
        with self._lock:
            if not run.running:
                raise ApiError(409, f"lab run {run.id} has already ended ({run.state})")
            run.reason = run.reason or reason
        run.control.cancel()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel a running run and wait for its thread (server stop)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
            running = [r for r in self._runs.values() if r.running]
        for run in running:
            run.reason = run.reason or "the server is stopping"
            run.control.cancel()
        if thread is not None:
            thread.join(timeout)

    # ---- the run's thread ---------------------------------------------------------------

    def _publish(self, run: LabRun) -> None:
        self.bus.publish(None, os.getpid(), "lab", run.snapshot())

    def _reporter(self, run: LabRun) -> Callable[[str, dict[str, Any]], None]:
        """The workload's `report` for `run`: record the number, publish the run."""

        def report(phase: str, numbers: dict[str, Any]) -> None:
            key = run.current
            if key is None:
                return
            subject = run.subject(key)
            if phase == "ready":
                subject.phase = "rtt"
            elif phase == "rtt_progress":
                subject.rtt_done = numbers["done"]
            elif phase == "rtt":
                subject.rtt_done = subject.rtt_total
                subject.rtt_p50_us = round(numbers["rtt_p50"] * 1e6, 1)
                subject.rtt_p99_us = round(numbers["rtt_p99"] * 1e6, 1)
                subject.phase = "msgs"
            elif phase == "msgs":
                subject.msgs_per_s = round(numbers["msgs_per_s"], 1)
                subject.phase = "big"
            elif phase == "big":
                subject.mb_per_s = round(numbers["mb_per_s"], 2)
            self._publish(run)

        return report

    def _measure(self, run: LabRun, key: str) -> None:
        cfg = workload.Config(
            rtt=run.config["rtt"],
            msgs=run.config["msgs"],
            big=run.config["big"],
            warmup=run.config["warmup"],
            startups=0,
            rounds=1,
        )
        if key == "floor":
            workload.bench_floor(cfg, control=run.control)
        elif key == "node":
            if workload.bench_node(cfg, control=run.control) is None:
                raise RuntimeError("node is not installed here")
        else:
            workload.bench_ipc(key, cfg, control=run.control)

    def _run(self, run: LabRun) -> None:
        timer = threading.Timer(self.max_seconds, self._time_up, args=(run,))
        timer.daemon = True
        timer.start()
        self._publish(run)
        try:
            for subject in run.subjects:
                if run.control.cancelled:
                    subject.state = "cancelled"
                    continue
                run.current = subject.key
                subject.state, subject.phase = "running", "starting"
                self._publish(run)
                try:
                    self._measure(run, subject.key)
                except workload.Cancelled:
                    subject.state = "cancelled"
                except Exception as exc:  # one transport failing must not end the run
                    subject.state = "failed"
                    subject.error = f"{type(exc).__name__}: {exc}"
                else:
                    subject.state = "done"
                subject.phase = None
                run.current = None
                self._publish(run)
        finally:
            timer.cancel()
            with self._lock:
                run.state = "cancelled" if run.control.cancelled else "done"
                run.ended_at = time.time()
            self._publish(run)

    def _time_up(self, run: LabRun) -> None:
        try:
            self.cancel(run, f"stopped at the lab's time limit of {self.max_seconds:g} s")
        except ApiError:
            pass  # it ended just now
