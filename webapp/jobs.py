"""The job service: starts `ipc` children for fork / spawn / exec jobs and turns every callback
into an event on the bus.

A job is one child plus what the explorer shows about it: an unguessable id (a UUID, as
Jupyter's kernel ids: knowing one job's id tells nothing about another's), a short per-run
``number`` for people (#1, #2, ...; never a key), and a bounded copy of its output. Its state,
pid, exit code and signal are the child's own (`ipc.ChildProcess.state`, one vocabulary with
the browser), never a copy. Callbacks run on ipc's single reactor thread, so each one only
records and publishes; nothing here blocks it: ipc hands the job its child (`on_created`)
before any event, so no callback waits for it.
This service is the job's *runner*: the child lives here; its record is published through the
job registry (``registry.py``), so that every server sharing the registry shows it (with
--redis, the ``number`` is given by the registry: one count for every runner).

exec / exec_file jobs are ipc's own streaming exec (`ipc.exec(..., wait=False)`): its output
streams live on the feed like any other job's, and ipc applies ``max_buffer`` and
``kill_signal`` and builds the result (`child.result`); this module only shows it. The job's
deadline (``timeout``, or ``--max-job-seconds``) is its guard's (guard.py), for every kind.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import ipc
from ipc import wire

from .bus import EventBus
from .errors import ApiError, StoreUnavailable
from .guard import CannotConfine, Guards, IsShipped, JobGuard
from .jsontext import without_nan
from .registry import JobRegistry
from .stats import ProcSampler

Hook = Callable[..., None]


@dataclass
class JobSpec:
    """A validated job request (see `validation.py`); `argv` is what will really run."""

    kind: str  # fork | spawn | exec | exec_file
    argv: list[str]
    command: str  # as the client gave it (exec: the shell line)
    args: list[str] = field(default_factory=list)
    program: str | None = None  # fork: the shipped program's name
    runtime: str | None = None
    transport: str = "auto"
    message: Any = None
    has_message: bool = False
    cwd: str | None = None
    env: dict[str, str] | None = None
    shell: bool = False  # exec with --allow-any-command: run through /bin/sh
    timeout: float = 0.0
    max_buffer: int = 1024 * 1024
    kill_signal: str = "SIGTERM"
    #: spawn: each stdio entry "pipe" or "ignore"; entries 3+ are extra pipes (events fd3...).
    stdio: list[str] | None = None
    label: str | None = None  # e.g. "demo /getSum"


class Job:
    """One child and its record. Mutated on the reactor thread; read under `lock`."""

    def __init__(
        self, job_id: str, spec: JobSpec, output_cap: int, number: int = 0, host: str = "local"
    ) -> None:
        self.id = job_id
        self.number = number
        self.spec = spec
        self.host = host  # the runner's name
        self.lock = threading.Lock()
        #: Set by ipc (`on_created`) before the child starts, so before any of its events.
        self.child: ipc.ChildProcess | None = None
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.error: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None  # exec kinds
        self.closed = threading.Event()
        self.output_cap = output_cap
        self.output: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.output_bytes = 0  # all output seen, kept or not
        self.output_truncated = False
        self.messages_in = 0
        self.messages_out = 0
        self.decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace")
            for s in ("stdout", "stderr", *(f"fd{i}" for i in range(3, len(spec.stdio or ()))))
        }
        self.hooks: dict[str, list[Hook]] = {}
        #: Held by a request's POST /send from the queue check to the send (send_checked).
        self.send_lock = threading.Lock()
        self.stdin_queue: queue.Queue[tuple[bytes, bool]] | None = None
        self.stdin_pending = 0
        #: Its confinement, cgroup and end (guard.py); set before the child starts.
        self.guard: JobGuard | None = None

    # What the child says, not a copy of it.

    @property
    def state(self) -> ipc.State:
        return self.child.state if self.child is not None else ipc.State.STARTING

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    @property
    def transport(self) -> str | None:
        return self.child.transport if self.child is not None else None

    @property
    def exit_code(self) -> int | None:
        return self.child.exit_code if self.child is not None else None

    @property
    def signal(self) -> str | None:
        return self.child.signal_code if self.child is not None else None

    @property
    def timed_out(self) -> bool:
        """Its deadline (`timeout`, or the server's --max-job-seconds) ended it."""
        return self.guard is not None and self.guard.timed_out

    @property
    def live(self) -> bool:
        return not self.closed.is_set()

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        with self.lock:
            data = {
                "id": self.id,
                "number": self.number,
                "host": self.host,
                "kind": spec.kind,
                "label": spec.label,
                "program": spec.program,
                "runtime": spec.runtime,
                "command": spec.command,
                "args": spec.args,
                "pid": self.pid,
                "state": self.state.value,
                "transport": self.transport,
                "connected": bool(self.child is not None and self.child.connected),
                "killed": bool(self.child is not None and self.child.killed),
                "started_at": self.started_at,
                "ended_at": self.ended_at,
                "exit_code": self.exit_code,
                "signal": self.signal,
                "error": self.error,
                "messages_in": self.messages_in,
                "messages_out": self.messages_out,
                "output_bytes": self.output_bytes,
                "output_truncated": self.output_truncated,
                "confinement": self.guard.to_dict() if self.guard is not None else None,
                "timeout": spec.timeout,
                "timed_out": self.timed_out,
            }
            if spec.kind in ("exec", "exec_file"):
                data["max_buffer"] = spec.max_buffer
                data["result"] = self.result
        return data

    def output_dict(self) -> dict[str, Any]:
        """The stdout and stderr kept (up to the output cap in all)."""
        with self.lock:
            return {
                "stdout": self.output["stdout"].decode("utf-8", "replace"),
                "stderr": self.output["stderr"].decode("utf-8", "replace"),
                "bytes": self.output_bytes,
                "truncated": self.output_truncated,
                "limit": self.output_cap,
            }


class JobService:
    """Owns this runner's jobs: starting, limits, kill / send / stdin, forgetting, shutdown."""

    def __init__(
        self,
        config: dict[str, Any],
        bus: EventBus,
        registry: JobRegistry,
        is_shipped: IsShipped | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.registry = registry
        self.guards = Guards(config, is_shipped)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._sampler: ProcSampler | None = None

    # ---- queries ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}; GET /api/jobs lists the jobs")
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def live_count(self) -> int:
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.live)

    def live_jobs(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.live]

    # ---- starting ---------------------------------------------------------------------------

    def start(self, spec: JobSpec, hooks: dict[str, list[Hook]] | None = None) -> Job:
        """Start `spec` as a new job; `hooks` are extra callbacks (the demos' answer).

        Once the job holds a slot (it is registered and counts as live), every way out but
        success goes through one ``finally`` that gives the slot back and releases the job's
        guard and cgroup (`_give_back`): a refusal from ipc or from the guard, and any failure
        nobody foresaw.

        :raises ApiError: 503 while stopping or without the job's cgroup, 429 at the
            live-children limit, 400 when ipc refuses the options (e.g. transport "pipe" for a
            Node child) or the job cannot run confined.
        """
        if spec.has_message:
            self.check_message(spec.message)
        if self.stopping.is_set():
            raise ApiError(503, "the server is stopping; start the job after it restarts")
        limit = self.config["MAX_CHILDREN"]
        number = self.registry.next_number()  # (Redis: a round trip, so not under the lock)
        with self._lock:
            live = sum(1 for job in self._jobs.values() if job.live)
            if live >= limit:
                raise ApiError(
                    429,
                    f"{live} children are running, the limit is {limit}; wait for one to "
                    "end or kill one (POST /api/jobs/<id>/kill), or start the server with "
                    "a higher --max-children",
                    limit=limit,
                )
            job = Job(
                str(uuid.uuid4()),
                spec,
                self.config["MAX_OUTPUT_PER_JOB"],
                number=number,
                host=self.registry.runner,
            )
            job.hooks = {k: list(v) for k, v in (hooks or {}).items()}
            self._jobs[job.id] = job
            trimmed = self._trim()
        for old in trimmed:
            self.registry.drop(old)
            self.bus.forget(old)
        started = False
        try:
            self.registry.add(job)  # every server sees it from now on
            self._launch(job)
            started = True
        except ApiError:
            raise
        except (ipc.InvalidArgumentError, ipc.SpawnError, ipc.SerializationError) as exc:
            raise ApiError(400, str(exc), code=getattr(exc, "code", None)) from None
        finally:
            if not started:
                self._give_back(job)
        self._ensure_sampler()
        return job

    def _give_back(self, job: Job) -> None:
        """Undo a start that failed: forget the job (its slot is free again), and end what was
        made before the failure. Without a child, the guard is released here (its cgroup
        removed); with one, SIGKILL goes to its group and cgroup, ipc reaps it, and its
        `close` releases the guard as every job's does."""
        with self._lock:
            self._jobs.pop(job.id, None)
        job.closed.set()
        with contextlib.suppress(StoreUnavailable):  # (Redis away: it made no record then)
            self.registry.drop(job.id)
            self.bus.forget(job.id)
        guard, child = job.guard, job.child
        if child is not None and child.returncode is None:
            if guard is not None:
                guard.kill("SIGKILL")
            else:
                child.kill("SIGKILL")
        elif guard is not None:
            guard.closed()

    def _trim(self) -> list[str]:
        """Take the oldest finished jobs past MAX_JOBS_KEPT out (under `_lock`); returns
        their ids, for the registry and the bus to forget (outside the lock)."""
        excess = len(self._jobs) - self.config["MAX_JOBS_KEPT"]
        if excess <= 0:
            return []
        old = [j.id for j in self._jobs.values() if not j.live][:excess]
        for job_id in old:
            del self._jobs[job_id]
        return old

    def _launch(self, job: Job) -> None:
        spec = job.spec
        guard = job.guard = self._guard(job)

        def created(child: ipc.ChildProcess) -> None:  # before the child starts
            job.child = child
            guard.started(child)

        common: dict[str, Any] = {
            "cwd": spec.cwd,
            "env": guard.env,
            "listeners": self._listeners(job),
            "on_created": created,
            "wrapper": guard.wrapper,
            "kill_signal": spec.kill_signal,
        }
        # exec's own kill (output over max_buffer; the guard ends what is left after it, see
        # JobGuard.child_exited) is followed by SIGKILL after the grace, as the guard's
        # deadline is: a child that ignores kill_signal must still end. fork and spawn have no
        # kill of ipc's own (their deadline is the guard's), so nothing to escalate there.
        exec_limits = {"max_buffer": spec.max_buffer, "kill_after": guard.grace}
        # A failure from here on is undone by start's `_give_back` (the guard, the child).
        if spec.kind == "fork":
            ipc.fork(
                spec.argv[0],
                spec.args,
                transport=spec.transport,
                silent=True,
                max_message_size=self.config["MAX_MESSAGE_BYTES"],
                **common,
            )
        elif spec.kind == "spawn":
            stdio = spec.stdio or ["pipe", "pipe", "pipe"]
            ipc.spawn(spec.argv[0], spec.argv[1:], stdio=stdio, **common)
        elif spec.shell:  # exec with --allow-any-command: the line as the shell reads it
            ipc.exec(spec.command, wait=False, **exec_limits, **common)
        else:  # exec of a plain command (already split and checked), or exec_file
            ipc.exec_file(spec.argv[0], spec.argv[1:], wait=False, **exec_limits, **common)

    def _guard(self, job: Job) -> JobGuard:
        """The job's confinement and cgroup.

        :raises ApiError: 400 when it cannot run confined, 503 without its cgroup.
        """
        try:
            return self.guards.guard(job.id, job.spec)
        except CannotConfine as exc:
            raise ApiError(400, str(exc)) from None
        except OSError as exc:
            raise ApiError(
                503,
                f"cannot create job {job.id}'s cgroup ({exc}); try again, or start the server "
                "with --no-cgroups",
            ) from None

    def _listeners(self, job: Job) -> dict[str, Callable[..., Any]]:
        """ipc callbacks for `job` (reactor thread: record, publish, return)."""

        def publish(type_: str, data: dict[str, Any] | None = None) -> None:
            self.bus.publish(job.id, job.pid, type_, data)

        def run_hooks(event: str, *args: Any) -> None:
            for hook in job.hooks.get(event, ()):
                try:
                    hook(*args)
                except Exception as exc:  # a hook must not take the reactor down
                    print(f"webapp: hook for {event} failed: {exc!r}", file=sys.stderr)

        def on_spawn() -> None:
            argv = job.spec.argv if not job.spec.shell else ["/bin/sh", "-c", job.spec.command]
            publish(
                "spawn",
                {
                    "kind": job.spec.kind,
                    "argv": argv,
                    "program": job.spec.program,
                    "transport": job.transport,
                    "ppid": _own_pid(),
                },
            )
            if job.spec.kind == "fork" and job.spec.has_message:
                try:  # after `spawn`, as the timeline shows it
                    self._deliver(job, job.spec.message)
                except ApiError as exc:
                    publish("error", {"message": exc.message, "code": "ERR_FIRST_MESSAGE"})
            run_hooks("spawn")

        def on_message(msg: Any) -> None:
            msg = without_nan(msg)  # a raw child may send NaN, which no browser can parse
            with job.lock:
                job.messages_in += 1
            publish("message", {"direction": "to_parent", "message": msg})
            run_hooks("message", msg)

        def on_output(stream: str, data: bytes) -> None:
            text = job.decoders[stream].decode(data)
            if stream in ("stdout", "stderr"):
                self._keep_output(job, stream, data)
            publish(stream, {"text": text, "bytes": len(data)})

        def on_exit(code: int | None, sig: str | None) -> None:
            with job.lock:
                job.ended_at = time.time()
            if job.guard is not None:
                job.guard.child_exited()
            publish("exit", {"code": code, "signal": sig})
            run_hooks("exit", code, sig)

        def on_close(code: int | None, sig: str | None) -> None:
            for stream, decoder in job.decoders.items():
                rest = decoder.decode(b"", final=True)
                if rest:
                    publish(stream, {"text": rest, "bytes": 0})
            result = job.child.result if job.child is not None else None
            with job.lock:
                if job.ended_at is None:
                    job.ended_at = time.time()
                if result is not None:  # exec kinds: resolved by ipc before this listener
                    job.result = _exec_result(job, result)
            if job.guard is not None:
                job.guard.closed()  # its cgroup goes (or soon: a task just killed lingers)
            publish("close", {"code": code, "signal": sig})
            job.closed.set()
            if job.stdin_queue is not None:
                job.stdin_queue.put((b"", True))
            run_hooks("close", code, sig)

        def on_error(exc: BaseException) -> None:
            info = exc.to_dict() if hasattr(exc, "to_dict") else {"message": str(exc)}
            with job.lock:
                if isinstance(exc, ipc.SpawnError):
                    job.error = info
            publish("error", info)
            run_hooks("error", exc)

        def on_disconnect() -> None:
            publish("disconnect", {})
            run_hooks("disconnect")

        listeners: dict[str, Callable[..., Any]] = {
            "spawn": on_spawn,
            "stdout": lambda data: on_output("stdout", data),
            "stderr": lambda data: on_output("stderr", data),
            **{
                f"fd{i}": (lambda data, name=f"fd{i}": on_output(name, data))
                for i, mode in enumerate(job.spec.stdio or ())
                if i >= 3 and mode == "pipe"
            },
            "exit": on_exit,
            "close": on_close,
            "error": on_error,
        }
        if job.spec.kind == "fork":
            listeners["message"] = on_message
            listeners["disconnect"] = on_disconnect
        return listeners

    def _keep_output(self, job: Job, stream: str, data: bytes) -> None:
        """The bounded copy for GET /output (exec's own max_buffer is ipc's business)."""
        with job.lock:
            job.output_bytes += len(data)
            kept = sum(len(b) for b in job.output.values())
            room = job.output_cap - kept
            if len(data) > room:
                job.output_truncated = True
            if room > 0:
                job.output[stream] += data[:room]

    # ---- actions ----------------------------------------------------------------------------

    def kill(self, job: Job, sig: str) -> bool:
        """Signal the job: its process group and every process of its cgroup (a grandchild
        that left the group too). A job whose main child has exited but that has not closed
        (something still holds its pipes) can be killed as well.

        :raises ApiError: 409 when the job has closed.
        """
        if job.child is None or job.guard is None or not job.live or job.state == "failed":
            raise ApiError(
                409,
                f"job {job.id} is not running (state {job.state}); nothing to signal",
            )
        return job.guard.kill(sig)

    def stop(self, job: Job, sig: str) -> bool:
        """Signal a job that may have ended meanwhile (the demos' timers): through its guard,
        as every kill, so its cgroup and what it left behind are reached too; nothing once it
        has closed. Returns whether any process got it."""
        if job.child is None or job.guard is None or not job.live:
            return False
        return job.guard.kill(sig)

    def send(self, job: Job, message: Any) -> bool:
        """Send `message` to a fork job; returns whether its channel is below ipc's high-water
        mark.

        :raises ApiError: 409 without an open channel, 429 while too much waits on it.
        """
        if job.spec.kind != "fork":
            raise ApiError(
                409, f"job {job.id} is a {job.spec.kind} job: only fork jobs have a channel"
            )
        if job.child is None or not job.child.connected:
            raise ApiError(409, f"job {job.id}'s channel is closed; start a new fork job")
        self.check_message(message)
        with job.send_lock:  # the check and the send as one: two requests cannot both pass
            self._check_send_queue(job, message)
            return self._deliver(job, message)

    def _check_send_queue(self, job: Job, message: Any) -> None:
        """Refuse a message that would leave more than MAX_SEND_QUEUE_BYTES waiting on the
        job's channel (one message is always let through an empty channel).

        ipc's `send()` queues whatever it is given and only says (False) that the channel is
        past its high-water mark, as Node's does; a child that does not read (busy, stopped
        with SIGSTOP, or never reading) would otherwise make the server hold every message
        sent to it.

        :raises ApiError: 429, saying how much waits and how to go on.
        """
        assert job.child is not None
        queued = job.child.queued_bytes
        limit = self.config["MAX_SEND_QUEUE_BYTES"]
        if queued and queued + _frame_size(message) > limit:
            raise ApiError(
                429,
                f"{queued} bytes sent to job {job.id} are still waiting for its child to read "
                f"them (the limit is {limit} bytes, --max-send-queue); wait until it reads "
                "them before sending more",
                queued=queued,
                limit=limit,
            )

    def check_message(self, message: Any) -> None:
        """:raises ApiError: 413 over MAX_MESSAGE_BYTES, 400 when not JSON-serialisable."""
        try:
            size = len(json.dumps(message, ensure_ascii=False, allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"the message cannot be sent as JSON: {exc}") from None
        limit = self.config["MAX_MESSAGE_BYTES"]
        if size > limit:
            raise ApiError(
                413, f"the message is {size} bytes as JSON, over the {limit}-byte limit; send less"
            )

    def _deliver(self, job: Job, message: Any) -> bool:
        assert job.child is not None
        with job.lock:
            job.messages_out += 1
        self.bus.publish(job.id, job.pid, "message", {"direction": "to_child", "message": message})
        try:
            return job.child.send(message)
        except ipc.MessageTooLargeError as exc:  # the wire encoding can be larger than ours
            raise ApiError(413, f"{exc}; send a smaller message") from None
        except ipc.SerializationError as exc:
            raise ApiError(400, f"the message cannot be sent: {exc}") from None

    def write_stdin(self, job: Job, data: bytes, end: bool) -> int:
        """Queue `data` for the child's stdin; a writer thread per job does the (blocking)
        write, so a child that never reads cannot hang a request thread.

        :raises ApiError: 409 when the job has no stdin, 429 when too much is pending.
        """
        if job.spec.kind != "spawn":
            raise ApiError(
                409, f"job {job.id} is a {job.spec.kind} job; only spawn jobs take stdin"
            )
        if not job.live:
            raise ApiError(409, f"job {job.id} has ended; its stdin is closed")
        limit = self.config["MAX_CONTENT_LENGTH"]
        with job.lock:
            if job.stdin_queue is None:
                job.stdin_queue = queue.Queue()
                threading.Thread(
                    target=self._stdin_writer, args=(job,), name=f"stdin-{job.id}", daemon=True
                ).start()
            if job.stdin_pending + len(data) > limit:
                raise ApiError(
                    429,
                    f"{job.stdin_pending} bytes are still waiting for job {job.id} to read its "
                    "stdin; wait before sending more",
                )
            job.stdin_pending += len(data)
            job.stdin_queue.put((data, end))
        return len(data)

    def _stdin_writer(self, job: Job) -> None:
        assert job.stdin_queue is not None
        while True:
            data, end = job.stdin_queue.get()
            child = job.child
            try:
                if data and child is not None:
                    child.write_stdin(data)
                if end and child is not None:
                    child.end_stdin()
            except ipc.IPCError as exc:
                self.bus.publish(job.id, job.pid, "error", exc.to_dict())
                end = True
            finally:
                with job.lock:
                    job.stdin_pending -= len(data)
            if end or job.closed.is_set():
                return

    def forget(self, job: Job) -> None:
        """Forget a finished job and its events. :raises ApiError: 409 while it runs."""
        if job.live:
            raise ApiError(409, f"job {job.id} is still running; kill it first")
        with self._lock:
            self._jobs.pop(job.id, None)
        self.registry.drop(job.id)
        self.bus.forget(job.id)

    # ---- stats and shutdown -----------------------------------------------------------------

    def _ensure_sampler(self) -> None:
        interval = self.config["STATS_INTERVAL"]
        if not interval:
            return
        with self._lock:
            if self._sampler is None:
                self._sampler = ProcSampler(interval, self._sample_targets, self._publish_stats)
                self._sampler.start()

    def _sample_targets(self) -> list[tuple[str, int]]:
        return [
            (j.id, j.pid) for j in self.live_jobs() if j.pid is not None and j.state == "running"
        ]

    def _publish_stats(self, job_id: str, pid: int, stats: dict[str, Any]) -> None:
        self.bus.publish(job_id, pid, "stats", stats)

    def shutdown(self, grace: float | None = None) -> list[Job]:
        """Stop every child: TERM to each process group, KILL after `grace`, reap them all.

        :returns: the jobs that were still running, so the caller can say what it stopped.
        """
        self.stopping.set()
        if self._sampler is not None:
            self._sampler.stop()
        running = [job for job in self.live_jobs() if job.child is not None]
        ipc.shutdown(grace=self.config["SHUTDOWN_GRACE"] if grace is None else grace)
        self.guards.shutdown()  # what left the process groups (setsid), and the cgroups
        return running


def _exec_result(job: Job, result: Future[ipc.ExecResult]) -> dict[str, Any]:
    """ipc's exec result (done) as the JSON of Node's exec callback: error or not, and why."""
    error = result.exception()
    if error is None:
        done = result.result()
        return {
            "ok": True,
            "error": None,
            "stdout": done.stdout,
            "stderr": done.stderr,
            "exit_code": done.exit_code,
            "signal": None,
            "timed_out": False,
            "max_buffer_exceeded": False,
        }
    assert isinstance(error, ipc.ExecError)  # the only exception ipc sets on it
    if job.state == ipc.State.FAILED or error.max_buffer_exceeded:
        reason = str(error)  # the start failure, or "stdout maxBuffer length exceeded (N bytes)"
    elif job.timed_out:  # the job's deadline is its guard's
        deadline = job.guard.deadline if job.guard is not None else job.spec.timeout
        reason = f"Command timed out after {deadline} s"
    else:
        sig, code = error.signal, error.exit_code
        reason = f"Command failed with {'signal ' + sig if sig else f'exit code {code}'}"
    return {
        "ok": False,
        "error": reason,
        "stdout": error.stdout,
        "stderr": error.stderr,
        "exit_code": error.exit_code,
        "signal": error.signal,
        "timed_out": job.timed_out,
        "max_buffer_exceeded": error.max_buffer_exceeded,
    }


def _frame_size(message: Any) -> int:
    """The bytes `message` takes on a fork job's channel (Node's JSON lines); 0 when it cannot
    be encoded (sending it then fails with the reason)."""
    try:
        return len(wire.encode(message, max_size=sys.maxsize))
    except ipc.IPCError:
        return 0


def _own_pid() -> int:
    import os

    return os.getpid()
