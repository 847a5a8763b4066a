"""Safe by default: the token on every request, the WebSocket's Origin, the command allowlist."""

from __future__ import annotations

import base64
import json
import os
import socket
import sys

import pytest
import websocket
from server import LiveServer, ThreadServer
from webtest import Feed, needs_node, wait_closed


@pytest.mark.parametrize("path", ["/api/jobs", "/", "/static/css/app.css", "/getSum"])
def test_no_token_is_401(srv: ThreadServer, path: str) -> None:
    status, _headers, body = srv.request("GET", path, token=False)
    assert status == 401
    assert "error" in json.loads(body)


def test_wrong_token_is_401_and_says_so(srv: ThreadServer) -> None:
    status, body = srv.json("GET", "/api/jobs", token=False, headers={"Authorization": "Bearer x"})
    assert status == 401
    assert "wrong access token" in body["error"]
    status, _ = srv.json("GET", "/api/jobs?token=nope", token=False)
    assert status == 401


def test_a_page_without_token_gets_a_short_html_message(srv: ThreadServer) -> None:
    status, headers, body = srv.request("GET", "/", token=False, headers={"Accept": "text/html"})
    assert status == 401
    assert headers["Content-Type"].startswith("text/html")
    assert b"Open the URL printed at start" in body


def test_query_token_sets_a_strict_httponly_cookie_and_redirects(srv: ThreadServer) -> None:
    status, headers, _ = srv.request(
        "GET", f"/?token={srv.token}", token=False, headers={"Accept": "text/html"}
    )
    assert status == 303
    assert headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    value = cookie.split(";", 1)[0]
    status, _, body = srv.request("GET", "/api/jobs", token=False, headers={"Cookie": value})
    assert status == 200 and "jobs" in json.loads(body)


def test_bearer_and_query_token_work_for_the_api(srv: ThreadServer) -> None:
    assert srv.json("GET", "/api/jobs")[0] == 200
    assert srv.json("GET", f"/api/jobs?token={srv.token}", token=False)[0] == 200


def test_websocket_without_token_is_refused_before_upgrade(srv: ThreadServer) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        Feed(srv, token=False)
    assert info.value.status_code == 401


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_websocket_from_a_foreign_origin_is_403(srv: ThreadServer, origin: str) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        Feed(srv, origin=origin)
    assert info.value.status_code == 403


