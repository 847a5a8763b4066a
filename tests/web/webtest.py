"""Helpers for the web tests: a WebSocket feed client and waits that never sleep blindly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket

TIMEOUT = 30.0
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


class Feed:
    """A real WebSocket client on the server's /ws (websocket-client)."""

    def __init__(
        self, srv: Any, *, origin: str | None = "same", token: bool = True, rcvbuf: int = 0
    ) -> None:
        url = srv.ws_url if token else srv.ws_url.split("?", 1)[0]
        kwargs: dict[str, Any] = {"timeout": TIMEOUT}
        if rcvbuf:  # a small receive buffer makes a slow client: the server's sends block
            kwargs["sockopt"] = ((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf),)
        if origin == "same":
            kwargs["origin"] = srv.origin
        elif origin is None:
            kwargs["suppress_origin"] = True
        else:
            kwargs["origin"] = origin
        self.ws = websocket.create_connection(url, **kwargs)
        self.seen: list[dict[str, Any]] = []  # everything received, in order

    def close(self) -> None:
        self.ws.close()

    def send(self, obj: Any) -> None:
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        msg = json.loads(self.ws.recv())
        self.seen.append(msg)
        return msg

    def subscribe(
        self, job: str | None = None, after: int | None = None, heartbeat: bool = False
    ) -> dict[str, Any]:
        self.send({"type": "subscribe", "job": job, "after": after, "heartbeat": heartbeat})
        msg = self.recv()
        assert msg["type"] == "subscribed", msg
        return msg

    def until(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        """Messages received until one matches `pred` (included)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message in {timeout} s; got {got[-5:]}")
            msg = self.recv(left)
            got.append(msg)
            if pred(msg):
                return got

    def events_of(self, job: str, until_type: str = "close") -> list[dict[str, Any]]:
        """Events of `job` (and `dropped` notices) up to its `until_type` event, no stats."""
        got = self.until(lambda m: m.get("job") == job and m.get("type") == until_type)
        return [
            m
            for m in got
            if m.get("type") != "stats" and (m.get("job") == job or m.get("type") == "dropped")
        ]


def wait_for(pred: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_closed(srv: Any, job_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Poll the API until the job has a `close` event; return the job."""

    def closed() -> Any:
        status, body = srv.json("GET", f"/api/jobs/{job_id}/events")
        assert status == 200, body
        return any(e["type"] == "close" for e in body["events"])

    wait_for(closed, timeout, f"job {job_id} to close")
    return srv.json("GET", f"/api/jobs/{job_id}")[1]


def types(events: list[dict[str, Any]]) -> list[str]:
    """Event types in order, stats left out, and a run of output chunks of one stream shown
    once (how a child's writes are cut into reads is up to the kernel)."""
    out: list[str] = []
    for e in events:
        kind = e["type"]
        if kind == "stats" or (out and kind in ("stdout", "stderr") and out[-1] == kind):
            continue
        out.append(kind)
    return out


def lifecycle(events: list[dict[str, Any]]) -> list[str]:
    """The order that is fixed: every event type but output (which travels on its own fds,
    so a read can land before or after the exit, as in Node), checked to lie between the
    first event (spawn) and the last (close)."""
    kinds = types(events)
    for i, kind in enumerate(kinds):
        if kind in ("stdout", "stderr"):
            assert 0 < i < len(kinds) - 1, f"output outside spawn..close: {kinds}"
    return [k for k in kinds if k not in ("stdout", "stderr")]


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def processes() -> dict[int, tuple[str, int]]:
    """Every process: pid → (state letter, parent pid), from /proc."""
    table: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            table[int(entry)] = (fields[0], int(fields[1]))
    return table


def zombie_children(pid: int) -> list[int]:
    """Children of `pid` that exited and were not reaped."""
    return [p for p, (state, ppid) in processes().items() if state == "Z" and ppid == pid]


def descendants(pid: int) -> list[int]:
    """Every live process whose ancestry reaches `pid` (from /proc)."""
    parents = {p: ppid for p, (state, ppid) in processes().items() if state != "Z"}
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.extend(kids)
        frontier.extend(kids)
    return found
