"""The frame inspector (webapp/frames.py, /api/jobs/<id>/frames): the raw bytes of a fork job's
channel, cut by read() and write(), beside the frames they carry; opt-in and bounded."""

from __future__ import annotations

import base64
import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webtest import wait_closed, wait_for

from ipc import wire
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


def test_a_capture_pushed_out_of_the_kept_ones_stops_and_takes_its_tap_off(srv: Any) -> None:
    """Past `keep` captures the oldest is forgotten: it must stop and leave its job's channel
    (a forgotten tap kept seeing every byte, and costing a call per read, until the job
    ended)."""
    kept = srv.services.frames
    srv.services.frames = frames.FrameCaptures(keep=1)
    try:
        first, second = launch(srv, "echo.py"), launch(srv, "echo.py")
        assert srv.json("POST", f"/api/jobs/{first['id']}/frames", {})[0] == 201
        old = srv.services.frames.get(first["id"])
        assert srv.json("POST", f"/api/jobs/{second['id']}/frames", {})[0] == 201
        assert srv.json("GET", f"/api/jobs/{first['id']}/frames")[0] == 404
        assert old.stopped_at is not None
        seen = old.seen
        send(srv, first["id"], "after it was pushed out")
        wait_for(
            lambda: any(
                e["type"] == "message" and e["data"]["direction"] == "to_parent"
                for e in srv.json("GET", f"/api/jobs/{first['id']}/events")[1]["events"]
            ),
            what="the echo",
        )
        assert old.seen == seen, "the forgotten capture's tap is still on the channel"
    finally:
        srv.services.frames = kept
    for job in (first, second):
        srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
        wait_closed(srv, job["id"])


def held_by(feed: Any) -> tuple[frames.Capture, int, int]:
    """A capture at the largest limit fed by `feed(capture)`; the bytes it holds and the peak
    of one snapshot, both measured (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        capture = frames.Capture("j", "json", frames.MAX_LIMIT)
        feed(capture)
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        snapshot = capture.snapshot()
        text = json.dumps(snapshot)
        peak = tracemalloc.get_traced_memory()[1] - base
        del snapshot, text
    finally:
        tracemalloc.stop()
    return capture, held, peak


def two_byte_reads(capture: frames.Capture) -> None:
    for i in range(2 * frames.MAX_LIMIT):  # far more than any bound lets it keep
        if capture.full:
            return
        capture("read", b"%d\n" % (i % 10))  # a new bytes object each time, as recv() gives


def one_read_of_many_frames(capture: frames.Capture) -> None:
    capture("read", b"0\n" * (frames.MAX_LIMIT // 2))


def every_limit_at_once(capture: frames.Capture) -> None:
    """max_bytes, MAX_CHUNKS and MAX_FRAMES reached together: the largest snapshot."""
    size = frames.MAX_LIMIT // frames.MAX_CHUNKS
    for i in range(frames.MAX_CHUNKS):
        capture("read", b'"%s"\n' % (b"%d" % i).rjust(size - 3, b"x"))


@pytest.mark.parametrize("feed", [two_byte_reads, one_read_of_many_frames, every_limit_at_once])
def test_a_full_capture_holds_no_more_than_its_bound(feed: Any) -> None:
    """The module's bound, measured: the worst cases (a read per 2-byte frame; one read of
    half a million frames) keep at most `max_bytes` plus `MAX_CHUNKS` chunk records, and a
    snapshot of it (GET /frames) lists at most `MAX_CHUNKS` chunks and about `MAX_FRAMES`
    frames, so it is bounded too. (One 1 MiB capture of 2-byte reads held 88 MiB.)"""
    capture, held, peak = held_by(feed)
    assert capture.full
    assert held <= frames.held_bound(frames.MAX_LIMIT), held
    assert peak <= frames.SNAPSHOT_BOUND, peak
    assert len(capture.chunks) <= frames.MAX_CHUNKS
    assert len(capture.snapshot()["frames"]) <= frames.MAX_FRAMES + 2  # + an incomplete each


@pytest.mark.parametrize("serialization", ["json", "binary"])
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_frames_and_their_chunks_for_any_split(serialization: str, data: Any) -> None:
    """For any messages cut anyhow into reads and writes: each frame lists exactly the chunks
    it overlaps (the sweep agrees with testing every chunk), and the capture's running count of
    ended frames (what MAX_FRAMES caps) is the number of complete frames its snapshot lists."""
    capture = frames.Capture("j", serialization, frames.MAX_LIMIT)
    for direction in ("write", "read"):
        messages = data.draw(st.lists(st.text(max_size=8) | st.integers(), max_size=12))
        stream = b"".join(wire.encode(m, serialization) for m in messages)
        cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=12))))
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            capture(direction, stream[a:b])
    snapshot = capture.snapshot()
    for frame in snapshot["frames"]:
        overlapping = [
            c["n"]
            for c in snapshot["chunks"]
            if c["direction"] == frame["direction"]
            and c["start"] < frame["end"]
            and c["start"] + c["size"] > frame["start"]
        ]
        assert frame["chunks"] == overlapping
    assert capture.frames_ended == sum(f["complete"] for f in snapshot["frames"])
