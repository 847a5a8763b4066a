"""The trace export (webapp/trace.py, GET /api/trace): Chrome Trace Event Format JSON that
Perfetto and chrome://tracing open, checked against the format's rules (tests/traceformat.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import traceformat
from webtest import wait_closed

from webapp import trace


def trace_of(srv: Any, query: str = "") -> dict[str, Any]:
    status, headers, body = srv.request("GET", f"/api/trace{query}")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Content-Disposition"].startswith("attachment; filename=")
    return json.loads(body)


def of_pid(doc: dict[str, Any], pid: int, ph: str) -> list[dict[str, Any]]:
    return [e for e in doc["traceEvents"] if e["pid"] == pid and e["ph"] == ph]


@pytest.fixture(scope="module")
def finished(srv: Any) -> dict[str, Any]:
    """A fork job that got one message, printed 3 lines, sent 3 messages and exited; and a
    spawn job with output only."""
    status, counter = srv.json(
        "POST",
        "/api/jobs",
        {"kind": "fork", "program": "counter.py", "args": ["3", "20"], "message": {"hi": 1}},
    )
    assert status == 201, counter
    status, echo = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "seq", "args": ["5"]})
    assert status == 201, echo
    return {"counter": wait_closed(srv, counter["id"]), "seq": wait_closed(srv, echo["id"])}


def test_one_job_is_a_valid_trace_with_its_life_lifecycle_messages_and_output(
    srv: Any, finished: dict[str, Any]
) -> None:
    job = finished["counter"]
    doc = trace_of(srv, f"?job={job['id']}")
    assert traceformat.problems(doc) == []
    pid = job["pid"]
    server = doc["otherData"]["server_pid"]
    assert doc["otherData"]["jobs"] == [job["id"]]

    names = {e["name"]: e["args"] for e in of_pid(doc, pid, "M")}
    assert names["process_name"]["name"] == f"#{job['number']} counter.py 3 20"
    (life,) = [e for e in of_pid(doc, pid, "X") if e["tid"] == pid]
    assert life["name"] == "counter.py 3 20" and life["args"]["running"] is False
    assert life["args"]["exit_code"] == 0
    # µs: the slice lasts from its spawn event to its close event, on the server's clock.
    status, answer = srv.json("GET", f"/api/jobs/{job['id']}/events")
    assert status == 200, answer
    at = {e["type"]: e["t"] for e in answer["events"]}
    assert life["dur"] == pytest.approx((at["close"] - at["spawn"]) * 1e6, abs=2)

    instants = [e["name"] for e in of_pid(doc, pid, "i") if e["cat"] == "lifecycle"]
    assert instants[0] == "spawn" and instants[-1] == "close" and "exit" in instants
    assert "disconnect" in instants

    starts = [e for e in doc["traceEvents"] if e["ph"] == "s"]
    ends = {e["id"]: e for e in doc["traceEvents"] if e["ph"] == "f"}
    to_child = [s for s in starts if s["pid"] == server]
    to_parent = [s for s in starts if s["pid"] == pid]
    assert len(to_child) == 1 and len(to_parent) == 3
    assert ends[to_child[0]["id"]]["pid"] == pid
    assert all(ends[s["id"]]["pid"] == server for s in to_parent)
    payloads = [e["args"]["message"] for e in of_pid(doc, pid, "i") if e["cat"] == "message"]
    assert json.loads(payloads[0]) == {"hi": 1}
    assert json.loads(payloads[-1]) == {"type": "count", "n": 3, "total": 3}

    counters = [e for e in of_pid(doc, pid, "C") if e["name"] == "output bytes"]
    assert counters and counters[-1]["args"]["stdout"] == len("count 1/3\ncount 2/3\ncount 3/3\n")
    assert [c["args"]["stdout"] for c in counters] == sorted(c["args"]["stdout"] for c in counters)


def test_every_kept_job_gets_a_named_track_of_its_own(srv: Any, finished: dict[str, Any]) -> None:
    doc = trace_of(srv)
    assert traceformat.problems(doc) == []
    _, listing = srv.json("GET", "/api/jobs")
    kept = [j["id"] for j in listing["jobs"]]
    assert sorted(doc["otherData"]["jobs"]) == sorted(kept)
    tracks = {
        e["pid"]: e["args"]["name"]
        for e in doc["traceEvents"]
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    for job in finished.values():
        assert tracks[job["pid"]].startswith(f"#{job['number']} ")  # as the page names it
    assert len(tracks) == len(kept) + 1  # and the server's


def test_unknown_or_empty_job_is_refused(srv: Any) -> None:
    status, body = srv.json("GET", "/api/trace?job=j424242")
    assert status == 404 and "GET /api/jobs" in body["error"]
    status, body = srv.json("GET", "/api/trace?job=")
    assert status == 400 and "leave it out" in body["error"]


def _job(job_id: str, pid: int | None, started: float, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "pid": pid, "kind": "fork", "program": "x.py", "args": [],
            "started_at": started, "ended_at": None, **extra}  # fmt: skip


def test_a_reused_pid_and_a_missing_pid_never_share_a_track() -> None:
    jobs = [_job("j1", 500, 10.0, ended_at=11.0), _job("j2", 500, 12.0), _job("j3", None, 13.0)]
    events = {
        "j1": [{"seq": 1, "type": "spawn", "t": 10.0, "data": {}}],
        "j2": [{"seq": 2, "type": "spawn", "t": 12.0, "data": {}}],
        "j3": [{"seq": 3, "type": "error", "t": 13.0, "data": {"message": "ENOENT"}}],
    }
    doc = trace.build(jobs, events, server_pid=1, now=20.0)
    assert traceformat.problems(doc) == []
    tracks = [e for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"]
    assert len({e["pid"] for e in tracks}) == 4
    running = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["args"].get("job") == "j2"]
    assert running[0]["args"]["running"] is True
    assert running[0]["ts"] + running[0]["dur"] == pytest.approx((20.0 - 10.0) * 1e6)


def test_a_dropped_notice_marks_the_gap_without_stretching_the_life() -> None:
    events = {
        "j1": [
            {"seq": 9, "type": "dropped", "t": 99.0, "data": {"count": 5}},
            {"seq": 10, "type": "stdout", "t": 11.0, "data": {"bytes": 4}},
            {"seq": 11, "type": "close", "t": 12.0, "data": {}},
        ]
    }
    doc = trace.build([_job("j1", 7, 10.0, ended_at=12.0)], events, server_pid=1, now=200.0)
    assert traceformat.problems(doc) == []
    (life,) = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == 7]
    assert life["dur"] == pytest.approx(2e6)
    (gap,) = [e for e in doc["traceEvents"] if e["name"] == "events dropped"]
    assert gap["ts"] == pytest.approx(1e6) and gap["args"]["count"] == 5


def test_the_checker_catches_what_the_viewers_reject() -> None:
    """The checker itself can fail: each rule, broken once."""
    bad = {
        "traceEvents": [
            {"name": "a", "ph": "X", "ts": 0, "pid": 1, "tid": 1},  # no dur
            {"name": "b", "ph": "i", "ts": 0, "pid": 1, "tid": 1, "s": "x"},
            {"name": "c", "ph": "C", "ts": 0, "pid": 1, "args": {"v": "high"}},
            {"name": "d", "ph": "s", "id": 1, "cat": "m", "ts": 5, "pid": 1, "tid": 1},
            {"name": "d", "ph": "f", "id": 1, "cat": "m", "ts": 4, "pid": 1, "tid": 1, "bp": "e"},
            {"name": "e", "ph": "s", "id": 2, "cat": "m", "ts": 5, "pid": 1, "tid": 1},
            {"name": "process_name", "ph": "M", "pid": 1, "args": {}},
            {"name": "f", "ph": "Z", "ts": 0, "pid": 1},
            {"name": "g", "ph": "i", "ts": -1, "pid": 1, "tid": 1},
        ]
    }
    found = "\n".join(traceformat.problems(bad))
    for needle in (
        "dur must be",
        "scope s must",
        "args must be an object of numbers",
        "before it starts",
        "no enclosing slice",
        "1 start(s) and 0 end(s)",
        "args.name must",
        "unknown phase",
        "ts must be",
    ):
        assert needle in found, (needle, found)
