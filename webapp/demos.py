"""The seeds' endpoints, each answered by a forked child (or inline, to show the difference).

* ``GET /getSum`` → ``50005000`` (seed 000: sum of 0..10000, the child ``compute.js``);
* ``GET /sum`` → ``sumRes is 4999950000`` (seed 001: 0 <= i < 100000, ``child.js``);
* ``GET /compute?min=0&max=100000000`` → ``结果: <sum>`` (seed 002: min <= i < max,
  ``fork-compute.js``).

``?runtime=python`` (default) forks the shipped ``compute.py``, ``?runtime=node`` the seeds'
own Node scripts, unchanged. ``?transport=`` picks the channel. Each child is a job like any
other, so its events are on the feed. A child that ends without an answer gives ``error``
(status 502) and an ``error`` event; a child that takes longer than DEMO_TIMEOUT is killed (the
job's own deadline, on ipc's reactor: no timer thread per request) and gives ``error`` too
(504): a request never hangs.

``?mode=inline`` computes in the server's own thread instead, as the seeds warn against:
``sum(range(...))`` holds the interpreter for the whole sum, so ``GET /api/heartbeat`` and the
feed's heartbeat show the server late; with a child they do not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

from flask import Blueprint, Response, request

import ipc

from . import validation
from .errors import ApiError
from .jobs import Job, JobService, JobSpec
from .services import services

bp = Blueprint("demos", __name__)

SEED_MESSAGE = "开始计算"  # what the seeds send: "start computing"
#: Seconds a child that answered may stay after its channel closed before it gets SIGTERM.
RELEASE_GRACE: Final = 5.0
#: Seconds past DEMO_TIMEOUT the request waits for the killed child's `close` (a grandchild
#: holding its pipes could delay it) before it answers 504 anyway.
CLOSE_GRACE: Final = 10.0


@dataclass(frozen=True)
class Demo:
    node_program: str
    text: str  # the answer's format, {sum}

    def python_message(self, lo: int, hi: int) -> Any:
        return {"min": lo, "max": hi}


GET_SUM = Demo("compute.js", "{sum}")
SUM = Demo("child.js", "sumRes is {sum}")
COMPUTE = Demo("fork-compute.js", "结果: {sum}")
PYTHON_PROGRAM = "compute.py"


def _text(body: str, status: int = 200) -> Response:
    return Response(
        body, status=status, mimetype="text/plain", content_type="text/plain; charset=utf-8"
    )


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or not value.is_integer():
        raise ApiError(400, f"'{name}' must be an integer (e.g. 100000000 or 1e8), not {raw!r}")
    return int(value)


def _options() -> tuple[str, str, str]:
    mode = request.args.get("mode", "child")
    if mode not in ("child", "inline"):
        raise ApiError(400, f"'mode' must be 'child' (default) or 'inline', not {mode!r}")
    runtime = request.args.get("runtime", "python")
    if runtime not in ("python", "node"):
        raise ApiError(400, f"'runtime' must be 'python' (default) or 'node', not {runtime!r}")
    transport = validation.transport(request.args.get("transport"))
    return mode, runtime, transport


def _answer(demo: Demo, lo: int, hi: int, node_message: Any) -> Response:
    mode, runtime, transport = _options()
    if mode == "inline":
        limit = services().jobs.config["DEMO_MAX_INLINE_RANGE"]
        if hi - lo > limit:
            raise ApiError(400, f"inline mode computes at most {limit} numbers; lower max - min")
        # sum() over a range runs in C without releasing the GIL: the server thread (and every
        # other thread of this worker) is blocked for the whole sum, as a Node server would be.
        return _text(demo.text.format(sum=sum(range(lo, hi))))
    if runtime == "node":
        program, message = demo.node_program, node_message
    else:
        program, message = PYTHON_PROGRAM, demo.python_message(lo, hi)
    if runtime == "node" and transport == "pipe":
        raise ApiError(
            400,
            "transport 'pipe' cannot carry a Node child's channel; use auto, socketpair, "
            "unix or tcp (or runtime=python)",
        )
    result = run_in_child(program, message, transport, label=f"demo {request.path}")
    if result is None:
        return _text("error", 502)
    if result == "timeout":
        return _text("error", 504)
    return _text(demo.text.format(sum=result))


def run_in_child(program: str, message: Any, transport: str, label: str) -> Any:
    """Fork `program`, send `message`, wait for the first number it sends back.

    Returns the number; None when the child ended without one (an ``error`` event says why);
    ``"timeout"`` after DEMO_TIMEOUT (the job's deadline kills the child).
    """
    s = services()
    found = s.programs.get(program)
    if found is None:
        raise ApiError(503, f"the shipped program {program!r} is missing from the catalogue")
    answered = threading.Event()
    box: dict[str, Any] = {}

    def on_message(msg: Any) -> None:
        if "sum" not in box and isinstance(msg, int | float) and not isinstance(msg, bool):
            box["sum"] = int(msg) if isinstance(msg, float) and msg.is_integer() else msg
            answered.set()

    def on_close(code: int | None, sig: str | None) -> None:
        answered.set()

    deadline = s.jobs.config["DEMO_TIMEOUT"]
    spec = JobSpec(
        kind="fork",
        argv=[found.path],
        command=found.name,
        program=found.name,
        runtime=found.runtime,
        transport=transport,
        message=message,
        has_message=True,
        label=label,
        timeout=deadline,
        kill_signal="SIGKILL",
    )
    job = s.jobs.start(spec, hooks={"message": [on_message], "close": [on_close]})
    # Set by the answer, or by `close`: the job's deadline (or the server's shutdown) ends it.
    answered.wait(deadline + CLOSE_GRACE)
    if "sum" in box:
        _release(s.jobs, job)
        return box["sum"]
    if not answered.is_set() or job.timed_out:
        s.jobs.stop(job, "SIGKILL")
        s.bus.publish(job.id, job.pid, "error", {"message": f"no answer within {deadline} s"})
        return "timeout"
    reason = (
        job.error["message"]
        if job.error
        else (f"the child ended without an answer (exit code {job.exit_code}, signal {job.signal})")
    )
    s.bus.publish(job.id, job.pid, "error", {"message": reason, "code": "ERR_NO_ANSWER"})
    return None


def _release(jobs: JobService, job: Job, grace: float = RELEASE_GRACE) -> None:
    """Let a child that keeps listening (the seeds' Node children) finish: close its channel,
    and kill the job if it is still there `grace` seconds later (through its guard, as every
    kill: what it left behind is ended too)."""
    child = job.child
    if child is None or not job.live:
        return
    if child.connected:
        try:
            child.disconnect()
        except ipc.ChannelClosedError:  # it closed meanwhile
            pass
    ipc.call_later(grace, jobs.stop, job, "SIGTERM")


@bp.get("/getSum")
def get_sum() -> Response:
    return _answer(GET_SUM, 0, 10001, SEED_MESSAGE)


@bp.get("/sum")
def sum_() -> Response:
    return _answer(SUM, 0, 100000, SEED_MESSAGE)


@bp.get("/compute")
def compute() -> Response:
    lo = _int_arg("min", 0)
    hi = _int_arg("max", 100_000_000)
    limit = services().jobs.config["DEMO_MAX_RANGE"]
    if hi - lo > limit:
        raise ApiError(400, f"max - min is {hi - lo}; the most allowed is {limit}")
    return _answer(COMPUTE, lo, hi, {"min": lo, "max": hi})
