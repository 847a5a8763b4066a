"""The WebSocket feed ``/ws``: one connection, every event, resumable.

Protocol (client → server, JSON text):

* ``{"type": "subscribe", "job": "<id>" | null, "after": <seq> | null, "heartbeat": false,
  "output_rate": null}`` → ``{"type": "subscribed", "seq": <last seq so far>, ...}`` before
  any event, then the replay (``after``: null = nothing, 0 = all kept history) and every new
  event, in seq order. ``output_rate`` (bytes/s) caps the stdout/stderr this client gets; the
  rest is reported in ``dropped`` notices. Subscribing again replaces the subscription.
* ``{"type": "unsubscribe"}`` → ``{"type": "unsubscribed"}``.
* ``{"type": "ping"}`` → ``{"type": "pong", "t": <server time>}``.
* anything else (not JSON, nested too deep, too big, binary, an unknown type or field) →
  ``{"type": "rejected", "message": "..."}``; the connection stays usable.

Control messages (``subscribed``, ``pong``, ``rejected``, ``heartbeat``) carry no seq and are not
kept. Before the upgrade, the token and the Origin are checked (security.py), the handshake
(upgrade.py), and the number of open feeds: past ``--max-feeds`` the answer is HTTP 503 with a
JSON error naming the flag, so a refused client never gets a WebSocket at all, and one that was
told ``subscribed`` keeps its feed. Close codes: 1001 when the server stops, 1008 for a client
over its rate or silent to pings, 1009 for a message far over the limit, 1002 / 1007 for broken
frames / text (see feedhub.py, which serves every open feed from one thread).
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from .errors import ApiError
from .events import Subscriber
from .feedhub import FeedConnection
from .services import Services, services
from .upgrade import (
    HandshakeError,
    check_handshake,
    server_socket,
    switching_protocols,
    take_socket,
)

CLIENT_TYPES = ("subscribe", "unsubscribe", "ping")
SUBSCRIBE_KEYS = {"type", "job", "after", "heartbeat", "output_rate"}

bp = Blueprint("feed", __name__)


def _text(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _short(value: Any, size: int = 60) -> str:
    """`value`'s repr, cut to `size` characters: a rejection does not echo a whole message."""
    text = repr(value)
    return text if len(text) <= size else text[: size - 3] + "..."


