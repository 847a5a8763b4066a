"""Runners without Redis (the embedded default): this server is the only one, and says so."""

from __future__ import annotations

from server import ThreadServer
from webtest import wait_closed


def test_the_server_is_the_one_runner_and_its_jobs_name_it(srv: ThreadServer) -> None:
    status, body = srv.json("GET", "/api/hosts")
    assert status == 200
    (me,) = body["hosts"]
    assert me["kind"] == "server" and me["pid"] == srv.pid and me["capacity"] == 32
    name = me["name"]
    status, job = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "true", "host": name})
    assert status == 201 and job["host"] == name
    wait_closed(srv, job["id"])
    events = srv.json("GET", f"/api/jobs/{job['id']}/events")[1]["events"]
    assert {e["host"] for e in events} == {name}
    status, body = srv.json("GET", "/api/status")
    assert body["runner"] == name and body["store"] == {"kind": "memory", "ok": True}


def test_a_job_for_another_runner_is_refused_with_the_list(srv: ThreadServer) -> None:
    status, body = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "true", "host": "x"})
    assert status == 400, body
    name = srv.json("GET", "/api/hosts")[1]["hosts"][0]["name"]
    assert "'x'" in body["error"] and name in body["error"]
