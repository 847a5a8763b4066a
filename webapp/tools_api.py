"""Blueprint ``/api`` for the explorer's measuring and inspecting tools.

* the transport lab (``lab.py``): ``GET /api/lab``, ``POST /api/lab/runs``,
  ``GET`` / ``DELETE /api/lab/runs/<id>``;
* the fd inspector (``fdinspect.py``): ``GET /api/jobs/<id>/fds``;
* the trace export (``trace.py``): ``GET /api/trace?job=<id>`` (no job: every kept job);
* the frame inspector (``frames.py``): ``POST`` / ``GET`` / ``DELETE /api/jobs/<id>/frames``;

Kept apart from ``api.py`` (jobs) because each tool is a service of its own; the rules are
the same: each route says what it takes and answers with `operation(...)` (openapi.py), which
reads and checks a body against schemas.py's shapes before the view runs, so it is validated
and described in ``/api/openapi.json`` at once; a refusal is a 4xx that says how to fix it.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import fdinspect, frames, lab, trace
from .errors import ApiError
from .openapi import operation
from .services import services

bp = Blueprint("tools", __name__, url_prefix="/api")


# ---- transport lab ----------------------------------------------------------------------------


@bp.get("/lab")
@operation("the transport lab: the latest run, the subjects, the bounds", {200: "Lab"}, tag="lab")
def lab_status() -> Response:
    """The latest run (or null), what can be measured here, the defaults and the bounds."""
    latest = services().lab.latest()
    return jsonify(
        run=latest.snapshot() if latest else None,
        subjects=[
            {"key": key, "label": lab.LABELS[key], "note": lab.NOTES[key]}
            for key in lab.available_subjects()
        ],
        defaults=lab.DEFAULTS,
        limits={name: {"min": low, "max": high} for name, (low, high) in lab.LIMITS.items()},
        max_seconds=services().lab.max_seconds,
    )


@bp.post("/lab/runs")
@operation(
    "start a lab run (one at a time: 409 while one runs)",
    {202: "LabRunAnswer"},
    body="LabRunRequest",
    body_required=False,
    tag="lab",
)
def lab_start(body: dict[str, Any]) -> tuple[Response, int]:
    """Start a run: ``{"rtt", "msgs", "big", "warmup", "subjects"}``, all optional. 202; its
    numbers arrive as ``lab`` events on the feed."""
    run = services().lab.start(body)
    return jsonify(run=run.snapshot()), 202


@bp.get("/lab/runs/<run_id>")
@operation("one lab run", {200: "LabRunAnswer"}, tag="lab")
def lab_show(run_id: str) -> Response:
    return jsonify(run=services().lab.get(run_id).snapshot())


@bp.delete("/lab/runs/<run_id>")
@operation("cancel a lab run (it kills the child being measured)", {202: "LabRunAnswer"}, tag="lab")
def lab_cancel(run_id: str) -> tuple[Response, int]:
    runner = services().lab
    run = runner.get(run_id)
    runner.cancel(run)
    return jsonify(run=run.snapshot()), 202


# ---- fd inspector -----------------------------------------------------------------------------


def _local_job(job_id: str) -> Any:
    """The job, if its child runs in this process: its fds and channel bytes can only be read
    where it runs.

    :raises ApiError: 404 unknown job, 409 a job of another runner (with --redis).
    """
    s = services()
    record = s.directory.get(job_id)
    if record.get("host", s.registry.runner) != s.registry.runner:
        raise ApiError(
            409,
            f"job {job_id} runs on runner {record['host']!r}, not in this server: its fds and "
            "channel bytes can be read only where its child runs",
        )
    return s.jobs.get(job_id)


def _running_child_pid(job_id: str) -> tuple[Any, int]:
    """The job and its pid, while the child runs (not yet reaped: the pid is still its own).

    :raises ApiError: 404 unknown job, 409 a job whose child is not running.
    """
    job = _local_job(job_id)
    child = job.child
    if child is None or job.pid is None or child.returncode is not None or not job.live:
        raise ApiError(
            409,
            f"job {job.id} is not running (state {job.state}): a child's fds exist only while "
            "it runs; select a running job",
        )
    return job, job.pid


@bp.get("/jobs/<job_id>/fds")
@operation("a running child's open fds and the server's end of each", {200: "Fds"}, tag="inspect")
def job_fds(job_id: str) -> Response:
    """The child's open fds from /proc, each matched to the server's fd on its other end."""
    job, pid = _running_child_pid(job_id)
    extra = tuple(i for i, mode in enumerate(job.spec.stdio or ()) if i >= 3 and mode == "pipe")
    try:
        snapshot = fdinspect.inspect(pid, os.getpid(), transport=job.transport, extra_stdio=extra)
    except fdinspect.ProcessGone:
        snapshot = None
    if snapshot is None or job.child is None or job.child.returncode is not None:
        raise ApiError(409, f"job {job.id} exited while its fds were read; they are closed now")
    return jsonify(job=job.id, kind=job.spec.kind, program=job.spec.program, **snapshot)


# ---- trace export -----------------------------------------------------------------------------


@bp.get("/trace")
@operation(
    "the jobs as a Chrome Trace Event Format download",
    {200: "Trace"},
    query=("job",),
    tag="inspect",
)
def export_trace() -> Response:
    """Chrome Trace Event Format JSON of one job (``?job=<id>``) or of every kept job, as a
    download that Perfetto (ui.perfetto.dev) and chrome://tracing open."""
    s = services()
    job_id = request.args.get("job")
    if job_id is not None and not job_id:
        raise ApiError(400, "'job' is empty; give a job id (GET /api/jobs) or leave it out for all")
    records = [s.directory.get(job_id)] if job_id is not None else s.directory.list()
    events = {record["id"]: s.bus.events(record["id"]) for record in records}
    document = trace.build(records, events, server_pid=os.getpid())
    name = f"ipc-explorer-{job_id or 'all'}-trace.json"
    response = jsonify(document)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# ---- frame inspector --------------------------------------------------------------------------


@bp.post("/jobs/<job_id>/frames")
@operation(
    "record the bytes of a fork job's channel from now on",
    {201: "Capture"},
    body="FramesRequest",
    body_required=False,
    tag="inspect",
)
def frames_start(job_id: str, body: dict[str, Any]) -> tuple[Response, int]:
    """Record the bytes of a fork job's channel from now on: ``{"max_bytes": 16384}``."""
    s = services()
    job = _local_job(job_id)
    capture = s.frames.start(job, body.get("max_bytes", frames.DEFAULT_LIMIT))
    return jsonify(capture.snapshot()), 201


@bp.get("/jobs/<job_id>/frames")
@operation("the bytes recorded so far and the frames they carry", {200: "Capture"}, tag="inspect")
def frames_show(job_id: str) -> Response:
    """The bytes recorded so far, cut by read()/write(), and the frames they carry."""
    s = services()
    job = _local_job(job_id)
    capture = s.frames.get(job.id)
    if capture.full:
        s.frames.release(job, capture)  # full: stop paying for the tap
    return jsonify(capture.snapshot())


@bp.delete("/jobs/<job_id>/frames")
@operation("stop recording (the bytes kept stay)", {200: "Capture"}, tag="inspect")
def frames_stop(job_id: str) -> Response:
    s = services()
    return jsonify(s.frames.stop(_local_job(job_id)).snapshot())
