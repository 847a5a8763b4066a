"""Blueprint ``/api``: jobs over REST, JSON in and out.

Every handler validates first and acts second, so a refused request changes nothing; every
refusal is ``{"error": "..."}`` with a 4xx that says how to fix it (errors.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context

from . import validation
from .errors import ApiError, StoreUnavailable
from .services import services

bp = Blueprint("api", __name__, url_prefix="/api")


def _body() -> dict[str, Any]:
    """The JSON object body, or a 400 that says what was wrong with it."""
    if not request.is_json:
        raise ApiError(
            400,
            "send a JSON object with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no content type'})",
        )
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, 'the body is not valid JSON; send a JSON object like {"kind": ...}')
    return validation.json_object(body)


def _after() -> int:
    raw = request.args.get("after", "0")
    try:
        after = int(raw)
    except ValueError:
        raise ApiError(
            400, f"'after' must be an integer seq (0 for everything), not {raw!r}"
        ) from None
    if after < 0:
        raise ApiError(400, "'after' must be >= 0")
    return after


@bp.get("/programs")
def programs() -> Response:
    """The child programs a fork job may name."""
    return jsonify(
        programs=[
            {"name": p.name, "runtime": p.runtime, "description": p.description, **p.info}
            for p in services().programs.list()
        ]
    )


@bp.get("/jobs")
def list_jobs() -> Response:
    return jsonify(jobs=services().directory.list())


@bp.post("/jobs")
def create_job() -> tuple[Response, int]:
    """Start a job here, or with ``"host": "<runner>"`` on that runner (GET /api/hosts)."""
    return jsonify(services().directory.start(_body())), 201


@bp.get("/jobs/<job_id>")
def show_job(job_id: str) -> Response:
    return jsonify(services().directory.get(job_id))


@bp.delete("/jobs/<job_id>")
def forget_job(job_id: str) -> tuple[str, int]:
    services().directory.forget(job_id)
    return "", 204


@bp.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    """``{"events": [...]}``; NDJSON (one event a line) with ``Accept: application/x-ndjson``
    or ``?format=ndjson`` for export."""
    s = services()
    s.directory.get(job_id)
    after = _after()
    ndjson = request.args.get("format") == "ndjson" or (
        request.accept_mimetypes.best_match(["application/json", "application/x-ndjson"])
        == "application/x-ndjson"
    )
    if ndjson:

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
def all_events() -> Response:
    s = services()
    return jsonify(events=s.bus.events(None, _after()), last_seq=s.bus.last_seq)


@bp.get("/jobs/<job_id>/output")
def job_output(job_id: str) -> Response:
    """The job's stdout and stderr as kept (up to MAX_OUTPUT_PER_JOB in all)."""
    return jsonify(services().directory.output(job_id))


@bp.post("/jobs/<job_id>/kill")
def kill_job(job_id: str) -> tuple[Response, int]:
    directory = services().directory
    directory.get(job_id)
    body = _body() if request.content_length else {}
    sig = validation.signal_name(body.get("signal", "SIGTERM"))
    job, delivered = directory.kill(job_id, sig)
    return jsonify(job=job, signal=sig, delivered=delivered), 202


@bp.post("/jobs/<job_id>/send")
def send_message(job_id: str) -> tuple[Response, int]:
    directory = services().directory
    directory.get(job_id)
    body = _body()
    if "message" not in body:
        raise ApiError(400, '\'message\' is required: any JSON value, e.g. {"message": "hi"}')
    ok = directory.send(job_id, body["message"])
    return jsonify(queued=True, below_high_water=ok), 202


@bp.post("/jobs/<job_id>/stdin")
def write_stdin(job_id: str) -> tuple[Response, int]:
    directory = services().directory
    directory.get(job_id)
    body = _body()
    data = body.get("data", "")
    end = body.get("end", False)
    if not isinstance(data, str):
        raise ApiError(400, "'data' must be a string (it is written as UTF-8)")
    if not isinstance(end, bool):
        raise ApiError(400, "'end' must be true or false")
    written = directory.write_stdin(job_id, data, end)
    return jsonify(queued=written, end=end), 202


@bp.get("/heartbeat")
def heartbeat() -> Response:
    """How late the server's ticker runs right now (see heartbeat.py)."""
    return jsonify(services().heartbeat.snapshot())


@bp.get("/hosts")
def hosts() -> Response:
    """The runners sharing this server's jobs: name, pid, live children, capacity, last
    heartbeat (just this server without --redis)."""
    return jsonify(hosts=services().directory.hosts())


@bp.get("/status")
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
        children=s.jobs.guards.status(),  # user, defence, limits, cgroups (guard.py)
    )
