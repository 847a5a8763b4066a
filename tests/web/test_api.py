"""Jobs over REST, end to end with real children: each kind's exact event order, the actions
(kill, send, stdin, delete, export), and every bad input answered with a 4xx that changes
nothing."""

from __future__ import annotations

import json
import re
import signal

import pytest
from server import ThreadServer
from webtest import Feed, lifecycle, needs_node, types, wait_closed, wait_for

import ipc

TRANSPORTS = ["pipe", "socketpair", "unix", "tcp"]


def start(srv: ThreadServer, body: dict) -> dict:
    status, job = srv.json("POST", "/api/jobs", body)
    assert status == 201, job
    return job


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fork_job_event_order(srv: ThreadServer, feed: Feed, transport: str) -> None:
    feed.subscribe(None, after=None)
    job = start(
        srv,
        {
            "kind": "fork",
            "program": "compute.py",
            "transport": transport,
            "message": {"min": 0, "max": 100},
        },
    )
    assert job["kind"] == "fork" and job["transport"] == transport and job["pid"] > 0
    events = feed.events_of(job["id"])
    # Output and messages travel on different fds, so only their own orders are fixed; the
    # lifecycle order is exact, and output always comes between spawn and close.
    kinds = types(events)
    lifecycle = [t for t in kinds if t != "stdout"]
    assert lifecycle[:3] == ["spawn", "message", "message"], kinds  # to_child, then the answer
    # The channel's EOF and the exit are seen on two fds: either may come first (as in Node).
    assert sorted(lifecycle[3:5]) == ["disconnect", "exit"], kinds
    assert lifecycle[5:] == ["close"], kinds
    assert "stdout" in kinds and kinds[0] == "spawn" and kinds[-1] == "close"
    messages = [e["data"] for e in events if e["type"] == "message"]
    assert messages == [
        {"direction": "to_child", "message": {"min": 0, "max": 100}},
        {"direction": "to_parent", "message": 4950},
    ]
    exit_event = next(e for e in events if e["type"] == "exit")
    assert exit_event["data"] == events[-1]["data"] == {"code": 0, "signal": None}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e["pid"] == job["pid"] for e in events)
    done = srv.json("GET", f"/api/jobs/{job['id']}")[1]
    assert done["state"] == "exited" and done["exit_code"] == 0 and done["signal"] is None


def test_spawn_job_event_order_and_stdin(srv: ThreadServer, feed: Feed) -> None:
    feed.subscribe(None, after=None)
    job = start(srv, {"kind": "spawn", "command": "cat"})
    status, answer = srv.json(
        "POST", f"/api/jobs/{job['id']}/stdin", {"data": "héllo\n", "end": True}
    )
    assert status == 202, answer
    events = feed.events_of(job["id"])
    assert lifecycle(events) == ["spawn", "exit", "close"]
    assert [e["data"] for e in events if e["type"] == "stdout"] == [{"text": "héllo\n", "bytes": 7}]
    output = srv.json("GET", f"/api/jobs/{job['id']}/output")[1]
    assert output["stdout"] == "héllo\n" and not output["truncated"]


def test_exec_job_result_and_order(srv: ThreadServer, feed: Feed) -> None:
    feed.subscribe(None, after=None)
    job = start(srv, {"kind": "exec", "command": "ls /nonexistent-dir-for-test"})
    events = feed.events_of(job["id"])
    assert lifecycle(events) == ["spawn", "exit", "close"]
    assert "stderr" in types(events)
    done = srv.json("GET", f"/api/jobs/{job['id']}")[1]
    assert done["result"]["ok"] is False
    assert done["exit_code"] == 2
    assert "Command failed with exit code 2" in done["result"]["error"]


def test_exec_file_timeout_kills_with_kill_signal(srv: ThreadServer) -> None:
    job = start(
        srv,
        {
            "kind": "exec_file",
            "command": "sleep",
            "args": ["30"],
            "timeout": 0.3,
            "kill_signal": "SIGINT",
        },
    )
    done = wait_closed(srv, job["id"])
    assert done["signal"] == "SIGINT" and done["exit_code"] is None
    assert done["result"]["timed_out"] is True
    assert done["state"] == "signaled"


def test_exec_max_buffer_kills_and_truncates(srv: ThreadServer) -> None:
    job = start(srv, {"kind": "exec_file", "command": "yes", "max_buffer": 1000})
    done = wait_closed(srv, job["id"])
    assert done["signal"] == "SIGTERM"
    assert done["result"]["max_buffer_exceeded"] is True
    assert len(done["result"]["stdout"]) == 1000


def test_spawn_of_a_missing_program_gives_an_error_event(srv: ThreadServer) -> None:
    with ThreadServer({"ALLOWED_COMMANDS": ("no-such-program-xyz",)}) as own:
        job = start(own, {"kind": "spawn", "command": "no-such-program-xyz"})
        done = wait_closed(own, job["id"])
        assert done["state"] == "failed"
        assert done["error"]["code"] == "ENOENT"
        events = own.json("GET", f"/api/jobs/{job['id']}/events")[1]["events"]
        assert lifecycle(events) == ["error", "close"]


