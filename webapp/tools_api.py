"""Blueprint ``/api`` for the explorer's measuring and inspecting tools.

* the transport lab (``lab.py``): ``GET /api/lab``, ``POST /api/lab/runs``,
  ``GET`` / ``DELETE /api/lab/runs/<id>``;

Kept apart from ``api.py`` (jobs) because each tool is a service of its own; the JSON error
rules are the same (errors.py): validate first, act second, a 4xx that says how to fix it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import lab
from .errors import ApiError
from .services import services

bp = Blueprint("tools", __name__, url_prefix="/api")


def _body() -> dict[str, Any]:
    """The JSON object body ({} when there is none), or a 400."""
    if not request.content_length:
        return {}
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(
            400, "the body is not JSON; send a JSON object with 'Content-Type: application/json'"
        )
    if not isinstance(body, dict):
        kind = type(body).__name__
        raise ApiError(400, f'send a JSON object, e.g. {{"rtt": 1000}}, not a JSON {kind}')
    return body


# ---- transport lab ----------------------------------------------------------------------------


@bp.get("/lab")
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
def lab_start() -> tuple[Response, int]:
    """Start a run: ``{"rtt", "msgs", "big", "warmup", "subjects"}``, all optional. 202; its
    numbers arrive as ``lab`` events on the feed."""
    run = services().lab.start(_body())
    return jsonify(run=run.snapshot()), 202


@bp.get("/lab/runs/<run_id>")
def lab_show(run_id: str) -> Response:
    return jsonify(run=services().lab.get(run_id).snapshot())


@bp.delete("/lab/runs/<run_id>")
def lab_cancel(run_id: str) -> tuple[Response, int]:
    runner = services().lab
    run = runner.get(run_id)
    runner.cancel(run)
    return jsonify(run=run.snapshot()), 202
