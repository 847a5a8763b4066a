"""Blueprint ``/api``: jobs over REST, JSON in and out.

Every handler validates first and acts second, so a refused request changes nothing; every
refusal is ``{"error": "..."}`` with a 4xx that says how to fix it (errors.py). Each route says
what it takes and answers with `operation(...)` (openapi.py): that reads and checks the body
against schemas.py's shapes, and ``GET /api/openapi.json`` publishes the same shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from . import validation
from .errors import ApiError, StoreUnavailable
from .jsoncheck import ShapeError
from .openapi import checker, document, operation
from .schemas import QUERY
from .security import accepted_hosts
from .services import services

bp = Blueprint("api", __name__, url_prefix="/api")


def _after() -> int:
    """The ``after`` query parameter, checked against its declared schema (schemas.QUERY)."""
    raw = request.args.get("after", "0")
    try:
        after = int(raw)
    except ValueError:
        raise ApiError(
            400, f"'after' must be an integer seq (0 for everything), not {raw!r}"
        ) from None
    try:
        checker().check(QUERY["after"]["schema"], after, ("after",))
    except ShapeError as exc:
        raise ApiError(400, str(exc)) from None
    return after


def _wants_ndjson() -> bool:
    fmt = request.args.get("format")
    if fmt not in (None, *QUERY["format"]["schema"]["enum"]):
        raise ApiError(400, f"'format' must be json or ndjson, not {fmt!r}")
    return fmt == "ndjson" or (
        fmt is None
        and request.accept_mimetypes.best_match(["application/json", "application/x-ndjson"])
        == "application/x-ndjson"
    )


@bp.get("/openapi.json")
@operation("this description (OpenAPI 3.1)", {200: "OpenAPI"}, tag="meta")
def openapi_document() -> Response:
    return jsonify(document(current_app))


@bp.get("/programs")
@operation("the child programs a fork job may name", {200: "Programs"}, tag="programs")
def programs() -> Response:
    """The child programs a fork job may name."""
    return jsonify(
        programs=[
            {"name": p.name, "runtime": p.runtime, "description": p.description, **p.info}
            for p in services().programs.list()
        ]
    )


@bp.get("/jobs")
@operation("every job kept", {200: "JobList"})
def list_jobs() -> Response:
    return jsonify(jobs=services().directory.list())


@bp.post("/jobs")
@operation("start a job (here, or on the runner its 'host' names)", {201: "Job"}, body="JobRequest")
def create_job(body: dict[str, Any]) -> tuple[Response, int]:
    """Start a job here, or with ``"host": "<runner>"`` on that runner (GET /api/hosts)."""
    return jsonify(services().directory.start(body)), 201


@bp.get("/jobs/<job_id>")
@operation("one job", {200: "Job"})
def show_job(job_id: str) -> Response:
    return jsonify(services().directory.get(job_id))


@bp.delete("/jobs/<job_id>")
@operation("forget a finished job and its events", {204: None})
def forget_job(job_id: str) -> tuple[str, int]:
    services().directory.forget(job_id)
    return "", 204


@bp.get("/jobs/<job_id>/events")
@operation("a job's kept events", {200: "EventList"}, query=("after", "format"), ndjson=True)
def job_events(job_id: str) -> Response:
    """``{"events": [...]}``; NDJSON (one event a line) with ``Accept: application/x-ndjson``
    or ``?format=ndjson`` for export."""
    s = services()
    s.directory.get(job_id)
    after = _after()
    if _wants_ndjson():

        def lines() -> Iterator[str]:
            for text in s.bus.iter_texts(job_id, after):
                yield text + "\n"

        return Response(
            stream_with_context(lines()),
            mimetype="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{job_id}-events.ndjson"'},
        )
    return jsonify(events=s.bus.events(job_id, after), last_seq=s.bus.last_seq)


@bp.get("/events")
@operation("every kept event", {200: "EventList"}, query=("after",), tag="events")
def all_events() -> Response:
    s = services()
    return jsonify(events=s.bus.events(None, _after()), last_seq=s.bus.last_seq)


@bp.get("/jobs/<job_id>/output")
@operation("a job's kept stdout and stderr", {200: "Output"})
def job_output(job_id: str) -> Response:
    """The job's stdout and stderr as kept (up to MAX_OUTPUT_PER_JOB in all)."""
    return jsonify(services().directory.output(job_id))


