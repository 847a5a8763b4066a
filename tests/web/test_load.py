"""A burst of job requests against the real server: every one answered, nothing left behind.

500 clients ask for a job at the same moment (a barrier releases them together), twice, of a server
with the default 32 request threads and 32 live children. Each gets 201 or 429, none is lost
(every 201 is a job that runs and closes), and afterwards the worker is back where it started:
the same open fds and threads as after the first burst, no zombie children.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from server import LiveServer
from webtest import descendants, wait_for, zombie_children

CLIENTS = 500
JOB = {"kind": "spawn", "command": "true"}


def worker_of(srv: LiveServer) -> int:
    return wait_for(lambda: descendants(srv.pid)[:1], what="the gunicorn worker")[0]


def snapshot(pid: int) -> tuple[int, int, int]:
    """(open fds, threads, zombie children) of process `pid`."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return fds, threads, len(zombie_children(pid))


def burst(srv: LiveServer, count: int) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(count)

    def one(_: int) -> tuple[int, dict]:
        barrier.wait(60)
        return srv.json("POST", "/api/jobs", JOB, timeout=120)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def settled(srv: LiveServer) -> bool:
    status, body = srv.json("GET", "/api/status")
    return status == 200 and body["live_children"] == 0


def test_500_concurrent_job_requests_all_answered_nothing_left_behind() -> None:
    with LiveServer(["--max-jobs-kept", "2000", "--grace", "1"]) as srv:
        worker = worker_of(srv)
        # Warm up with a first burst: from here on the worker's request threads (up to
        # --threads, made as needed) and its one-time helpers exist.
        burst(srv, CLIENTS)
        wait_for(lambda: settled(srv), 120, "the warm-up jobs to close")
        fds, threads, _ = wait_for(lambda: snapshot(worker), what="a baseline")
        answers = burst(srv, CLIENTS)
        statuses = Counter(status for status, _body in answers)
        assert set(statuses) <= {201, 429}, statuses
        assert sum(statuses.values()) == CLIENTS
        assert statuses[201] >= 32, statuses  # at least the live-children limit ran
        for status, body in answers:
            if status == 429:
                assert "--max-children" in body["error"], body
        started = {body["id"] for status, body in answers if status == 201}
        wait_for(lambda: settled(srv), 120, "every job to close")
        kept = {job["id"]: job for job in srv.json("GET", "/api/jobs")[1]["jobs"]}
        assert started <= set(kept), "a 201 job is missing from the list"
        assert all(kept[job_id]["exit_code"] == 0 for job_id in started)
        wait_for(
            lambda: (s := snapshot(worker))[0] <= fds and s[1] <= threads and s[2] == 0,
            60,
            f"fds <= {fds}, threads <= {threads}, no zombie (now {snapshot(worker)})",
        )
        assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()
