"""Hostile request bodies: text that cannot become argv or env, JSON nested past any sense,
numbers JSON does not have. Each gets a 400 that names the field, and none costs a slot.

The lone surrogate ``"\\ud800"`` is valid JSON (``"\\ud800"`` escaped) but no UTF-8 string: it
cannot become an argument, a variable or stdin bytes. It used to be refused only by the kernel
interface, after a live-children slot was taken, and the slot was never given back.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from server import LiveServer, ThreadServer
from webtest import Feed, wait_closed

from ipc import wire

DEEP = 1500  # deeper than json.dumps goes; Node sends it

SURROGATE = "\ud800"

#: (request body, the field the 400 must name)
SURROGATE_BODIES = [
    ({"kind": "spawn", "command": "echo", "args": ["ok", SURROGATE]}, "args[1]"),
    ({"kind": "spawn", "command": "echo", "env": {"X": "a" + SURROGATE}}, "env['X']"),
    ({"kind": "spawn", "command": "echo", "env": {SURROGATE: "x"}}, "env"),
    ({"kind": "spawn", "command": "ech" + SURROGATE}, "command"),
    ({"kind": "exec", "command": "echo " + SURROGATE}, "command"),
    ({"kind": "exec_file", "command": "echo", "args": [SURROGATE]}, "args[0]"),
    ({"kind": "fork", "program": "echo.py", "args": [SURROGATE]}, "args[0]"),
    ({"kind": "fork", "program": "echo.py", "message": {"a": [SURROGATE]}}, "message['a'][0]"),
    ({"kind": "spawn", "command": "ls", "cwd": "/tmp" + SURROGATE}, "cwd"),
]


def test_lone_surrogates_are_400_naming_the_field_and_leak_no_slot() -> None:
    with LiveServer(["--max-children", "2"]) as srv:
        for body, field in SURROGATE_BODIES:
            for _ in range(2):  # twice each: a leaked slot per request would fill both
                status, answer = srv.json("POST", "/api/jobs", body)
                assert status == 400, (body, answer)
                assert field in answer["error"], answer
                assert "UTF-8" in answer["error"], answer
        status, listing = srv.json("GET", "/api/jobs")
        assert status == 200, listing
        assert listing["jobs"] == []
        assert srv.json("GET", "/api/status")[1]["live_children"] == 0
        # Both slots are free: two jobs start, and stdin refuses the surrogate too.
        cat = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "cat"})
        sleep = {"kind": "spawn", "command": "sleep", "args": ["60"]}
        sleeper = srv.json("POST", "/api/jobs", sleep)
        assert cat[0] == 201 and sleeper[0] == 201, (cat, sleeper)
        stdin = f"/api/jobs/{cat[1]['id']}/stdin"
        status, answer = srv.json("POST", stdin, {"data": SURROGATE})
        assert status == 400 and "'data'" in answer["error"], answer
        assert srv.json("POST", stdin, {"data": "x", "end": True})[0] == 202
        srv.json("POST", f"/api/jobs/{sleeper[1]['id']}/kill", {"signal": "SIGKILL"})
        assert wait_closed(srv, cat[1]["id"])["exit_code"] == 0
        wait_closed(srv, sleeper[1]["id"])
        assert srv.json("GET", "/api/jobs")[0] == 200
        assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_failure_after_the_slot_is_taken_gives_it_back() -> None:
    """A failure nobody foresaw while the job starts (here: a catalogue whose program path
    holds a lone surrogate, so ipc cannot make it an argument) is a 500, but the slot it took
    is free again.

    ipc.fork leaves its socketpair unclosed when the launch raises UnicodeEncodeError (an ipc
    bug, reported; ipc is not this test's subject): its ResourceWarning is collected here and
    ignored, so it cannot surface in a later test.
    """

    class Program:
        name, runtime, description, info = "odd.py", "python", "", {}
        path = "/tmp/odd" + SURROGATE + ".py"

    class OddCatalog:
        def list_programs(self) -> list:
            return [Program()]

        def get_program(self, name: str) -> Program | None:
            return Program() if name == "odd.py" else None

    with ThreadServer({"CATALOG": OddCatalog(), "MAX_CHILDREN": 1}) as srv:
        for _ in range(3):
            status, answer = srv.json("POST", "/api/jobs", {"kind": "fork", "program": "odd.py"})
            assert status == 500, answer
            assert "error" in answer
        assert srv.json("GET", "/api/jobs") == (200, {"jobs": []})
        assert srv.services.jobs.live_count() == 0
        status, job = srv.json("POST", "/api/jobs", {"kind": "spawn", "command": "true"})
        assert status == 201, job
        wait_closed(srv, job["id"])
    gc.collect()  # the leaked socketpair's ResourceWarning, here (see the docstring)


def raw_post(srv: ThreadServer, path: str, raw: bytes) -> tuple[int, dict]:
    status, _headers, body = srv.request(
        "POST", path, raw=raw, headers={"Content-Type": "application/json"}
    )
    return status, json.loads(body)


HOSTILE_JSON = [
    ("deep array", b"[" * 30000, "nested"),
    ("deep object", b'{"a":' * 30000, "nested"),
    ("deep message", b'{"kind": "fork", "program": "echo.py", "message": ' + b"[" * 200, "nested"),
    ("NaN", b'{"kind": "exec", "command": "ls", "max_buffer": NaN}', "NaN"),
    ("Infinity", b'{"kind": "exec", "command": "ls", "timeout": Infinity}', "Infinity"),
    ("-Infinity", b'{"kind": "exec", "command": "ls", "timeout": -Infinity}', "Infinity"),
    ("1e999", b'{"kind": "exec", "command": "ls", "max_buffer": 1e999}', "finite"),
    ("huge int", b'{"kind": "exec", "command": "ls", "timeout": ' + b"9" * 5000 + b"}", "JSON"),
    ("bad UTF-8", b'{"kind": "spawn", "command": "ls\xff"}', "UTF-8"),
]


@pytest.mark.parametrize(("name", "raw", "text"), HOSTILE_JSON, ids=[h[0] for h in HOSTILE_JSON])
def test_hostile_json_is_400_never_a_traceback(
    srv: ThreadServer, name: str, raw: bytes, text: str
) -> None:
    if name == "deep message":
        raw += b"]" * 200 + b"}"
    status, answer = raw_post(srv, "/api/jobs", raw)
    assert status == 400, answer
    assert text in answer["error"], answer
    assert srv.json("GET", "/api/jobs")[0] == 200


def test_hostile_json_on_the_job_actions_is_400(srv: ThreadServer) -> None:
    status, job = srv.json("POST", "/api/jobs", {"kind": "fork", "program": "echo.py"})
    assert status == 201, job
    for action in ("send", "kill", "stdin"):
        for raw in (b'{"message": ' + b"[" * 30000, b'{"signal": NaN, "message": NaN}'):
            status, answer = raw_post(srv, f"/api/jobs/{job['id']}/{action}", raw)
            assert status == 400, (action, raw[:40], answer)
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, job["id"])


def test_a_childs_lone_surrogate_deep_nesting_and_nan_reach_the_page_exactly(
    tmp_path: Path,
) -> None:
    """A raw child may send ``"\\ud800"`` escaped (valid JSON, but its lone surrogate is no
    UTF-8 text: GET /api/events was a 500 for as long as the event was kept, and every feed
    connection that replayed it broke), an array nested 1500 deep (Node sends it; json.dumps
    stops near 1000: the event was lost), or ``NaN`` (which no browser's JSON.parse takes).
    The surrogate reaches the page as the same escape, so JSON.parse gives the child's exact
    string; the deep array whole; NaN as null, as JSON.stringify makes it."""
    script = tmp_path / "surrogate.py"
    frames = (
        rb'{"text": "a\ud800b", "\udfff": ["\ud83d\ude00"]}'
        + b"\n"
        + b"[NaN, -Infinity, 1.5]\n"
        + b"[" * DEEP
        + b"]" * DEEP
        + b"\n"
    )
    script.write_text(f"import os\nos.write(int(os.environ['NODE_CHANNEL_FD']), {frames!r})\n")

    class Program:
        name, runtime, description, info = "surrogate.py", "python", "", {}
        path = str(script)

    class Catalog:
        def list_programs(self) -> list:
            return [Program()]

        def get_program(self, name: str) -> Program | None:
            return Program() if name == "surrogate.py" else None

    with ThreadServer({"CATALOG": Catalog()}) as srv:
        feed = Feed(srv)
        try:
            feed.subscribe(None, after=None)
            status, job = srv.json("POST", "/api/jobs", {"kind": "fork", "program": "surrogate.py"})
            assert status == 201, job
            events = feed.events_of(job["id"])
        finally:
            feed.close()
        # a real surrogate pair (an emoji) is its character; a lone one stays itself
        expected = [{"text": "a\ud800b", "\udfff": ["\U0001f600"]}, [None, None, 1.5]]
        deep: list = []
        for _ in range(DEEP - 1):
            deep = [deep]
        expected = [*expected, deep]

        def same(got: list) -> bool:  # == on a 1500-deep list would overflow the C stack
            return wire.dumps(got) == wire.dumps(expected)

        assert same([e["data"]["message"] for e in events if e["type"] == "message"])
        for path in ("/api/events", f"/api/jobs/{job['id']}/events"):
            status, body = srv.json("GET", path)
            assert status == 200, body
            got = [e["data"]["message"] for e in body["events"] if e["type"] == "message"]
            assert same(got)
        status, _headers, ndjson = srv.request("GET", f"/api/jobs/{job['id']}/events?format=ndjson")
        assert status == 200 and b"NaN" not in ndjson and b"Infinity" not in ndjson
        assert b"\\ud800" in ndjson and b"\\udfff" in ndjson
        ndjson.decode("utf-8")  # valid UTF-8, whatever the child sent