@pytest.mark.parametrize(
    "sig", ["SIGKILL", "SIGHUP", "TERM", 9, "SIGRTMIN+1", int(signal.SIGRTMIN) + 2]
)
def test_kill_reports_the_signal_by_name(srv: ThreadServer, sig: str | int) -> None:
    """Signals without a Python name too: the real-time ones are named as `kill -l` does."""
    job = start(srv, {"kind": "fork", "program": "counter.py", "args": ["100", "50"]})
    wait_for(lambda: srv.json("GET", f"/api/jobs/{job['id']}")[1]["state"] == "running")
    status, answer = srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": sig})
    assert status == 202, answer
    name = ipc.signal_name(ipc.signal_number(sig))
    assert answer["signal"] == name and answer["delivered"] is True
    done = wait_closed(srv, job["id"])
    assert done["signal"] == name and done["exit_code"] is None
    assert done["state"] == "signaled"
    status, answer = srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGTERM"})
    assert status == 409 and "not running" in answer["error"]


def test_send_round_trip_and_delete(srv: ThreadServer, feed: Feed) -> None:
    feed.subscribe(None, after=None)
    job = start(srv, {"kind": "fork", "program": "echo.py"})
    status, answer = srv.json("POST", f"/api/jobs/{job['id']}/send", {"message": {"你好": [1, 2]}})
    assert status == 202, answer
    got = feed.until(lambda m: m.get("type") == "message" and m["data"]["direction"] == "to_parent")
    assert got[-1]["data"]["message"] == {"你好": [1, 2]}
    assert srv.json("DELETE", f"/api/jobs/{job['id']}")[0] == 409  # still running
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGTERM"})
    wait_closed(srv, job["id"])
    status, answer = srv.json("POST", f"/api/jobs/{job['id']}/send", {"message": 1})
    assert status == 409 and "closed" in answer["error"]
    assert srv.request("DELETE", f"/api/jobs/{job['id']}")[0] == 204
    assert srv.json("GET", f"/api/jobs/{job['id']}")[0] == 404
    assert srv.json("GET", f"/api/jobs/{job['id']}/events")[0] == 404


def test_events_export_as_ndjson_and_after(srv: ThreadServer) -> None:
    job = start(srv, {"kind": "spawn", "command": "echo", "args": ["x"]})
    wait_closed(srv, job["id"])
    status, headers, body = srv.request(
        "GET", f"/api/jobs/{job['id']}/events", headers={"Accept": "application/x-ndjson"}
    )
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted(e["type"] for e in lines) == ["close", "exit", "spawn", "stdout"]
    after = lines[1]["seq"]
    events = srv.json("GET", f"/api/jobs/{job['id']}/events?after={after}")[1]["events"]
    assert events == lines[2:]


def test_programs_are_listed_without_paths(srv: ThreadServer) -> None:
    programs = srv.json("GET", "/api/programs")[1]["programs"]
    names = {p["name"] for p in programs}
    assert {"compute.py", "echo.py", "flood.py", "compute.js"} <= names
    assert all("path" not in p for p in programs)


BAD = [
    ("not json", b"{nope", "application/json", 400, "not valid JSON"),
    ("not an object", b"[1, 2]", "application/json", 400, "JSON object"),
    ("no content type", b'{"kind": "spawn"}', "text/plain", 400, "Content-Type"),
    ("unknown kind", {"kind": "launch"}, None, 400, "'kind' must be one of"),
    ("unknown program", {"kind": "fork", "program": "nope.py"}, None, 400, "unknown program"),
    ("program path", {"kind": "fork", "program": "/bin/sh"}, None, 400, "unknown program"),
    (
        "unknown transport",
        {"kind": "fork", "program": "echo.py", "transport": "carrier-pigeon"},
        None,
        400,
        "'transport' must be one of",
    ),
    ("args type", {"kind": "spawn", "command": "echo", "args": "hi"}, None, 400, "list of"),
    ("command type", {"kind": "spawn", "command": 5}, None, 400, "non-empty string"),
    ("no command", {"kind": "spawn"}, None, 400, "'command' is required"),
    ("unknown field", {"kind": "spawn", "command": "ls", "shel": True}, None, 400, "'shel'"),
    (
        "bad timeout",
        {"kind": "exec", "command": "ls", "timeout": "soon"},
        None,
        400,
        "'timeout' must be",
    ),
    (
        "bad signal",
        {"kind": "exec", "command": "ls", "kill_signal": "SIGNOPE"},
        None,
        400,
        "unknown signal",
    ),
    ("bad cwd", {"kind": "spawn", "command": "ls", "cwd": "/no/such"}, None, 400, "directory"),
    ("env type", {"kind": "spawn", "command": "ls", "env": {"A": 1}}, None, 400, "'env['A']'"),
]