@bp.post("/jobs/<job_id>/kill")
@operation("signal a job's process group", {202: "Killed"}, body="KillRequest", body_required=False)
def kill_job(job_id: str, body: dict[str, Any]) -> tuple[Response, int]:
    directory = services().directory
    directory.get(job_id)
    sig = validation.signal_name(body.get("signal", "SIGTERM"))
    job, delivered = directory.kill(job_id, sig)
    return jsonify(job=job, signal=sig, delivered=delivered), 202


@bp.post("/jobs/<job_id>/send")
@operation("send a message to a fork job's child", {202: "Queued"}, body="SendRequest")
def send_message(job_id: str, body: dict[str, Any]) -> tuple[Response, int]:
    ok = services().directory.send(job_id, body["message"])
    return jsonify(queued=True, below_high_water=ok), 202


@bp.post("/jobs/<job_id>/stdin")
@operation("write to a spawn job's stdin", {202: "Queued"}, body="StdinRequest")
def write_stdin(job_id: str, body: dict[str, Any]) -> tuple[Response, int]:
    data, end = body.get("data", ""), body.get("end", False)
    written = services().directory.write_stdin(job_id, data, end)
    return jsonify(queued=written, end=end), 202


@bp.get("/heartbeat")
@operation("how late the server's ticker runs", {200: "Heartbeat"}, tag="server")
def heartbeat() -> Response:
    """How late the server's ticker runs right now (see heartbeat.py)."""
    return jsonify(services().heartbeat.snapshot())


@bp.get("/hosts")
@operation("the runners sharing this server's jobs", {200: "HostList"}, tag="server")
def hosts() -> Response:
    """The runners sharing this server's jobs: name, pid, live children, capacity, last
    heartbeat (just this server without --redis)."""
    return jsonify(hosts=services().directory.hosts())


#: The settings /api/status reports as `limits` (lower-cased): everything a request, a client
#: or a job is bounded by here (the children's own limits are under `children`).
LIMITS = (
    "MAX_CHILDREN",
    "MAX_CONTENT_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MAX_OUTPUT_PER_JOB",
    "MAX_EVENTS_PER_JOB",
    "MAX_HISTORY_BYTES_PER_JOB",
    "MAX_JOBS_KEPT",
    "MAX_REPLAY_EVENTS",
    "MAX_FEEDS",
    "WS_MAX_MESSAGE_BYTES",
    "WS_MESSAGE_RATE",
    "WS_PING_INTERVAL",
    "SUBSCRIBER_QUEUE_EVENTS",
    "SUBSCRIBER_QUEUE_BYTES",
    "MAX_TIMEOUT",
    "MAX_MAX_BUFFER",
    "MAX_JOB_SECONDS",
    "JOB_KILL_GRACE",
    "DEMO_TIMEOUT",
    "SHUTDOWN_GRACE",
)


@bp.get("/status")
@operation("the server's limits and counts", {200: "Status"}, tag="server")
def status() -> Response:
    """This server's numbers; answers even while Redis is away (``store`` says so)."""
    s = services()
    store = s.bus.health()
    try:
        jobs: int | None = len(s.directory.list())
        last_seq: int | None = s.bus.last_seq
    except StoreUnavailable:
        jobs = last_seq = None
    return jsonify(
        runner=s.registry.runner,
        store=store,
        live_children=s.jobs.live_count(),
        max_children=s.jobs.config["MAX_CHILDREN"],
        jobs=jobs,
        last_seq=last_seq,
        subscribers=s.bus.subscriber_count(),
        feeds={"in_use": s.feeds.in_use, "capacity": s.feeds.capacity},
        allow_any_command=s.policy.allow_any,
        allowed_commands=sorted(s.policy.allowed),
        command_arguments=s.policy.summaries(),
        allowed_hosts=accepted_hosts(current_app.config, request.environ),
        limits={name.lower(): current_app.config[name] for name in LIMITS},
        children=s.jobs.guards.status(),  # user, defence, limits, cgroups (guard.py)
    )
