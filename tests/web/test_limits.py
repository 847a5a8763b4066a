"""Every limit, each answered with a clear 4xx / 429 that changes nothing, and the stats events
(rss, cpu, ppid) that let the explorer chart a child."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from server import ThreadServer
from webtest import Feed, wait_closed, wait_for

from webapp.__main__ import app_config, display_url, parse_args


def start(srv: ThreadServer, body: dict) -> tuple[int, dict]:
    return srv.json("POST", "/api/jobs", body)


def test_live_children_limit_is_429_until_one_ends() -> None:
    with ThreadServer({"MAX_CHILDREN": 2}) as srv:
        a = start(srv, {"kind": "spawn", "command": "sleep", "args": ["30"]})[1]
        start(srv, {"kind": "spawn", "command": "sleep", "args": ["30"]})
        status, answer = start(srv, {"kind": "spawn", "command": "echo"})
        assert status == 429 and "limit is 2" in answer["error"] and answer["limit"] == 2
        status, answer = srv.json("GET", "/getSum")  # demo children count too
        assert status == 429
        assert len(srv.json("GET", "/api/jobs")[1]["jobs"]) == 2
        srv.json("POST", f"/api/jobs/{a['id']}/kill", {"signal": "SIGKILL"})
        wait_closed(srv, a["id"])
        assert start(srv, {"kind": "spawn", "command": "echo"})[0] == 201


def test_request_body_limit_is_413_json() -> None:
    with ThreadServer({"MAX_CONTENT_LENGTH": 1000}) as srv:
        status, _headers, body = srv.request(
            "POST",
            "/api/jobs",
            raw=json.dumps({"kind": "spawn", "command": "echo", "args": ["x" * 2000]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 413
        assert "1000-byte limit" in json.loads(body)["error"]
        assert srv.json("GET", "/api/jobs")[1]["jobs"] == []


def test_message_size_limit_is_413_for_send_and_first_message() -> None:
    with ThreadServer({"MAX_MESSAGE_BYTES": 100}) as srv:
        status, answer = start(
            srv, {"kind": "fork", "program": "echo.py", "message": {"pad": "x" * 200}}
        )
        assert status == 413 and "100-byte limit" in answer["error"]
        assert srv.json("GET", "/api/jobs")[1]["jobs"] == []
        job = start(srv, {"kind": "fork", "program": "echo.py"})[1]
        status, answer = srv.json("POST", f"/api/jobs/{job['id']}/send", {"message": "y" * 200})
        assert status == 413
        assert srv.json("POST", f"/api/jobs/{job['id']}/send", {"message": "ok"})[0] == 202
        srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGTERM"})
        wait_closed(srv, job["id"])


class OneProgram:
    """A catalogue of one test script, named "big.py"."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def list_programs(self) -> list[dict]:
        return [{"name": "big.py", "runtime": "python", "path": str(self.path)}]

    def get_program(self, name: str) -> dict | None:
        return self.list_programs()[0] if name == "big.py" else None


def test_a_child_message_over_the_limit_is_an_error_event(tmp_path: Path) -> None:
    script = tmp_path / "big.py"
    # Raw bytes on the channel (the child's own ipc would refuse to send it): one JSON line.
    script.write_text(
        "import os, time\n"
        "fd = int(os.environ['NODE_CHANNEL_FD'])\n"
        "os.write(fd, b'\"' + b'x' * 5000 + b'\"\\n')\n"
        "time.sleep(1)\n"
    )
    with ThreadServer({"MAX_MESSAGE_BYTES": 1000, "CATALOG": OneProgram(script)}) as srv:
        job = start(srv, {"kind": "fork", "program": "big.py", "transport": "socketpair"})[1]
        wait_closed(srv, job["id"])
        events = srv.json("GET", f"/api/jobs/{job['id']}/events")[1]["events"]
        errors = [e for e in events if e["type"] == "error"]
        assert errors and errors[0]["data"]["type"] == "MessageTooLargeError", events
        assert not [e for e in events if e["type"] == "message"]
        assert srv.json("GET", "/api/status")[0] == 200  # the server carries on


def test_output_kept_per_job_is_capped() -> None:
    with ThreadServer({"MAX_OUTPUT_PER_JOB": 10_000}) as srv:
        job = start(srv, {"kind": "fork", "program": "flood.py", "args": ["100000"]})[1]
        info = wait_closed(srv, job["id"])
        assert info["output_bytes"] == 100_000 and info["output_truncated"] is True
        output = srv.json("GET", f"/api/jobs/{job['id']}/output")[1]
        assert len(output["stdout"]) == 10_000 and output["limit"] == 10_000


