"""Helpers for the web tests: a WebSocket feed client and waits that never sleep blindly."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket

from ipc import wire

TIMEOUT = 30.0
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


class Feed:
    """A real WebSocket client on the server's /ws (websocket-client)."""

    def __init__(
        self, srv: Any, *, origin: str | None = "same", token: bool = True, rcvbuf: int = 0
    ) -> None:
        url = srv.ws_url if token else srv.ws_url.split("?", 1)[0]
        # UTF-8 is still checked, by the C decoder when recv() decodes a text frame (the
        # pure-Python validator would cost seconds for a classroom of clients).
        kwargs: dict[str, Any] = {"timeout": TIMEOUT, "skip_utf8_validation": True}
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
        self.ws.shutdown()  # close() does nothing once the server's close frame was read

    def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the socket (frames built with `frame()`, or broken ones)."""
        self.ws.sock.sendall(data)

    def close_frame(self, timeout: float = TIMEOUT) -> tuple[int | None, str, list[Any]]:
        """Read until the server's close frame: (code, reason, the messages before it).

        The code is None when the connection ended without a close frame.
        """
        deadline = time.monotonic() + timeout
        before: list[Any] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no close frame in {timeout} s; got {before[-3:]}")
            self.ws.settimeout(left)
            try:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return None, "", before
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data or b""
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                return code, data[2:].decode("utf-8", "replace"), before
            if opcode == websocket.ABNF.OPCODE_TEXT:
                before.append(wire.loads(frame.data.decode()))

    def send(self, obj: Any) -> None:
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        msg = wire.loads(self.ws.recv())
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


def frame(
    payload: bytes | str,
    opcode: int = websocket.ABNF.OPCODE_TEXT,
    fin: bool = True,
    masked: bool = True,
) -> bytes:
    """One client frame as bytes, masked as RFC 6455 requires (or not, to break the rule);
    any opcode, reserved ones included."""
    data = payload.encode() if isinstance(payload, str) else payload
    size = len(data)
    head = bytes([(0x80 if fin else 0) | opcode])
    flag = 0x80 if masked else 0
    if size < 126:
        head += bytes([flag | size])
    elif size < 1 << 16:
        head += bytes([flag | 126]) + struct.pack("!H", size)
    else:
        head += bytes([flag | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + data
    key = os.urandom(4)
    repeated = (key * (size // 4 + 1))[:size]
    body = (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
    return head + key + body


def worker_pid(srv: Any) -> int:
    """The pid of the gunicorn worker of a LiveServer (the process that holds the app)."""
    return wait_for(lambda: descendants(srv.pid)[:1], what="the gunicorn worker")[0]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def readme_safe_rows() -> dict[str, str]:
    """The README's "Safe by default" tables: each row's first flag (in its second column)
    → that row's default cell, as written (``"2048 MiB"``, ``"`nobody`"``)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    safe = readme.split("### Safe by default", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in safe.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        flag = re.match(r"`(--[a-z][a-z-]*)[` ]", cells[1]) if len(cells) >= 3 else None
        if flag:
            rows.setdefault(flag.group(1), cells[2])
    return rows