@pytest.mark.parametrize("upgrade", ["websocket", "websocket, x", "x, WebSocket"])
def test_every_request_the_handshake_accepts_has_its_origin_checked(
    srv: ThreadServer, upgrade: str
) -> None:
    """The Origin check and the handshake agree on what a WebSocket request is: an Upgrade
    header that lists `websocket` among other tokens opens a feed, so it is checked too."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws?token={srv.token} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                f"Upgrade: {upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {key}\r\nOrigin: http://evil.example\r\n\r\n"
            ).encode()
        )
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"403", status_line


@pytest.mark.parametrize("origin", ["same", None], ids=["own-origin", "no-origin"])
def test_websocket_from_own_origin_or_a_non_browser_connects(
    srv: ThreadServer, origin: str | None
) -> None:
    feed = Feed(srv, origin=origin)
    try:
        feed.send({"type": "ping"})
        assert feed.recv()["type"] == "pong"
    finally:
        feed.close()


REFUSED = [
    ({"kind": "spawn", "command": "rm", "args": ["-rf", "/tmp/x"]}, "not in the allowlist"),
    ({"kind": "spawn", "command": "/bin/echo", "args": ["hi"]}, "is a path"),
    ({"kind": "spawn", "command": "bash", "args": ["-c", "id"]}, "not in the allowlist"),
    ({"kind": "exec", "command": "echo hi; id"}, "metacharacters"),
    ({"kind": "exec", "command": "echo $(id)"}, "metacharacters"),
    ({"kind": "exec", "command": "cat /etc/passwd | wc"}, "metacharacters"),
    ({"kind": "exec_file", "command": "python3", "args": ["-c", "print(1)"]}, "shipped"),
    ({"kind": "spawn", "command": sys.executable, "args": ["/tmp/evil.py"]}, "shipped"),
    ({"kind": "spawn", "command": "node", "args": ["-e", "1"]}, "shipped"),
    ({"kind": "spawn", "command": "echo", "env": {"LD_PRELOAD": "/tmp/x.so"}}, "LD_PRELOAD"),
    ({"kind": "spawn", "command": "echo", "env": {"PATH": "/tmp"}}, "PATH"),
]


@pytest.mark.parametrize(
    ("body", "reason"), REFUSED, ids=[r[1] + str(i) for i, r in enumerate(REFUSED)]
)
def test_commands_outside_the_allowlist_are_403_with_the_reason(
    srv: ThreadServer, body: dict, reason: str
) -> None:
    before = len(srv.json("GET", "/api/jobs")[1]["jobs"])
    status, answer = srv.json("POST", "/api/jobs", body)
    assert status == 403, answer
    assert reason in answer["error"]
    assert len(srv.json("GET", "/api/jobs")[1]["jobs"]) == before  # nothing started


def test_allowed_commands_run(srv: ThreadServer) -> None:
    status, job = srv.json("POST", "/api/jobs", {"kind": "exec", "command": "echo 'a b'  c"})
    assert status == 201, job
    done = wait_closed(srv, job["id"])
    assert done["result"]["stdout"] == "a b c\n"


def test_python_may_run_a_shipped_program_by_name(srv: ThreadServer) -> None:
    status, job = srv.json(
        "POST",
        "/api/jobs",
        {"kind": "exec_file", "command": "python3", "args": ["exit_code.py", "3"]},
    )
    assert status == 201, job
    done = wait_closed(srv, job["id"])
    assert done["exit_code"] == 3
    assert "exiting with code 3" in done["result"]["stdout"]


@needs_node
def test_node_may_run_a_shipped_program(srv: ThreadServer) -> None:
    status, job = srv.json(
        "POST", "/api/jobs", {"kind": "spawn", "command": "node", "args": ["argv-child.js", "x"]}
    )
    assert status == 201, job
    assert wait_closed(srv, job["id"])["exit_code"] == 0


def test_allow_any_command_lifts_the_policy() -> None:
    with ThreadServer({"ALLOW_ANY_COMMAND": True}) as srv:
        status, job = srv.json("POST", "/api/jobs", {"kind": "exec", "command": "echo a; echo b"})
        assert status == 201, job
        assert wait_closed(srv, job["id"])["result"]["stdout"] == "a\nb\n"


# ---- Host header (DNS rebinding) ------------------------------------------------------------


def hosts_of(srv: ThreadServer) -> list[str]:
    return [f"127.0.0.1:{srv.port}", f"localhost:{srv.port}", f"[::1]:{srv.port}"]


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:{port}",
        "localhost.attacker.example:{port}",
        "127.0.0.1:1",
        "localhost",
        "127.0.0.2:{port}",
        "",
        "[::1]",
    ],
)
def test_a_foreign_host_header_is_403_even_with_the_token(srv: ThreadServer, host: str) -> None:
    """A page on attacker.example whose name now resolves to 127.0.0.1 (DNS rebinding) sends
    `Host: attacker.example`; only the names this server answers to get through."""
    host = host.format(port=srv.port)
    status, answer = srv.json("GET", "/api/jobs", headers={"Host": host})
    assert status == 403, answer
    assert "Host" in answer["error"] and "--allow-host" in answer["error"], answer
    status, answer = srv.json(
        "POST", "/api/jobs", {"kind": "spawn", "command": "true"}, headers={"Host": host}
    )
    assert status == 403, answer


def test_the_bound_address_and_loopback_names_with_the_port_are_accepted(
    srv: ThreadServer,
) -> None:
    for host in hosts_of(srv):
        assert srv.json("GET", "/api/jobs", headers={"Host": host})[0] == 200, host
        assert srv.json("GET", "/api/jobs", headers={"Host": host.upper()})[0] == 200, host


def test_websocket_with_a_foreign_host_is_403_before_upgrade(srv: ThreadServer) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(
            srv.ws_url, host="attacker.example", suppress_origin=True, timeout=10
        )
    assert info.value.status_code == 403


def test_allow_host_names_are_accepted() -> None:
    with ThreadServer({"ALLOWED_HOSTS": ("explorer.test",)}) as srv:
        for host in (f"explorer.test:{srv.port}", "explorer.test", "EXPLORER.test:443"):
            assert srv.json("GET", "/api/jobs", headers={"Host": host})[0] == 200, host
        assert srv.json("GET", "/api/jobs", headers={"Host": "other.test"})[0] == 403


# ---- job ids ---------------------------------------------------------------------------------


def test_job_ids_are_unguessable_and_jobs_carry_a_short_number(srv: ThreadServer) -> None:
    jobs = []
    for _ in range(3):
        status, job = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "true"})
        assert status == 201, job
        jobs.append(job)
    ids = [job["id"] for job in jobs]
    assert len(set(ids)) == 3
    for job_id in ids:
        assert len(job_id) >= 22 and job_id.isascii(), job_id  # >= 128 random bits
        assert srv.json("GET", f"/api/jobs/{job_id}")[0] == 200
    numbers = [job["number"] for job in jobs]
    assert numbers == list(range(numbers[0], numbers[0] + 3)), numbers
    assert srv.json("GET", f"/api/jobs/{numbers[0]}")[0] == 404  # the number is no key
    assert srv.json("GET", f"/api/jobs/j{numbers[0]}")[0] == 404
    for job_id in ids:
        wait_closed(srv, job_id)


def test_gunicorn_checks_the_host_against_its_listening_port() -> None:
    """Under gunicorn SERVER_PORT is the listener's port, not one taken from the Host header."""
    with LiveServer() as srv:
        assert srv.json("GET", "/api/jobs", headers={"Host": f"localhost:{srv.port}"})[0] == 200
        for host in ("attacker.example", f"attacker.example:{srv.port}", "localhost:1"):
            assert srv.json("GET", "/api/jobs", headers={"Host": host})[0] == 403, host
