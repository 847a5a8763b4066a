"""The real server as users run it: ``python -m webapp`` under gunicorn (gthread, one worker).

It prints its URL with the token, serves REST and the WebSocket, keeps its memory bounded
under a stdout flood, and on SIGTERM or Ctrl-C stops every child (TERM, then KILL after the
grace period) and exits 0, leaving no process behind.
"""

from __future__ import annotations

import re
import signal
import time

import pytest
from server import LiveServer
from webtest import Feed, descendants, pid_alive, wait_closed, wait_for, worker_pid

from webapp.stats import rss_of

MiB = 1024 * 1024


def start(srv: LiveServer, body: dict) -> dict:
    status, job = srv.json("POST", "/api/jobs", body)
    assert status == 201, job
    return job


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_gunicorn_serves_and_stop_leaves_no_child_alive(sig: int) -> None:
    grace = 1.0
    srv = LiveServer(["--grace", str(grace)])
    with srv:
        assert re.fullmatch(
            rf"http://127\.0\.0\.1:{srv.port}/\?token={re.escape(srv.token)}", srv.printed_url or ""
        ), srv.log()
        feed = Feed(srv)
        try:
            feed.subscribe(None, after=None)
            stubborn = start(srv, {"kind": "fork", "program": "ignore_term.py"})
            family = start(srv, {"kind": "fork", "program": "grandchildren.py", "args": ["2"]})
            start(srv, {"kind": "fork", "program": "counter.py"})
            start(srv, {"kind": "spawn", "command": "sleep", "args": ["60"]})
            waiting = {stubborn["id"], family["id"]}  # each says "ready" with a message
            feed.until(
                lambda m: m["type"] == "message" and not waiting.discard(m["job"]) and not waiting
            )
        finally:
            feed.close()
        procs = descendants(srv.pid)
        assert len(procs) >= 1 + 4 + 2  # the worker, four children, two grandchildren
        began = time.monotonic()
        rc = srv.stop(sig)
        took = time.monotonic() - began
    assert rc == 0, srv.log()
    assert took < grace + 8, took
    left = [p for p in procs if pid_alive(p)]
    assert not left, f"still alive after the server stopped: {left}"


def test_flood_keeps_server_memory_bounded_and_other_clients_served() -> None:
    with LiveServer(["--ws-rate", "10000"]) as srv:  # `other` pings as fast as it can
        worker = worker_pid(srv)
        slow = Feed(srv, rcvbuf=4096)  # a browser tab that cannot keep up
        other = Feed(srv)
        try:
            slow.subscribe(None, after=None)
            other.subscribe(None, after=None)
            warm = start(srv, {"kind": "fork", "program": "flood.py", "args": ["2000000"]})
            wait_closed(srv, warm["id"])
            baseline = rss_of(worker)
            assert baseline
            job = start(srv, {"kind": "fork", "program": "flood.py", "args": ["150000000", "200"]})
            peak = baseline
            while srv.json("GET", f"/api/jobs/{job['id']}")[1]["state"] == "running":
                peak = max(peak, rss_of(worker) or 0)
                other.send({"type": "ping"})
                wait_for(lambda: other.recv(timeout=10)["type"] == "pong", 10, "pong")
            peak = max(peak, rss_of(worker) or 0)
            info = wait_closed(srv, job["id"])
            assert info["output_bytes"] == 150_000_000 and info["output_truncated"]
            closes = slow.until(lambda m: m.get("job") == job["id"] and m["type"] == "close")
            assert any(m["type"] == "dropped" for m in closes)
        finally:
            slow.close()
            other.close()
    growth = peak - baseline
    assert growth < 64 * MiB, f"server RSS grew {growth / MiB:.1f} MiB for a 150 MB flood"


def test_command_line_options_reach_the_app() -> None:
    with LiveServer(["--max-children", "1", "--allow-any-command", "--threads", "4"]) as srv:
        status, _ = srv.json("GET", "/api/jobs", token=False)
        assert status == 401
        sleeper = start(srv, {"kind": "spawn", "command": "sleep", "args": ["30"]})
        status, answer = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "true"})
        assert status == 429 and "limit is 1" in answer["error"]
        srv.json("POST", f"/api/jobs/{sleeper['id']}/kill", {"signal": "SIGKILL"})
        wait_closed(srv, sleeper["id"])
        job = start(srv, {"kind": "exec", "command": "echo a; echo b"})  # any command: allowed
        assert wait_closed(srv, job["id"])["result"]["stdout"] == "a\nb\n"
        assert srv.json("GET", "/api/status")[1]["allow_any_command"] is True