@pytest.mark.parametrize(("name", "body", "ctype", "status", "text"), BAD, ids=[b[0] for b in BAD])
def test_bad_job_requests_are_refused_and_change_nothing(
    srv: ThreadServer, name: str, body: object, ctype: str | None, status: int, text: str
) -> None:
    before = srv.json("GET", "/api/jobs")[1]["jobs"]
    if ctype is None:
        got, answer = srv.json("POST", "/api/jobs", body)
    else:
        code, _h, raw = srv.request(
            "POST",
            "/api/jobs",
            raw=body,
            headers={"Content-Type": ctype},  # type: ignore[arg-type]
        )
        got, answer = code, json.loads(raw)
    assert got == status, answer
    assert text in answer["error"], answer
    assert srv.json("GET", "/api/jobs")[1]["jobs"] == before


def test_bad_action_requests(srv: ThreadServer) -> None:
    assert srv.json("GET", "/api/jobs/j999999")[0] == 404
    job = start(srv, {"kind": "fork", "program": "echo.py"})
    jid = job["id"]
    status, answer = srv.json("POST", f"/api/jobs/{jid}/kill", {"signal": "SIGBOGUS"})
    assert status == 400 and "unknown signal" in answer["error"]
    status, answer = srv.json("POST", f"/api/jobs/{jid}/kill", {"signal": [1]})
    assert status == 400
    status, answer = srv.json("POST", f"/api/jobs/{jid}/send", {"msg": 1})
    assert status == 400 and "unknown field(s) 'msg'" in answer["error"]
    assert "its fields are message" in answer["error"]
    status, answer = srv.json("POST", f"/api/jobs/{jid}/send", {})
    assert status == 400 and "'message' is required" in answer["error"]
    status, answer = srv.json("POST", f"/api/jobs/{jid}/stdin", {"data": "x"})
    assert status == 409 and "only spawn jobs" in answer["error"]
    status, answer = srv.json("GET", f"/api/jobs/{jid}/events?after=abc")
    assert status == 400
    status, answer = srv.json("PUT", "/api/jobs")
    assert status == 405 and "error" in answer
    status, answer = srv.json("GET", "/api/nothing-here")
    assert status == 404 and "error" in answer
    srv.json("POST", f"/api/jobs/{jid}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, jid)


@needs_node
def test_spawn_with_an_extra_stdio_pipe_gives_fd3_events(srv: ThreadServer, feed: Feed) -> None:
    """Seed 003: spawn('node', ['fd3-child.js'], {stdio: [null, null, null, 'pipe']})."""
    feed.subscribe(None, after=None)
    job = start(
        srv,
        {
            "kind": "spawn",
            "command": "node",
            "args": ["fd3-child.js"],
            "stdio": [None] * 3 + ["pipe"],
        },
    )
    events = feed.events_of(job["id"])
    fd3 = "".join(e["data"]["text"] for e in events if e["type"] == "fd3")
    assert fd3 == "hello master process!"
    assert [t for t in lifecycle(events) if t != "fd3"] == ["spawn", "exit", "close"]


@pytest.mark.parametrize(
    ("stdio", "text"),
    [(["inherit"], "server's own terminal"), ("pipe", "list of"), (["pipe"] * 9, "list of")],
)
def test_bad_stdio_is_400(srv: ThreadServer, stdio: object, text: str) -> None:
    status, answer = srv.json(
        "POST", "/api/jobs", {"kind": "spawn", "command": "ls", "stdio": stdio}
    )
    assert status == 400 and text in answer["error"]


@pytest.mark.parametrize("command", ["python3", pytest.param("node", marks=needs_node)])
def test_version_of_an_interpreter_is_allowed(srv: ThreadServer, command: str) -> None:
    job = start(srv, {"kind": "exec_file", "command": command, "args": ["--version"]})
    done = wait_closed(srv, job["id"])
    assert done["exit_code"] == 0
    assert re.search(r"\d+\.\d+", done["result"]["stdout"] + done["result"]["stderr"])


def test_an_unexpected_error_is_a_json_500_and_the_server_carries_on() -> None:
    class BrokenCatalog:
        def list_programs(self) -> list:
            raise RuntimeError("catalogue on fire")

    with ThreadServer({"CATALOG": BrokenCatalog()}) as srv:
        status, answer = srv.json("GET", "/api/programs")
        assert status == 500 and "RuntimeError" in answer["error"]
        assert srv.json("GET", "/api/jobs")[0] == 200


def test_status_reports_every_limit_and_the_accepted_hosts(srv: ThreadServer) -> None:
    """/api/status is where a user learns what bounds them: every limit in force, by its
    setting's name, and the Host values this server answers to."""
    from webapp.api import LIMITS

    status, body = srv.json("GET", "/api/status")
    assert status == 200, body
    assert set(body["limits"]) == {name.lower() for name in LIMITS}
    assert body["limits"]["max_children"] == body["max_children"]
    assert all(isinstance(v, int | float) and v >= 0 for v in body["limits"].values())
    port = srv.port
    assert f"127.0.0.1:{port}" in body["allowed_hosts"]
    assert f"localhost:{port}" in body["allowed_hosts"]
    assert f"[::1]:{port}" in body["allowed_hosts"]
