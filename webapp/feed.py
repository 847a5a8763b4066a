"""The WebSocket feed ``/ws`` (flask-sock): one connection, every event, resumable.

Protocol (client → server, JSON text):

* ``{"type": "subscribe", "job": "<id>" | null, "after": <seq> | null, "heartbeat": false,
  "output_rate": null}`` → ``{"type": "subscribed", "seq": <last seq so far>, ...}`` before
  any event, then the replay (``after``: null = nothing, 0 = all kept history) and every new
  event, in seq order. ``output_rate`` (bytes/s) caps the stdout/stderr this client gets; the
  rest is reported in ``dropped`` notices. Subscribing again replaces the subscription.
* ``{"type": "unsubscribe"}`` → ``{"type": "unsubscribed"}``.
* ``{"type": "ping"}`` → ``{"type": "pong", "t": <server time>}``.
* anything else → ``{"type": "rejected", "message": "..."}``; the connection stays usable.

Control messages (``subscribed``, ``pong``, ``rejected``, ``heartbeat``) carry no seq and are not
kept. The token and the Origin are checked before the upgrade (security.py), so a refused
client never gets a WebSocket at all.

One thread per connection does all the sending (simple-websocket's own thread reads), so
sends never interleave; while it is blocked on a slow client, the bus keeps queueing for it in
its bounded queue, merging output and then dropping with a ``dropped`` notice.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Flask, current_app
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from .errors import ApiError
from .events import Subscriber
from .services import Services, services

#: How long the loop waits for events before it looks at the client's messages again.
POLL = 0.02
CLIENT_TYPES = ("subscribe", "unsubscribe", "ping")
SUBSCRIBE_KEYS = {"type", "job", "after", "heartbeat", "output_rate"}

sock = Sock()
bp = Blueprint("feed", __name__)


def _text(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class FeedSession:
    """One connected client: its subscription, heartbeat schedule and message handling."""

    def __init__(self, ws: Any, s: Services, max_message: int) -> None:
        self.ws = ws
        self.s = s
        self.max_message = max_message
        self.sub: Subscriber | None = None
        self.heartbeat_due: float | None = None

    def run(self) -> None:
        try:
            while not self.s.jobs.stopping.is_set():
                raw = self.ws.receive(timeout=0)
                if raw is not None:
                    self.handle(raw)
                    continue
                self.pump()
        except (ConnectionClosed, OSError):
            pass  # the client went away (reset, broken pipe): nothing to tell it
        finally:
            self.unsubscribe()

    def pump(self) -> None:
        """Send what is queued; wait a little for more (or for the next heartbeat)."""
        wait = POLL
        if self.heartbeat_due is not None:
            wait = max(0.0, min(wait, self.heartbeat_due - time.monotonic()))
        if self.sub is None:
            if wait:
                time.sleep(wait)
        else:
            for text in self.sub.drain(timeout=wait):
                self.ws.send(text)
        if self.heartbeat_due is not None:
            now = time.monotonic()
            if now >= self.heartbeat_due:
                late = now - self.heartbeat_due
                self.ws.send(_text({"type": "heartbeat", "late_ms": round(late * 1000, 1)}))
                interval = self.s.heartbeat.interval
                self.heartbeat_due = max(self.heartbeat_due + interval, now)

    def reject(self, message: str) -> None:
        self.ws.send(_text({"type": "rejected", "message": message}))

    def handle(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            self.reject("send text frames holding JSON, not binary frames")
            return
        if len(raw.encode()) > self.max_message:
            self.reject(
                f"message over the {self.max_message}-byte limit; the feed only takes small "
                "control messages (subscribe, ping)"
            )
            return
        try:
            msg = json.loads(raw)
        except ValueError as exc:
            self.reject(f'not JSON ({exc.msg}); send e.g. {{"type": "ping"}}')
            return
        if not isinstance(msg, dict) or msg.get("type") not in CLIENT_TYPES:
            got = msg.get("type") if isinstance(msg, dict) else type(msg).__name__
            self.reject(
                f"unknown message type {got!r}; send one of: {', '.join(CLIENT_TYPES)} "
                '(as {"type": ...})'
            )
            return
        kind = msg["type"]
        if kind == "ping":
            self.ws.send(_text({"type": "pong", "t": time.time()}))
        elif kind == "unsubscribe":
            self.unsubscribe()
            self.ws.send(_text({"type": "unsubscribed"}))
        else:
            self.subscribe(msg)

    def subscribe(self, msg: dict[str, Any]) -> None:
        unknown = sorted(set(msg) - SUBSCRIBE_KEYS)
        if unknown:
            self.reject(
                f"unknown field(s) {', '.join(map(repr, unknown))} in subscribe; "
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
                self.reject(f'no job {job!r}; subscribe with "job": null for every job')
            else:
                self.reject(exc.message)
            return
        self.ws.send(
            _text(
                {"type": "subscribed", "seq": start, "job": job, "after": after, "heartbeat": beat}
            )
        )
        self.heartbeat_due = time.monotonic() + self.s.heartbeat.interval if beat else None
        for text in self.sub.drain():
            self.ws.send(text)

    def unsubscribe(self) -> None:
        if self.sub is not None:
            self.s.bus.unsubscribe(self.sub)
            self.sub = None
        self.heartbeat_due = None


def feed(ws: Any) -> None:
    """The /ws route: a session until the client goes away or the server stops."""
    FeedSession(ws, services(), current_app.config["WS_MAX_MESSAGE_BYTES"]).run()


sock.route("/ws", bp=bp)(feed)


def init_app(app: Flask) -> None:
    """Register the feed; simple-websocket's hard size cap (which closes the connection with
    1009) sits above ours, which only rejects the one message."""
    options = dict(app.config.get("SOCK_SERVER_OPTIONS", {}))
    options["max_message_size"] = 4 * app.config["WS_MAX_MESSAGE_BYTES"]
    app.config["SOCK_SERVER_OPTIONS"] = options
    app.register_blueprint(bp)
