"""Two servers and one agent sharing one Redis: every server shows every job live, actions
reach the runner that owns the child, a browser resumes on another server with no gap, and a
runner that dies is noticed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
from cluster import Cluster
from scaletest import lines, parent_pid, stdout_text
from server import LiveServer
from webtest import Feed, wait_for


@pytest.fixture
def feeds(cluster: Cluster) -> Iterator[dict[str, Feed]]:
    """A feed on each server, subscribed to every job from now on."""
    opened = {name: Feed(srv) for name, srv in cluster.servers.items()}
    for feed in opened.values():
        feed.subscribe()
    yield opened
    for feed in opened.values():
        feed.close()


def start(srv: LiveServer, body: dict) -> dict:
    status, job = srv.json("POST", "/api/jobs", body)
    assert status == 201, job
    return job


def test_every_server_lists_every_runner(cluster: Cluster) -> None:
    for srv in cluster.servers.values():
        status, body = srv.json("GET", "/api/hosts")
        assert status == 200, body
        hosts = {h["name"]: h for h in body["hosts"]}
        assert {"server-a", "server-b", "agent-1"} <= set(hosts)
        agent = hosts["agent-1"]
        assert agent["kind"] == "agent" and agent["pid"] == cluster.agents["agent-1"].pid
        assert agent["capacity"] == 32 and agent["live_children"] >= 0
        assert agent["heartbeat_age"] < 30
    status, body = cluster.servers["server-a"].json("GET", "/api/status")
    assert body["runner"] == "server-a" and body["store"]["kind"] == "redis"
    assert body["store"]["ok"] is True


def test_a_job_started_on_one_server_streams_exactly_on_the_other(
    cluster: Cluster, feeds: dict[str, Feed]
) -> None:
    a, b = cluster.servers["server-a"], cluster.servers["server-b"]
    job = start(a, {"kind": "spawn", "command": "seq", "args": ["1", "30000"]})
    assert job["host"] == "server-a"
    events = feeds["server-b"].events_of(job["id"])
    assert not [e for e in events if e["type"] == "dropped"]
    assert stdout_text(events) == lines(1, 30000)  # every line, exact, in order
    assert {e["host"] for e in events} == {"server-a"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    status, shown = b.json("GET", f"/api/jobs/{job['id']}")
    assert status == 200 and shown["state"] == "exited" and shown["exit_code"] == 0
    assert any(j["id"] == job["id"] for j in b.json("GET", "/api/jobs")[1]["jobs"])
    status, output = b.json("GET", f"/api/jobs/{job['id']}/output")
    assert status == 200 and output["stdout"] == lines(1, 30000)


def test_kill_send_and_stdin_reach_the_runner_that_owns_the_child(
    cluster: Cluster, feeds: dict[str, Feed]
) -> None:
    a, b = cluster.servers["server-a"], cluster.servers["server-b"]
    feed = feeds["server-a"]

    echo = start(a, {"kind": "fork", "program": "echo.py"})
    feed.until(lambda m: m.get("job") == echo["id"] and m["type"] == "spawn")
    status, body = b.json("POST", f"/api/jobs/{echo['id']}/send", {"message": {"hi": "über"}})
    assert status == 202, body
    got = feed.until(
        lambda m: (
            m.get("job") == echo["id"]
            and m["type"] == "message"
            and m["data"]["direction"] == "to_parent"
        )
    )
    assert got[-1]["data"]["message"] == {"hi": "über"}

    cat = start(a, {"kind": "spawn", "command": "cat"})
    status, body = b.json("POST", f"/api/jobs/{cat['id']}/stdin", {"data": "line 1\n", "end": True})
    assert status == 202 and body["queued"] == 7, body
    assert stdout_text(feed.events_of(cat["id"])) == "line 1\n"

    sleeper = start(a, {"kind": "spawn", "command": "sleep", "args": ["300"]})
    feed.until(lambda m: m.get("job") == sleeper["id"] and m["type"] == "spawn")
    status, body = b.json("POST", f"/api/jobs/{sleeper['id']}/kill", {"signal": "SIGKILL"})
    assert status == 202 and body["delivered"] is True and body["job"]["host"] == "server-a"
    exit_event = feed.until(lambda m: m.get("job") == sleeper["id"] and m["type"] == "exit")[-1]
    assert exit_event["data"]["signal"] == "SIGKILL"
    # the owner's own refusal comes back through the other server
    status, body = b.json("POST", f"/api/jobs/{sleeper['id']}/kill")
    assert status == 409 and "not running" in body["error"]
    b.json("POST", f"/api/jobs/{echo['id']}/kill")


def test_a_browser_resumes_on_the_other_server_with_no_gap(cluster: Cluster) -> None:
    a, b = cluster.servers["server-a"], cluster.servers["server-b"]
    # (server-b allows shell syntax) half now, half after the tab has moved, most likely
    job = start(b, {"kind": "exec", "command": "seq 1 20000; sleep 0.5; seq 20001 40000"})
    first = Feed(a)
    first.subscribe(job["id"], after=0)
    seen = first.until(lambda m: m["type"] == "stdout" and "20000\n" in m["data"]["text"])
    first.close()  # the browser's tab moves to server-b
    second = Feed(b)
    try:
        second.subscribe(job["id"], after=seen[-1]["seq"])
        rest = second.events_of(job["id"])
    finally:
        second.close()
    events = seen + rest
    assert not [e for e in events if e["type"] == "dropped"]
    assert stdout_text(events) == lines(1, 40000)
    assert rest[0]["seq"] > seen[-1]["seq"]


def test_a_job_placed_on_the_agent_runs_there(cluster: Cluster, feeds: dict[str, Feed]) -> None:
    a = cluster.servers["server-a"]
    job = start(a, {"kind": "spawn", "command": "seq", "args": ["1", "5000"], "host": "agent-1"})
    assert job["host"] == "agent-1"
    events = feeds["server-b"].events_of(job["id"])
    assert stdout_text(events) == lines(1, 5000)
    assert {e["host"] for e in events} == {"agent-1"}
    assert (
        events[0]["type"] == "spawn" and events[0]["data"]["ppid"] == cluster.agents["agent-1"].pid
    )

    sleeper = start(a, {"kind": "spawn", "command": "sleep", "args": ["300"], "host": "agent-1"})
    spawn = feeds["server-a"].until(
        lambda m: m.get("job") == sleeper["id"] and m["type"] == "spawn"
    )
    assert parent_pid(spawn[-1]["pid"]) == cluster.agents["agent-1"].pid
    status, body = cluster.servers["server-b"].json("POST", f"/api/jobs/{sleeper['id']}/kill")
    assert status == 202, body
    feeds["server-a"].until(lambda m: m.get("job") == sleeper["id"] and m["type"] == "close")


def test_the_policy_is_checked_where_the_request_arrives_and_on_the_runner(
    cluster: Cluster,
) -> None:
    a, b = cluster.servers["server-a"], cluster.servers["server-b"]
    forbidden = {"kind": "spawn", "command": "id", "host": "agent-1"}
    status, body = a.json("POST", "/api/jobs", forbidden)  # refused where it arrives
    assert status == 403, body
    # server-b allows any command, the agent does not: the agent refuses it itself
    status, body = b.json("POST", "/api/jobs", forbidden)
    assert status == 403 and "id" in body["error"], body
    status, body = b.json("POST", "/api/jobs", {"kind": "spawn", "command": "id"})
    assert status == 201 and body["host"] == "server-b"  # b's own policy, b's own child


def test_an_unknown_runner_is_refused_with_the_list(cluster: Cluster) -> None:
    a = cluster.servers["server-a"]
    status, body = a.json("POST", "/api/jobs", {"kind": "spawn", "command": "date", "host": "nope"})
    assert status == 400
    assert "'nope'" in body["error"] and "agent-1" in body["error"]
    status, body = a.json("POST", "/api/jobs", {"kind": "spawn", "command": "date", "host": 7})
    assert status == 400 and "'host'" in body["error"]


def test_an_agent_killed_with_sigkill_leaves_its_jobs_lost_within_15_s(
    cluster: Cluster, feeds: dict[str, Feed]
) -> None:
    a, b = cluster.servers["server-a"], cluster.servers["server-b"]
    doomed = cluster.add_agent("agent-doomed")
    job = start(a, {"kind": "spawn", "command": "sleep", "args": ["300"], "host": "agent-doomed"})
    spawn = feeds["server-b"].until(lambda m: m.get("job") == job["id"] and m["type"] == "spawn")
    child = spawn[-1]["pid"]
    try:
        os.kill(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        lost = feeds["server-b"].until(
            lambda m: m.get("job") == job["id"] and m["type"] == "lost", timeout=15
        )[-1]
        assert time.monotonic() - killed_at < 15
        assert lost["host"] == "agent-doomed" and "agent-doomed" in lost["data"]["message"]
        status, record = a.json("GET", f"/api/jobs/{job['id']}")
        assert status == 200 and record["state"] == "lost"
        status, body = b.json("POST", f"/api/jobs/{job['id']}/kill")
        assert status == 409 and "lost" in body["error"]
        hosts = [h["name"] for h in a.json("GET", "/api/hosts")[1]["hosts"]]
        assert "agent-doomed" not in hosts
        assert b.json("DELETE", f"/api/jobs/{job['id']}")[0] == 204  # a lost job can go
    finally:
        os.killpg(child, signal.SIGKILL)  # the dead agent's orphan (not ours to reap)
        wait_for(lambda: not os.path.exists(f"/proc/{child}") or _zombie(child), 10, "orphan")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_the_trace_covers_every_runner_and_inspectors_say_where_a_child_is(
    cluster: Cluster, feeds: dict[str, Feed]
) -> None:
    a, b = cluster.servers["server-a"], cluster.servers["server-b"]
    job = start(a, {"kind": "spawn", "command": "sleep", "args": ["300"]})
    feeds["server-b"].until(lambda m: m.get("job") == job["id"] and m["type"] == "spawn")
    try:
        status, trace = b.json("GET", f"/api/trace?job={job['id']}")
        assert status == 200, trace
        assert any(job["id"] in json.dumps(e) for e in trace["traceEvents"])
        status, body = b.json("GET", f"/api/jobs/{job['id']}/fds")
        assert status == 409 and "'server-a'" in body["error"], body
        assert a.json("GET", f"/api/jobs/{job['id']}/fds")[0] == 200  # where it runs
    finally:
        b.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})


def test_a_runner_that_does_not_answer_gets_a_clear_error_and_no_late_kill(
    cluster: Cluster, feeds: dict[str, Feed]
) -> None:
    a = cluster.servers["server-a"]
    paused = cluster.add_agent("agent-paused")
    job = start(a, {"kind": "spawn", "command": "sleep", "args": ["300"], "host": "agent-paused"})
    feeds["server-a"].until(lambda m: m.get("job") == job["id"] and m["type"] == "spawn")
    os.kill(paused.pid, signal.SIGSTOP)  # alive (not yet lost), but answers nothing
    try:
        status, body = a.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGTERM"})
        assert status == 504, body
        assert "'agent-paused' did not answer within 2 s" in body["error"]
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    # The request it finds when it wakes up is too old: skipped, not a surprise kill later.
    status, body = a.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    assert status == 202, body
    exit_event = feeds["server-a"].until(
        lambda m: m.get("job") == job["id"] and m["type"] == "exit"
    )[-1]
    assert exit_event["data"]["signal"] == "SIGKILL"
