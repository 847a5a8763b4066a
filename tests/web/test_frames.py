"""The frame inspector (webapp/frames.py, /api/jobs/<id>/frames): the raw bytes of a fork job's
channel, cut by read() and write(), beside the frames they carry; opt-in and bounded."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from webtest import wait_closed, wait_for

from webapp import frames


def launch(srv: Any, program: str, transport: str = "auto") -> dict[str, Any]:
    status, job = srv.json(
        "POST", "/api/jobs", {"kind": "fork", "program": program, "transport": transport}
    )
    assert status == 201, job
    return job


def send(srv: Any, job_id: str, message: Any) -> None:
    status, body = srv.json("POST", f"/api/jobs/{job_id}/send", {"message": message})
    assert status == 202, body


def capture(srv: Any, job_id: str) -> dict[str, Any]:
    status, body = srv.json("GET", f"/api/jobs/{job_id}/frames")
    assert status == 200, body
    return body


def reads(cap: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in cap["chunks"] if c["direction"] == "read"]


def frames_of(cap: dict[str, Any], direction: str) -> list[dict[str, Any]]:
    return [f for f in cap["frames"] if f["direction"] == direction]


def until_frames(srv: Any, job_id: str, direction: str, n: int) -> dict[str, Any]:
    def enough() -> dict[str, Any] | None:
        cap = capture(srv, job_id)
        return cap if len(frames_of(cap, direction)) >= n else None

    return wait_for(enough, what=f"{n} {direction} frame(s) of {job_id}")


@pytest.mark.parametrize("transport", ["pipe", "socketpair", "unix", "tcp"])
def test_bytes_written_and_read_are_the_frames_sent_and_received(srv: Any, transport: str) -> None:
    job = launch(srv, "echo.py", transport)
    # At once: a unix/tcp child may still be connecting; its channel is tapped when it is.
    status, body = srv.json("POST", f"/api/jobs/{job['id']}/frames", {})
    assert status == 201, body
    messages = [{"n": 1, "text": "你好"}, [1, 2, 3], "plain"]
    for message in messages:
        send(srv, job["id"], message)
    cap = until_frames(srv, job["id"], "read", 3)
    wire = b"".join(
        json.dumps(m, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for m in messages
    )
    written = b"".join(
        base64.b64decode(c["data"]) for c in cap["chunks"] if c["direction"] == "write"
    )
    echoed = b"".join(base64.b64decode(c["data"]) for c in reads(cap))
    assert written == wire and echoed == wire
    for direction in ("write", "read"):
        assert [f["message"] for f in frames_of(cap, direction)] == messages
        assert all(f["complete"] for f in frames_of(cap, direction))
    assert cap["capturing"] and cap["kept_bytes"] == 2 * len(wire)
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, job["id"])


def test_read_boundaries_split_and_merge_frames(srv: Any) -> None:
    job = launch(srv, "raw_frames.py")
    assert srv.json("POST", f"/api/jobs/{job['id']}/frames", {})[0] == 201
    send(srv, job["id"], {"type": "burst", "count": 3})
    cap = until_frames(srv, job["id"], "read", 3)
    (burst_read,) = reads(cap)
    burst = frames_of(cap, "read")
    # Three frames in one read(): all three lie inside that one chunk.
    assert [f["message"] for f in burst] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert all(f["chunks"] == [burst_read["n"]] for f in burst)

    send(srv, job["id"], {"type": "split"})
    wait_for(lambda: len(reads(capture(srv, job["id"]))) == 2, what="the first half")
    half = frames_of(capture(srv, job["id"]), "read")[-1]
    assert not half["complete"] and half["message"] is None
    send(srv, job["id"], "go on")  # the child writes the rest only now
    cap = until_frames(srv, job["id"], "read", 5)
    split = frames_of(cap, "read")[3]
    assert split["complete"]
    assert split["message"] == {"type": "split", "text": "this frame crosses two reads"}
    first, second = reads(cap)[1:3]
    assert split["chunks"] == [first["n"], second["n"]]  # one frame, two reads
    assert frames_of(cap, "read")[4]["message"] == "go on"
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, job["id"])


def test_a_capture_is_bounded_and_can_be_stopped(srv: Any) -> None:
    job = launch(srv, "raw_frames.py")
    assert srv.json("POST", f"/api/jobs/{job['id']}/frames", {"max_bytes": 2048})[0] == 201
    send(srv, job["id"], {"type": "big", "bytes": 100_000})
    cap = wait_for(lambda: (c := capture(srv, job["id"]))["full"] and c, what="a full capture")
    assert cap["kept_bytes"] == 2048 and not cap["capturing"]
    assert cap["chunks"][-1]["cut"] is True
    # Stopped, nothing more is kept, and the channel carries on.
    status, stopped = srv.json("DELETE", f"/api/jobs/{job['id']}/frames")
    assert status == 200 and stopped["stopped_at"] is not None
    send(srv, job["id"], "after")
    wait_for(
        lambda: any(
            e["type"] == "message" and e["data"]["message"] == "after"
            for e in srv.json("GET", f"/api/jobs/{job['id']}/events")[1]["events"]
            if e["data"].get("direction") == "to_parent"
        ),
        what="the echo after the capture",
    )
    assert capture(srv, job["id"])["kept_bytes"] == 2048
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, job["id"])


def test_what_cannot_be_captured_is_refused_clearly(srv: Any) -> None:
    status, spawn = srv.json(
        "POST", "/api/jobs", {"kind": "spawn", "command": "sleep", "args": ["5"]}
    )
    assert status == 201
    status, body = srv.json("POST", f"/api/jobs/{spawn['id']}/frames", {})
    assert status == 409 and "only fork jobs have a channel" in body["error"]
    status, body = srv.json("GET", f"/api/jobs/{spawn['id']}/frames")
    assert status == 404 and f"POST /api/jobs/{spawn['id']}/frames" in body["error"]
    for bad, says in (({"max_bytes": 10}, "must be >= 1024"), ({"limit": 5}, "unknown field")):
        status, body = srv.json("POST", f"/api/jobs/{spawn['id']}/frames", bad)
        assert status == 400 and says in body["error"], body
    assert srv.json("POST", "/api/jobs/j999999/frames", {})[0] == 404
    srv.json("POST", f"/api/jobs/{spawn['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, spawn["id"])


def test_frames_are_cut_by_the_channels_framing() -> None:
    chunks = [
        frames.Chunk(1, "read", 0.0, b'{"a":1}\n{"b"'),
        frames.Chunk(2, "write", 0.1, b'"x"\n'),
        frames.Chunk(3, "read", 0.2, b':2}\n{"c":'),
    ]
    cut = frames.cut_frames(chunks, "read", "json")
    assert [(f["start"], f["end"], f["chunks"], f["complete"]) for f in cut] == [
        (0, 8, [1], True),
        (8, 16, [1, 3], True),
        (16, 21, [3], False),
    ]
    assert cut[1]["message"] == {"b": 2}
    header = (7).to_bytes(4, "big") + b"J"
    binary = [frames.Chunk(1, "read", 0.0, header + b'"hello"' + header[:2])]
    (whole, partial) = frames.cut_frames(binary, "read", "binary")
    assert whole["message"] == "hello" and whole["end"] == 12 and not partial["complete"]
    tail = frames.cut_frames([frames.Chunk(1, "read", 0.0, b'2}\n{"n":3}\n')], "read", "json")
    assert "started inside this frame" in tail[0]["note"] and tail[1]["message"] == {"n": 3}
