"""The seeds' endpoints, answered by a real forked child over each transport, their exact
bodies; a crashing or silent child never hangs the request; inline work makes the server late,
a child does not."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from server import ThreadServer
from webtest import Feed, needs_node, wait_for

from webapp import catalog

PY_TRANSPORTS = ["pipe", "socketpair", "unix", "tcp"]
NODE_TRANSPORTS = ["socketpair", "unix", "tcp"]
SEEDS = [
    ("/getSum", "50005000"),
    ("/sum", "sumRes is 4999950000"),
    ("/compute?min=0&max=1000000", "结果: 499999500000"),
]


def get_text(srv: ThreadServer, path: str) -> tuple[int, str, str]:
    status, headers, body = srv.request("GET", path)
    return status, headers.get("Content-Type", ""), body.decode()


@pytest.mark.parametrize("transport", PY_TRANSPORTS)
@pytest.mark.parametrize(("path", "expected"), SEEDS, ids=[s[0] for s in SEEDS])
def test_seed_endpoints_in_a_python_child(
    srv: ThreadServer, path: str, expected: str, transport: str
) -> None:
    sep = "&" if "?" in path else "?"
    status, ctype, body = get_text(srv, f"{path}{sep}transport={transport}")
    assert (status, body) == (200, expected)
    assert ctype == "text/plain; charset=utf-8"


@needs_node
@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
@pytest.mark.parametrize(("path", "expected"), SEEDS, ids=[s[0] for s in SEEDS])
def test_seed_endpoints_in_the_seeds_node_children(
    srv: ThreadServer, path: str, expected: str, transport: str
) -> None:
    sep = "&" if "?" in path else "?"
    status, _, body = get_text(srv, f"{path}{sep}transport={transport}&runtime=node")
    assert (status, body) == (200, expected)


def test_compute_defaults_and_inline_mode(srv: ThreadServer) -> None:
    assert get_text(srv, "/compute")[2] == "结果: 4999999950000000"  # 0 <= i < 1e8
    assert get_text(srv, "/compute?min=10&max=1e3")[2] == f"结果: {sum(range(10, 1000))}"
    assert get_text(srv, "/getSum?mode=inline")[2] == "50005000"
    assert get_text(srv, "/sum?mode=inline")[2] == "sumRes is 4999950000"


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("/getSum?transport=smoke-signals", "unknown transport"),
        ("/sum?runtime=ruby", "'runtime'"),
        ("/compute?mode=sideways", "'mode'"),
        ("/compute?min=abc", "'min' must be an integer"),
        ("/compute?max=1.5", "'max' must be an integer"),
        ("/compute?max=1e20", "the most allowed"),
        ("/getSum?runtime=node&transport=pipe", "pipe"),
    ],
)
def test_bad_demo_queries_are_400(srv: ThreadServer, query: str, text: str) -> None:
    status, body = srv.json("GET", query)
    assert status == 400 and text in body["error"], body


def test_the_demo_child_is_a_job_on_the_feed(srv: ThreadServer, feed: Feed) -> None:
    feed.subscribe(None, after=None)
    assert get_text(srv, "/getSum")[2] == "50005000"
    got = feed.until(lambda m: m.get("type") == "close")
    job = got[-1]["job"]
    mine = [m for m in got if m.get("job") == job and m["type"] == "message"]
    assert [m["data"]["direction"] for m in mine] == ["to_child", "to_parent"]
    assert mine[1]["data"]["message"] == 50005000
    info = srv.json("GET", f"/api/jobs/{job}")[1]
    assert info["label"] == "demo /getSum" and info["program"] == "compute.py"


class FakeCatalog:
    """The real catalogue with `compute.py` swapped for a script of the test's."""

    def __init__(self, script: Path) -> None:
        self.script = script

    def list_programs(self) -> list[Any]:
        return catalog.list_programs()

    def get_program(self, name: str) -> Any:
        if name == "compute.py":
            return {"name": name, "runtime": "python", "path": str(self.script)}
        return catalog.get_program(name)


def test_a_crashing_child_answers_error_and_an_error_event(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text("from ipc import parent\nraise SystemExit('boom')\n")
    with ThreadServer({"CATALOG": FakeCatalog(script)}) as srv:
        feed = Feed(srv)
        try:
            feed.subscribe(None, after=None)
            status, _, body = get_text(srv, "/getSum")
            assert (status, body) == (502, "error")
            got = feed.until(lambda m: m.get("type") == "error")
            assert "without an answer" in got[-1]["data"]["message"]
        finally:
            feed.close()


def test_a_silent_child_is_killed_after_the_demo_timeout(tmp_path: Path) -> None:
    script = tmp_path / "silent.py"
    script.write_text("import time\nfrom ipc import parent\ntime.sleep(60)\n")
    with ThreadServer({"CATALOG": FakeCatalog(script), "DEMO_TIMEOUT": 0.5}) as srv:
        status, _, body = get_text(srv, "/sum")
        assert (status, body) == (504, "error")
        job = srv.json("GET", "/api/jobs")[1]["jobs"][-1]
        wait_for(lambda: srv.json("GET", f"/api/jobs/{job['id']}")[1]["signal"] == "SIGKILL")


def heartbeats_during(srv: ThreadServer, path: str) -> list[float]:
    """late_ms of the feed's heartbeats while `path` is being answered."""
    feed = Feed(srv)
    result: dict[str, Any] = {}
    try:
        feed.subscribe(None, after=None, heartbeat=True)
        feed.until(lambda m: m.get("type") == "heartbeat")  # ticking before the work starts
        worker = threading.Thread(target=lambda: result.update(r=get_text(srv, path)))
        worker.start()
        lates: list[float] = []
        while worker.is_alive():
            msg = feed.recv()
            if msg.get("type") == "heartbeat":
                lates.append(msg["late_ms"])
        worker.join()
        # Three beats after the answer: the late ones queued behind inline work show up here,
        # and a fast child answer (Node sums 6e7 in ~60 ms) still gives beats to compare.
        # The feed carries the job's own events too, so count heartbeats, not messages.
        after = 0
        while after < 3:
            msg = feed.recv()
            if msg.get("type") == "heartbeat":
                lates.append(msg["late_ms"])
                after += 1
    finally:
        feed.close()
    assert result["r"][0] == 200, result
    return lates


def test_heartbeat_is_late_with_inline_work_and_on_time_with_a_child(srv: ThreadServer) -> None:
    n = 60_000_000  # 0.6 to 2 s of sum() here: enough to see, short enough for the suite
    inline = heartbeats_during(srv, f"/compute?max={n}&mode=inline")
    child = heartbeats_during(srv, f"/compute?max={n}")
    assert max(inline) > 250, inline
    assert max(child) < max(inline) / 2, (child, inline)
    beat = srv.json("GET", "/api/heartbeat")[1]
    assert {"late_ms", "max_late_ms", "interval_ms"} <= set(beat)
    assert beat["interval_ms"] == 100


def test_python_child_sees_the_seed_message(srv: ThreadServer) -> None:
    """The seeds send the string "开始计算"; compute.py answers it with seed 000's sum."""
    status, job = srv.json(
        "POST", "/api/jobs", {"kind": "fork", "program": "compute.py", "message": "开始计算"}
    )
    assert status == 201
    feed = Feed(srv)
    try:
        feed.subscribe(job["id"], after=0)
        got = feed.until(
            lambda m: m.get("type") == "message" and m["data"]["direction"] == "to_parent"
        )
        assert got[-1]["data"]["message"] == 50005000
    finally:
        feed.close()