def test_jobs_kept_are_capped_oldest_finished_first() -> None:
    with ThreadServer({"MAX_JOBS_KEPT": 3}) as srv:
        ids = []
        for _ in range(5):
            job = start(srv, {"kind": "spawn", "command": "true"})[1]
            wait_closed(srv, job["id"])
            ids.append(job["id"])
        kept = [j["id"] for j in srv.json("GET", "/api/jobs")[1]["jobs"]]
        assert kept == ids[-3:]


def test_stdin_pending_limit() -> None:
    with ThreadServer({"MAX_CONTENT_LENGTH": 200_000}) as srv:
        job = start(srv, {"kind": "spawn", "command": "sleep", "args": ["30"]})[1]
        path = f"/api/jobs/{job['id']}/stdin"
        statuses = [srv.json("POST", path, {"data": "x" * 100_000})[0] for _ in range(4)]
        assert statuses[0] == 202 and 429 in statuses  # sleep never reads: the pipe fills
        srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
        wait_closed(srv, job["id"])


def test_send_queue_limit_is_429_while_the_child_does_not_read() -> None:
    """A fork child that stops reading (here SIGSTOP, which any client may send) must not
    grow the server's memory without bound through POST /send: past the bytes queued on its
    channel the answer is 429 saying how much waits, and sending works again once it reads."""
    limit = 300_000
    with ThreadServer({"MAX_SEND_QUEUE_BYTES": limit}) as srv:
        job = start(srv, {"kind": "fork", "program": "echo.py"})[1]
        child = srv.services.jobs.get(job["id"]).child
        assert srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGSTOP"})[0] == 202
        path = f"/api/jobs/{job['id']}/send"
        message = "x" * 100_000
        status, answer = 202, None
        for _ in range(200):  # 20 MB: far more than the kernel's buffers and the limit
            status, answer = srv.json("POST", path, {"message": message})
            assert child.queued_bytes <= limit
            if status != 202:
                break
        assert status == 429, "every send was accepted while the child did not read"
        assert f"{child.queued_bytes} bytes" in answer["error"], answer
        assert "wait" in answer["error"] and "--max-send-queue" in answer["error"]
        assert child.queued_bytes <= limit
        assert srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGCONT"})[0] == 202
        wait_for(
            lambda: srv.json("POST", path, {"message": "again"})[0] == 202,
            what="a send accepted once the child reads again",
        )
        srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
        wait_closed(srv, job["id"])


def test_stats_events_carry_rss_cpu_and_ppid() -> None:
    with ThreadServer({"STATS_INTERVAL": 0.1}) as srv:
        feed = Feed(srv)
        try:
            feed.subscribe(None, after=None)
            job = start(srv, {"kind": "fork", "program": "counter.py", "args": ["50", "100"]})[1]
            stats = [
                m
                for m in feed.until(
                    lambda m: m.get("type") == "stats" and m["data"]["cpu"] is not None
                )
                if m.get("type") == "stats"
            ]
        finally:
            feed.close()
        data = stats[-1]["data"]
        assert stats[-1]["job"] == job["id"] and stats[-1]["pid"] == job["pid"]
        assert data["rss"] > 1_000_000 and data["ppid"] == os.getpid()
        assert data["cpu"] >= 0
        srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGTERM"})
        wait_closed(srv, job["id"])


def test_cli_options_and_url() -> None:
    args = parse_args(["--port", "9000", "--max-children", "4", "--allow-any-command"])
    assert (args.port, args.max_children, args.allow_any_command) == (9000, 4, True)
    assert args.host == "127.0.0.1"  # safe by default
    assert display_url("127.0.0.1", 8000, "t0k") == "http://127.0.0.1:8000/?token=t0k"
    assert display_url("::1", 8000, "t") == "http://[::1]:8000/?token=t"
    with pytest.raises(SystemExit):
        parse_args(["--max-children", "0"])
    config = app_config(parse_args(["--max-ws-message", "10", "--max-jobs-kept", "5"]))
    assert (config["WS_MAX_MESSAGE_BYTES"], config["MAX_JOBS_KEPT"]) == (10, 5)
    assert config["TOKEN"] is None  # made at start, random


def test_stats_list_a_childs_own_children_for_the_process_tree() -> None:
    with ThreadServer({"STATS_INTERVAL": 0.1}) as srv:
        feed = Feed(srv)
        try:
            feed.subscribe(None, after=None)
            job = start(srv, {"kind": "fork", "program": "grandchildren.py", "args": ["2", "30"]})[
                1
            ]
            got = feed.until(lambda m: m.get("type") == "stats" and len(m["data"]["children"]) == 2)
        finally:
            feed.close()
        assert got[-1]["job"] == job["id"]
        srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
        wait_closed(srv, job["id"])
