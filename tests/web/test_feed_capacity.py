"""One server holds a classroom (issue 11): with default flags, 100 feeds subscribed to
everything each get every line of a 100,000-line job exactly; past the configured capacity a
client is refused *before* the upgrade (HTTP 503 naming the flag); and open feeds never take
the threads that HTTP needs.

Speed is measured by ``bench/feed_bench.py``; these tests check exactness and refusals.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
import websocket
from server import ROOT, LiveServer
from webtest import TIMEOUT, Feed, wait_for

from webapp.__main__ import app_config, parse_args

CLASS = 100
LINES = 100_000


def read_job(feed: Feed, job_id: str, result: dict[str, Any]) -> None:
    """Everything `feed` gets until the job's close: its stdout text and what went wrong."""
    text: list[str] = []
    last_seq = 0
    try:
        while True:
            msg = feed.recv(timeout=120)
            if "seq" in msg:
                assert msg["seq"] > last_seq, f"seq {msg['seq']} after {last_seq}"
                last_seq = msg["seq"]
            assert msg["type"] != "dropped", msg
            if msg.get("job") != job_id:
                continue
            if msg["type"] == "stdout":
                text.append(msg["data"]["text"])
            elif msg["type"] == "close":
                break
        result["text"] = "".join(text)
    except Exception as exc:  # reported by the test, with the client's number
        result["error"] = repr(exc)
    result["done"] = time.monotonic()


def test_one_server_holds_a_classroom_every_client_gets_every_line() -> None:
    with LiveServer() as srv:
        feeds = [Feed(srv) for _ in range(CLASS)]
        try:
            for feed in feeds:
                feed.subscribe(None, after=None)
            status = srv.json("GET", "/api/status")[1]
            assert status["feeds"]["in_use"] == CLASS <= status["feeds"]["capacity"]
            # Every feed slot taken does not take the API's threads.
            began = time.monotonic()
            code, job = srv.json(
                "POST",
                "/api/jobs",
                {"kind": "spawn", "command": "seq", "args": [str(LINES)]},
                timeout=15,
            )
            assert code == 201, job
            results: list[dict[str, Any]] = [{} for _ in feeds]
            readers = [
                threading.Thread(target=read_job, args=(feed, job["id"], result))
                for feed, result in zip(feeds, results, strict=True)
            ]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join(180)
        finally:
            for feed in feeds:
                feed.close()
    expected = "".join(f"{n}\n" for n in range(1, LINES + 1))
    errors = [(i, r.get("error")) for i, r in enumerate(results) if r.get("error")]
    assert not errors, errors[:5]
    wrong = [i for i, r in enumerate(results) if r.get("text") != expected]
    assert not wrong, f"clients {wrong[:10]} did not get every line exactly"
    last = max(r["done"] for r in results) - began
    print(f"\n{CLASS} feeds x {LINES} lines: last client done {last:.1f} s after the POST")


def upgrade_request(srv: LiveServer) -> tuple[int, dict[str, str], bytes]:
    """A WebSocket handshake as a browser sends it; the HTTP answer when it is refused.
    (http.client, not urllib, which would replace 'Connection: Upgrade' with 'close'.)"""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)
    try:
        conn.request(
            "GET",
            "/ws",
            headers={
                **srv.headers,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": b64encode(b"0123456789abcdef").decode(),
                "Origin": srv.origin,
            },
        )
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def test_past_capacity_a_client_is_refused_before_the_upgrade_and_http_is_served() -> None:
    with LiveServer(["--max-feeds", "3", "--threads", "2"]) as srv:
        feeds = [Feed(srv) for _ in range(3)]
        try:
            for feed in feeds:
                feed.subscribe(None)
            status = srv.json("GET", "/api/status")[1]
            assert status["feeds"] == {"in_use": 3, "capacity": 3}
            code, headers, body = upgrade_request(srv)
            assert code == 503, (code, body)
            assert headers["Content-Type"] == "application/json"
            error = json.loads(body)["error"]
            assert "--max-feeds" in error and "3" in error, error
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                Feed(srv)
            assert refused.value.status_code == 503
            # Every feed slot in use, two request threads: the API still answers.
            for _ in range(4):
                code, job = srv.json(
                    "POST", "/api/jobs", {"kind": "spawn", "command": "true"}, timeout=10
                )
                assert code == 201, job
            request = urllib.request.Request(srv.url("/"), headers=srv.headers)
            with urllib.request.urlopen(request, timeout=10) as page:
                assert page.status == 200
            feeds.pop().close()
            wait_for(lambda: srv.json("GET", "/api/status")[1]["feeds"]["in_use"] == 2)
            feeds.append(Feed(srv))
            assert feeds[-1].subscribe(None)["type"] == "subscribed"
        finally:
            for feed in feeds:
                feed.close()


def test_a_plain_http_request_to_the_feed_says_how_to_connect() -> None:
    with LiveServer() as srv:
        code, _headers, body = srv.request("GET", "/ws", timeout=TIMEOUT)
        assert code == 426, body
        assert "WebSocket" in json.loads(body)["error"]


def test_the_feed_flags_reach_the_app_and_bad_values_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = app_config(
        parse_args(["--max-feeds", "7", "--ws-rate", "5", "--ws-ping-interval", "0.5"])
    )
    assert (config["MAX_FEEDS"], config["WS_MESSAGE_RATE"], config["WS_PING_INTERVAL"]) == (
        7,
        5.0,
        0.5,
    )
    defaults = app_config(parse_args([]))
    assert (defaults["MAX_FEEDS"], defaults["WS_MESSAGE_RATE"]) == (128, 50.0)
    for bad in (["--max-feeds", "0"], ["--ws-rate", "0"], ["--ws-ping-interval", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert bad[0] in capsys.readouterr().err


def test_the_feed_benchmark_runs_and_reports_every_workload(tmp_path: Path) -> None:
    """bench/feed_bench.py measures (and prints) the times; here a quick run must complete
    and report every workload, with exact delivery where nothing can be dropped by design."""
    out = tmp_path / "feed_bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "feed_bench.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.exists(), proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["workload"].split()[0], r["clients"]) for r in rows] == [
        ("seq", 1),
        ("seq", 20),
        ("os.write", 1),
        ("os.write", 20),
        ("progress.py", 1),
        ("progress.py", 20),
    ]
    for row in rows[:4]:  # output merges when a client lags, so every line must arrive
        assert row["exact"] == row["clients"], row
    assert all(row["last_s"] is not None for row in rows), rows
