"""Scale-out at its edges: several gunicorn workers, Redis going away mid-run, and the command
lines that must refuse a set-up that cannot work."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from cluster import AgentProcess, Cluster
from redis_server import RedisServer
from scaletest import stdout_text
from server import ROOT, LiveServer, ThreadServer, free_port
from webtest import Feed, wait_closed, wait_for


def test_two_workers_show_20_concurrent_launches_in_one_feed_in_seq_order(
    own_redis: RedisServer,
) -> None:
    with LiveServer(["--redis", own_redis.url, "--workers", "2"]) as srv:
        wait_for(lambda: len(srv.json("GET", "/api/hosts")[1]["hosts"]) == 2, what="2 workers")
        feed = Feed(srv)
        try:
            feed.subscribe()
            results: list[tuple[int, dict]] = []

            def launch(i: int) -> None:
                results.append(
                    srv.json(
                        "POST",
                        "/api/jobs",
                        {"kind": "spawn", "command": "echo", "args": [f"job {i}"]},
                    )
                )

            threads = [threading.Thread(target=launch, args=(i,)) for i in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert [status for status, _ in results] == [201] * 20, results
            ids = {job["id"] for _, job in results}
            assert len(ids) == 20  # numbers are global: no two workers gave the same
            closed: set[str] = set()
            got = feed.until(
                lambda m: (
                    m.get("type") == "close" and closed.add(m["job"]) is None and ids <= closed
                )
            )
        finally:
            feed.close()
        events = [e for e in got if "seq" in e]
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(set(seqs))  # one order, nothing twice
        for job_id in ids:
            mine = [e for e in events if e["job"] == job_id and e["type"] != "stats"]
            kinds = [e["type"] for e in mine]
            assert kinds[0] == "spawn" and kinds[-1] == "close", kinds
            number = next(job for _, job in results if job["id"] == job_id)["args"][0]
            assert stdout_text(mine) == f"{number}\n"
        runners = {e["host"] for e in events}
        assert runners <= {h["name"] for h in srv.json("GET", "/api/hosts")[1]["hosts"]}


def test_redis_stopped_mid_run_is_reported_and_recovered_from(own_redis: RedisServer) -> None:
    with Cluster(own_redis) as cluster:
        a = cluster.add_server("server-a")
        b = cluster.add_server("server-b")
        feed = Feed(b)
        try:
            feed.subscribe()
            status, job = a.json(
                "POST", "/api/jobs", {"kind": "spawn", "command": "echo", "args": ["before"]}
            )
            assert status == 201
            assert stdout_text(feed.events_of(job["id"])) == "before\n"

            own_redis.stop()
            for srv in (a, b):
                status, body = srv.json("GET", "/api/status")
                assert status == 200 and body["store"]["ok"] is False, body
                assert body["store"]["error"] and body["store"]["url"] == own_redis.url
                for method, path, payload in (
                    ("GET", "/api/jobs", None),
                    ("GET", f"/api/jobs/{job['id']}", None),
                    ("POST", "/api/jobs", {"kind": "spawn", "command": "date"}),
                ):
                    status, body = srv.json(method, path, payload)
                    assert status == 503, (path, body)
                    assert f"Redis at {own_redis.url} cannot be reached" in body["error"]
                    assert "the server reconnects by itself" in body["error"]

            own_redis.start()  # back, empty
            for srv in (a, b):
                wait_for(lambda s=srv: s.json("GET", "/api/status")[1]["store"]["ok"], what="Redis")
            status, job = a.json(
                "POST", "/api/jobs", {"kind": "spawn", "command": "echo", "args": ["after"]}
            )
            assert status == 201, job
            events = feed.events_of(job["id"])  # the feed opened before the outage goes on
            assert stdout_text(events) == "after\n"
            assert b.json("GET", f"/api/jobs/{job['id']}")[1]["state"] == "exited"
            hosts = {h["name"] for h in b.json("GET", "/api/hosts")[1]["hosts"]}
            assert {"server-a", "server-b"} <= hosts  # both runners joined again
        finally:
            feed.close()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webapp", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_workers_without_redis_are_refused_with_the_reason() -> None:
    done = run_cli("--workers", "2")
    assert done.returncode == 2
    assert "--workers 2 needs --redis URL" in done.stderr


def test_a_bad_or_unreachable_redis_is_refused_at_start() -> None:
    done = run_cli("--redis", "http://example.com")
    assert done.returncode == 2 and "redis://HOST:PORT/DB" in done.stderr
    port = str(free_port())  # (a port in use would be refused first)
    done = run_cli("--port", port, env={"IPC_EXPLORER_REDIS": "redis://127.0.0.1:1/0"})
    assert (
        done.returncode == 2 and "Redis at redis://127.0.0.1:1/0 cannot be reached" in done.stderr
    )
    done = run_cli("agent", "--name", "x", "--redis", "redis://:pw@127.0.0.1:1/0")
    assert done.returncode == 2
    assert "cannot be reached" in done.stderr and "pw" not in done.stderr.replace("***", "")


def test_an_agent_name_that_is_taken_is_refused(own_redis: RedisServer) -> None:
    first = AgentProcess(own_redis.url, "twin")
    first.start()
    try:
        done = run_cli("agent", "--redis", own_redis.url, "--name", "twin")
        assert done.returncode == 2
        assert "a runner named 'twin' is already live" in done.stderr
    finally:
        assert first.stop() == 0


def test_jobs_of_runners_that_are_gone_are_kept_up_to_a_bound(own_redis: RedisServer) -> None:
    def server(name: str, kept: int) -> ThreadServer:
        return ThreadServer(
            {"REDIS_URL": own_redis.url, "RUNNER_NAME": name, "MAX_JOBS_KEPT": kept}
        )

    def run(srv: ThreadServer, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            status, job = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "true"})
            assert status == 201, job
            wait_closed(srv, job["id"])
            ids.append(job["id"])
        return ids

    with server("watcher", 100) as watcher:
        with server("a", 3) as a:
            from_a = run(a, 3)
        assert sorted(j["id"] for j in watcher.json("GET", "/api/jobs")[1]["jobs"]) == sorted(
            from_a
        )  # a stopped cleanly: its finished jobs stay readable
        with server("b", 2) as b:
            from_b = run(b, 1)
        # b left too: 4 orphans, b keeps at most 2; the oldest go (with their events)
        left = [j["id"] for j in watcher.json("GET", "/api/jobs")[1]["jobs"]]
        assert len(left) == 2 and from_b[0] in left, left
        gone = next(job for job in from_a if job not in left)
        assert watcher.json("GET", f"/api/jobs/{gone}/events")[0] == 404
