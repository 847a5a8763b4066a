"""HTML pages of the visual explorer.

Each page is a template plus one ES module under ``static/js/``; everything live on a page
comes from the WebSocket feed (``/ws``), so these views only render the shell. The token
check is app-wide (see ``security.py``), so no view here checks it again.
"""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def explorer() -> str:
    """Launch panel, process tree, timeline, consoles and the event log."""
    return render_template("explorer.html", page="explorer")


@bp.get("/examples")
def examples() -> str:
    """The seeds' examples, each runnable with one click, code beside the live timeline."""
    return render_template("examples.html", page="examples")


@bp.get("/lesson")
def lesson() -> str:
    """Inline work against work in a child, with the server's heartbeat lateness charted."""
    return render_template("lesson.html", page="lesson")


@bp.get("/lab")
def lab() -> str:
    """The same ping-pong workload over each transport, latency and throughput charted."""
    return render_template("lab.html", page="lab")