class FeedSession:
    """One connected client: its subscription, heartbeat schedule and message handling.

    Runs in the feed hub's thread (every call comes from it), so it must never block.
    """

    def __init__(self, conn: FeedConnection, s: Services, max_message: int) -> None:
        self.conn = conn
        self.s = s
        self.max_message = max_message
        self.sub: Subscriber | None = None
        self.heartbeat_due: float | None = None

    # ---- what the hub calls ---------------------------------------------------------------

    def pump(self, limit: int) -> None:
        """Send up to about `limit` bytes of queued events, as one batch."""
        if self.sub is not None:
            self.conn.send_payloads(self.sub.drain(limit=limit))

    def has_more(self) -> bool:
        return self.sub is not None and self.sub.pending()

    def due(self) -> float | None:
        return self.heartbeat_due

    def tick(self, now: float) -> None:
        if self.heartbeat_due is not None and now >= self.heartbeat_due:
            late = now - self.heartbeat_due
            self.conn.send_text(_text({"type": "heartbeat", "late_ms": round(late * 1000, 1)}))
            self.heartbeat_due = max(self.heartbeat_due + self.s.heartbeat.interval, now)

    def closed(self) -> None:
        self.unsubscribe()

    def on_binary(self) -> None:
        self.reject("send text frames holding JSON, not binary frames")

    def on_too_big(self, size: int) -> None:
        self.reject(
            f"message of {size} bytes is over the {self.max_message}-byte limit; the feed only "
            "takes small control messages (subscribe, ping)"
        )

    def on_text(self, raw: str) -> None:
        if len(raw.encode()) > self.max_message:
            self.on_too_big(len(raw.encode()))
            return
        try:
            msg = json.loads(raw)
        except RecursionError:
            self.reject("JSON nested too deeply; the feed's messages are flat objects")
            return
        except ValueError as exc:
            self.reject(f'not JSON ({getattr(exc, "msg", exc)}); send e.g. {{"type": "ping"}}')
            return
        if not isinstance(msg, dict) or msg.get("type") not in CLIENT_TYPES:
            got = msg.get("type") if isinstance(msg, dict) else type(msg).__name__
            self.reject(
                f"unknown message type {_short(got)}; send one of: {', '.join(CLIENT_TYPES)} "
                '(as {"type": ...})'
            )
            return
        kind = msg["type"]
        if kind == "ping":
            self.conn.send_text(_text({"type": "pong", "t": time.time()}))
        elif kind == "unsubscribe":
            self.unsubscribe()
            self.conn.send_text(_text({"type": "unsubscribed"}))
        else:
            self.subscribe(msg)

    # ---- the protocol ---------------------------------------------------------------------

    def reject(self, message: str) -> None:
        self.conn.send_text(_text({"type": "rejected", "message": message}))

    def subscribe(self, msg: dict[str, Any]) -> None:
        unknown = sorted(set(msg) - SUBSCRIBE_KEYS)
        if unknown:
            self.reject(
                f"unknown field(s) {', '.join(_short(k) for k in unknown)} in subscribe; "
                f"fields are {', '.join(sorted(SUBSCRIBE_KEYS))}"
            )
            return
        job, after, beat = msg.get("job"), msg.get("after"), msg.get("heartbeat", False)
        if job is not None and not isinstance(job, str):
            self.reject("'job' must be a job id string, or null for every job")
            return
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int) or after < 0
        ):
            self.reject("'after' must be a seq (an integer >= 0: 0 = all kept history) or null")
            return
        if not isinstance(beat, bool):
            self.reject("'heartbeat' must be true or false")
            return
        rate = msg.get("output_rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
            self.reject("'output_rate' must be a number of bytes per second >= 1, or null")
            return
        try:
            if job is not None:
                self.s.directory.get(job)
            self.unsubscribe()
            self.sub, start = self.s.bus.subscribe(job, after, rate)
        except ApiError as exc:  # no such job; the shared store cannot be reached
            if exc.status == 404:
                self.reject(f'no job {_short(job)}; subscribe with "job": null for every job')
            else:
                self.reject(exc.message)
            return
        hub, conn = self.conn.hub, self.conn
        self.sub.notify = lambda: hub.ready(conn)
        self.conn.send_text(
            _text(
                {"type": "subscribed", "seq": start, "job": job, "after": after, "heartbeat": beat}
            )
        )
        if beat:
            self.heartbeat_due = time.monotonic() + self.s.heartbeat.interval
            hub.timer(self.heartbeat_due)
        hub.ready(conn)  # the replay, and anything that came meanwhile

    def unsubscribe(self) -> None:
        if self.sub is not None:
            self.s.bus.unsubscribe(self.sub)
            self.sub = None
        self.heartbeat_due = None


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers or {})
    return response


@bp.route("/ws", websocket=True)  # Werkzeug routes an upgrade request only to such a rule
@bp.route("/ws", endpoint="feed_http", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def feed() -> Response:
    """The upgrade: refuse with a plain HTTP answer, or hand the connection to the hub."""
    s = services()
    try:
        key = check_handshake(request.method, request.headers)
    except HandshakeError as exc:
        return _refusal(exc.status, exc.message, exc.headers)
    hub = s.feeds
    if s.jobs.stopping.is_set():
        return _refusal(503, "the server is stopping; reconnect once it is back")
    if not hub.reserve():
        return _refusal(
            503,
            f"the server is full: all {hub.capacity} live feeds are in use. Close a tab you "
            f"do not need, or start the server with --max-feeds N (more than {hub.capacity})",
            {"Retry-After": "5"},
        )
    try:
        raw = server_socket(request.environ)
        raw.sendall(switching_protocols(key))
        sock = take_socket(raw)
    except (HandshakeError, OSError) as exc:
        hub.release()
        if isinstance(exc, HandshakeError):
            return _refusal(exc.status, exc.message)
        return _refusal(400, "the connection closed during the WebSocket handshake")
    max_message = s.jobs.config["WS_MAX_MESSAGE_BYTES"]
    hub.adopt(sock, lambda conn: FeedSession(conn, s, max_message))
    # The WSGI server writes this into the dummy it now holds (upgrade.py), not to the client.
    return Response(status=101)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
