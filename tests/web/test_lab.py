"""The transport lab (webapp/lab.py): the server's own parent measures each transport, the
numbers stream over the feed as `lab` events, one run at a time, bounded and cancellable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from webtest import NODE, Feed, descendants, wait_for

import ipc

ROOT = Path(__file__).resolve().parents[2]
#: Small enough for a test (about 2 s for every subject), big enough for a stable p50.
SMALL_RUN = {"rtt": 300, "msgs": 2000, "big": 5, "warmup": 50}


def lab_events_until_done(feed: Feed, run_id: str) -> list[dict[str, Any]]:
    got = feed.until(
        lambda m: (
            m.get("type") == "lab" and m["data"]["id"] == run_id and m["data"]["state"] != "running"
        ),
        timeout=120,
    )
    return [m for m in got if m.get("type") == "lab" and m["data"]["id"] == run_id]


def start(srv: Any, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = srv.json("POST", "/api/lab/runs", body)
    assert status == 202, reply
    return reply["run"]


def test_a_run_streams_every_subject_measured_by_the_server(srv: Any, feed: Feed) -> None:
    feed.subscribe(after=None)
    run = start(srv, SMALL_RUN)
    events = lab_events_until_done(feed, run["id"])
    final = events[-1]["data"]
    assert final["state"] == "done"
    assert events[-1]["job"] is None and events[-1]["pid"] == os.getpid()
    keys = [s["key"] for s in final["subjects"]]
    assert keys == ["floor", "pipe", "socketpair", "unix", "tcp"] + (["node"] if NODE else [])
    for subject in final["subjects"]:
        assert subject["state"] == "done", subject
        assert 0 < subject["rtt_p50_us"] <= subject["rtt_p99_us"], subject
        assert subject["msgs_per_s"] > 0 and subject["mb_per_s"] > 0, subject
        assert subject["rtt_done"] == subject["rtt_total"] == SMALL_RUN["rtt"]
    # Measured where the transports are: microseconds, not the ~2 ms of a browser's round
    # trip through HTTP and the WebSocket (what the old lab showed for every transport).
    socketpair = next(s for s in final["subjects"] if s["key"] == "socketpair")
    assert socketpair["rtt_p50_us"] < 1000, socketpair

    # Streamed as measured: the socketpair's p50 was on the feed while a later subject had
    # not started yet, and progress came in between.
    first_with_p50 = next(
        e["data"] for e in events if e["data"]["subjects"][2]["rtt_p50_us"] is not None
    )
    assert first_with_p50["subjects"][3]["state"] == "waiting"
    assert any(0 < e["data"]["subjects"][0]["rtt_done"] < SMALL_RUN["rtt"] for e in events)
    # Kept and shown by the API as well (a page that loads later).
    status, body = srv.json("GET", "/api/lab")
    assert status == 200 and body["run"]["id"] == run["id"] and body["run"]["state"] == "done"
    assert [s["key"] for s in body["subjects"]] == keys
    assert srv.json("GET", f"/api/lab/runs/{run['id']}")[1]["run"] == body["run"]


def test_one_run_at_a_time_and_cancel_stops_it_and_its_child(srv: Any, feed: Feed) -> None:
    feed.subscribe(after=None)
    run = start(srv, {"rtt": 20000, "msgs": 200000, "big": 100, "subjects": ["socketpair"]})
    # Wait until the child is being measured, then try a second run.
    feed.until(
        lambda m: m.get("type") == "lab" and m["data"]["subjects"][0]["rtt_done"] > 0,
        timeout=60,
    )
    status, body = srv.json("POST", "/api/lab/runs", {})
    assert status == 409, body
    assert run["id"] in body["error"] and "DELETE /api/lab/runs/" in body["error"]
    assert body["run"] == run["id"]

    lab_children = [c for c in ipc.children() if c.spawnargs[-1].endswith("echo_child.py")]
    assert len(lab_children) == 1
    status, body = srv.json("DELETE", f"/api/lab/runs/{run['id']}")
    assert status == 202, body
    final = lab_events_until_done(feed, run["id"])[-1]["data"]
    assert final["state"] == "cancelled" and final["reason"] == "cancelled by the user"
    assert final["subjects"][0]["state"] == "cancelled"
    assert final["subjects"][0]["msgs_per_s"] is None
    lab_children[0].wait_closed(timeout=30)
    assert lab_children[0].signal_code == "SIGKILL"
    assert srv.json("DELETE", f"/api/lab/runs/{run['id']}")[0] == 409
    # And the next run may start.
    again = start(srv, {**SMALL_RUN, "subjects": ["floor"]})
    done = lab_events_until_done(feed, again["id"])[-1]["data"]
    assert done["state"] == "done"
    wait_for(
        lambda: not [p for p in descendants(os.getpid()) if _cmdline(p).endswith("raw_echo.py")],
        what="the floor's child to be gone",
    )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"rtt": 0}, "'rtt' must be >= 10, not 0"),
        ({"rtt": True}, "'rtt' must be an integer from 10 to 20000, not True"),
        ({"big": 1000}, "'big' is 1000; the most allowed is 100"),
        ({"subjects": []}, "'subjects' has 0 items; at least 1 are allowed"),
        ({"subjects": ["carrier-pigeon"]}, "'subjects[0]' must be one of floor, pipe"),
        ({"rounds": 3}, "unknown field(s) 'rounds'"),
        ({"rtt": 1.5}, "'rtt' must be an integer"),
    ],
)
def test_bad_run_settings_get_a_400_that_says_what_to_change(
    srv: Any, body: dict[str, Any], needle: str
) -> None:
    status, reply = srv.json("POST", "/api/lab/runs", body)
    assert status == 400 and needle in reply["error"], reply


def test_unknown_runs_are_404(srv: Any) -> None:
    assert srv.json("GET", "/api/lab/runs/r999")[0] == 404
    status, body = srv.json("DELETE", "/api/lab/runs/r999")
    assert status == 404 and "GET /api/lab" in body["error"]


def compare_once(srv: Any, feed: Feed, out: Path) -> tuple[bool, list[str]]:
    """One `make bench --quick` run, then one lab run of the same workload: do they agree?"""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ipc_bench.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    bench = {row["subject"]: row for row in json.loads(out.read_text())["rows"]}
    run = start(srv, {**SMALL_RUN, "subjects": ["floor", "socketpair"]})
    final = lab_events_until_done(feed, run["id"])[-1]["data"]
    lab = {s["key"]: s for s in final["subjects"]}
    pairs = {"floor": bench["raw socketpair floor"], "socketpair": bench["ipc socketpair"]}
    agree, report = True, []
    for key, row in pairs.items():
        for what, ours, theirs, factor in (
            ("p50 µs", lab[key]["rtt_p50_us"], row["rtt_p50"] * 1e6, 3),
            ("msgs/s", lab[key]["msgs_per_s"], row["msgs_per_s"], 10),
        ):
            report.append(f"{key} {what}: lab {ours:.1f} vs bench {theirs:.1f}")
            agree = agree and theirs / factor < ours < theirs * factor
    return agree, report


def test_the_lab_agrees_with_make_bench(srv: Any, feed: Feed, tmp_path: Path) -> None:
    """The lab and `make bench` run the same workload (ipc_workload/); measured one after
    the other on this machine, their numbers agree within the noise of a busy 2-core VM.

    The bounds are deliberately wide: runs on a shared VM differ by ±15 %, and much more while
    the rest of this suite runs beside them (pipelined throughput most: 4x was seen). The p50
    must agree within a factor of 3, messages/s within a factor of 10, in one of two
    back-to-back comparisons (a burst of load from elsewhere can spoil one). What this catches
    is a lab that measures something else: the browser's HTTP round trip was ~100x the
    channel's p50, and its ~150 round trips/s ~1000x below the channel's messages/s.
    """
    feed.subscribe(after=None)
    reports = []
    for attempt in (1, 2):
        agree, report = compare_once(srv, feed, tmp_path / f"bench-{attempt}.json")
        reports.append(report)
        if agree:
            break
    print("\n".join(line for report in reports for line in report))
    assert agree, reports


def test_the_lab_and_make_bench_share_a_workload_that_imports_only_ipc() -> None:
    """The app's lab imports the workload package, not the benchmark scripts; and the workload
    imports nothing heavy (multiprocessing's spawned child re-imports it, and that time counts
    in the multiprocessing.Pipe start-up row)."""
    code = (
        "import sys, webapp.lab, ipc_workload; "
        "assert webapp.lab.workload is ipc_workload; "
        "assert not [m for m in sys.modules if m == 'bench' or m.startswith('bench.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    alone = "import sys, ipc_workload; print(sorted({'flask', 'webapp'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", alone], check=True, cwd=ROOT, timeout=60, capture_output=True
    )
    assert out.stdout.decode().strip() == "[]"
