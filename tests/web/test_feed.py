"""The WebSocket feed: the subscribe protocol, bad client messages, resume after reconnect
with no gap, and a slow subscriber under a flood (coalesced, then dropped with a notice)."""

from __future__ import annotations

import json
import time

import pytest
import websocket
from server import ThreadServer
from webtest import TIMEOUT, Feed, wait_closed, wait_for


def start(srv: ThreadServer, body: dict) -> dict:
    status, job = srv.json("POST", "/api/jobs", body)
    assert status == 201, job
    return job


def test_subscribed_comes_first_with_the_last_seq(srv: ThreadServer, feed: Feed) -> None:
    job = start(srv, {"kind": "spawn", "command": "echo", "args": ["a"]})
    wait_closed(srv, job["id"])
    last = srv.json("GET", "/api/status")[1]["last_seq"]
    msg = feed.subscribe(job["id"], after=0)
    assert msg["seq"] >= last and "job" in msg
    replay = feed.events_of(job["id"])
    assert replay[0]["type"] == "spawn"
    for event in replay:
        assert set(event) == {"seq", "job", "pid", "type", "t", "data", "host"}


def test_ping_pong_and_rejections_keep_the_connection_usable(feed: Feed) -> None:
    bad = [
        ("not json at all", "not JSON"),
        ("[1, 2]", "unknown message type"),
        ('{"type": "launch-missiles"}', "unknown message type"),
        ('{"no_type": 1}', "unknown message type"),
        ('{"type": "subscribe", "after": -1}', "'after'"),
        ('{"type": "subscribe", "after": "5"}', "'after'"),
        ('{"type": "subscribe", "job": 7}', "'job'"),
        ('{"type": "subscribe", "job": "j999999"}', "no job"),
        ('{"type": "subscribe", "bogus": 1}', "'bogus'"),
        ('{"type": "subscribe", "heartbeat": "yes"}', "'heartbeat'"),
        ('{"type": "subscribe", "output_rate": 0}', "'output_rate'"),
    ]
    for text, reason in bad:
        feed.send(text)
        msg = feed.recv()
        assert msg["type"] == "rejected" and reason in msg["message"], (text, msg)
        assert "seq" not in msg
    feed.ws.send_binary(b"\x00\x01")
    assert feed.recv()["type"] == "rejected"
    feed.send({"type": "ping"})
    pong = feed.recv()
    assert pong["type"] == "pong" and "seq" not in pong
    assert feed.subscribe(None)["type"] == "subscribed"


def test_oversized_ws_message_is_rejected_not_fatal() -> None:
    with ThreadServer({"WS_MAX_MESSAGE_BYTES": 1000}) as srv:
        feed = Feed(srv)
        try:
            feed.send({"type": "ping", "pad": "x" * 2000})
            msg = feed.recv()
            assert msg["type"] == "rejected" and "1000-byte limit" in msg["message"]
            feed.send({"type": "ping"})
            assert feed.recv()["type"] == "pong"
        finally:
            feed.close()


def test_resume_after_reconnect_misses_nothing(srv: ThreadServer) -> None:
    """Disconnect mid-job, let events happen meanwhile, reconnect with the last seq seen:
    the union is every event of the job exactly once, in order."""
    first = Feed(srv)
    first.subscribe(None, after=None)
    job = start(srv, {"kind": "fork", "program": "counter.py", "args": ["6", "100"]})
    got = first.until(lambda m: m.get("job") == job["id"] and m["type"] == "stdout")
    mine = [m for m in got if m.get("job") == job["id"]]
    last_seq = mine[-1]["seq"]
    first.close()
    wait_closed(srv, job["id"])  # the rest happens while nobody listens

    second = Feed(srv)
    try:
        second.subscribe(job["id"], after=last_seq)
        rest = second.events_of(job["id"])
    finally:
        second.close()
    seqs = [m["seq"] for m in mine + rest]
    assert seqs == sorted(set(seqs)), "repeated or out of order"
    # Every seq of the job is accounted for: received, or inside a merged output chunk
    # (`data.first_seq`..`seq`, when the feed briefly lagged), and the output text is whole.
    covered: set[int] = set()
    for m in mine + rest:
        covered.update(range(m["data"].get("first_seq", m["seq"]), m["seq"] + 1))
    all_events = srv.json("GET", f"/api/jobs/{job['id']}/events")[1]["events"]
    missing = [e for e in all_events if e["seq"] not in covered and e["type"] != "stats"]
    assert not missing, missing

    def text(events: list[dict]) -> str:
        return "".join(e["data"]["text"] for e in events if e["type"] == "stdout")

    assert text(mine + rest) == text(all_events)
    counts = [m for m in mine + rest if m["type"] == "message"]
    assert [m["data"]["message"]["n"] for m in counts] == [1, 2, 3, 4, 5, 6]


def test_resume_past_the_kept_history_gets_a_dropped_notice() -> None:
    with ThreadServer({"MAX_EVENTS_PER_JOB": 10, "STATS_INTERVAL": 0}) as srv:
        job = start(srv, {"kind": "fork", "program": "counter.py", "args": ["30", "2"]})
        wait_closed(srv, job["id"])
        events = srv.json("GET", f"/api/jobs/{job['id']}/events")[1]["events"]
        assert len(events) == 11 and events[0]["type"] == "dropped"
        feed = Feed(srv)
        try:
            feed.subscribe(job["id"], after=0)
            notice = feed.recv()
            assert notice["type"] == "dropped"
            assert notice["data"]["count"] == events[0]["data"]["count"] > 0
            rest = feed.events_of(job["id"])
            assert rest[0]["seq"] == notice["seq"] + 1
            assert [e["seq"] for e in rest] == [e["seq"] for e in events[1:]]
        finally:
            feed.close()


def test_a_slow_subscriber_gets_coalesced_output_and_dropped_counts() -> None:
    """A client that does not read while a child floods 20 MB: its queue stays bounded, it
    gets a `dropped` notice with the count, never loses the job's `close`, and sees seqs in
    order; another client is served meanwhile."""
    limit = 256 * 1024
    config = {
        "SUBSCRIBER_QUEUE_EVENTS": 50,
        "SUBSCRIBER_QUEUE_BYTES": limit,
        "WS_MESSAGE_RATE": 10_000,  # `other` pings as fast as it can, by design
    }
    with ThreadServer(config) as srv:
        slow = Feed(srv, rcvbuf=4096)
        other = Feed(srv)
        try:
            slow.subscribe(None, after=None)
            job = start(srv, {"kind": "fork", "program": "flood.py", "args": ["20000000", "100"]})
            subs = srv.services.bus._subscribers
            biggest = 0
            while srv.json("GET", f"/api/jobs/{job['id']}")[1]["state"] == "running":
                biggest = max([biggest, *(s._bytes for s in list(subs))])
                other.send({"type": "ping"})  # not starved by the flood
                assert other.recv(timeout=5)["type"] == "pong"
            assert biggest <= limit
            seen = slow.events_of(job["id"])
        finally:
            slow.close()
            other.close()
        kinds = [e["type"] for e in seen]
        assert "dropped" in kinds, kinds
        notice = seen[kinds.index("dropped")]
        assert notice["data"]["count"] > 0 and notice["data"]["reason"] == "subscriber_behind"
        assert notice["seq"] == notice["data"]["to_seq"]
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(set(seqs))
        assert kinds[-1] == "close"  # lifecycle events are never dropped
        output = srv.json("GET", f"/api/jobs/{job['id']}/output")[1]
        assert output["bytes"] == 20_000_000 and output["truncated"] is True
        assert len(output["stdout"]) == srv.app.config["MAX_OUTPUT_PER_JOB"]


@pytest.mark.parametrize("after", [None, 0])
def test_subscribe_to_one_job_only_sees_that_job(srv: ThreadServer, after: int | None) -> None:
    feed = Feed(srv)
    try:
        job = start(srv, {"kind": "fork", "program": "counter.py", "args": ["3", "100"]})
        other = start(srv, {"kind": "spawn", "command": "echo", "args": ["other"]})
        feed.subscribe(job["id"], after=after)
        got = feed.events_of(job["id"])
        assert {m["job"] for m in got} == {job["id"]}
        assert other["id"] not in json.dumps(got)
    finally:
        feed.close()
    wait_closed(srv, other["id"])


def test_a_vanished_client_frees_its_subscription(srv: ThreadServer) -> None:
    bus = srv.services.bus
    wait_for(lambda: bus.subscriber_count() == 0, what="earlier tests' feeds to close")
    before = 0
    feed = Feed(srv)
    feed.subscribe(None)
    wait_for(lambda: bus.subscriber_count() == before + 1)
    feed.ws.sock.close()  # no close frame: the client just goes away
    feed.ws.sock = None
    wait_for(lambda: bus.subscriber_count() == before, what="subscription freed")


def test_output_rate_keeps_a_page_fed_at_its_own_pace(srv: ThreadServer) -> None:
    feed = Feed(srv)
    try:
        feed.send({"type": "subscribe", "job": None, "after": None, "output_rate": 200_000})
        assert feed.recv()["type"] == "subscribed"
        job = start(srv, {"kind": "fork", "program": "flood.py", "args": ["5000000"]})
        seen = feed.events_of(job["id"])
    finally:
        feed.close()
    received = sum(e["data"]["bytes"] for e in seen if e["type"] == "stdout")
    assert received < 1_000_000  # 5 MB offered in well under 2 s
    notices = [e for e in seen if e["type"] == "dropped"]
    assert notices and all(n["data"]["reason"] == "output_rate" for n in notices)
    assert seen[-1]["type"] == "close"


def test_keep_alive_pings_and_a_silent_client_is_dropped() -> None:
    """The server pings every WS_PING_INTERVAL; a client that answers stays, one that goes
    silent with its TCP connection still open (a laptop that slept) is dropped, freeing its
    thread and subscription."""
    with ThreadServer({"WS_PING_INTERVAL": 0.3}) as srv:
        bus = srv.services.bus
        alive, silent = Feed(srv), Feed(srv)
        try:
            alive.subscribe(None)
            silent.subscribe(None)
            wait_for(lambda: bus.subscriber_count() == 2, what="two subscriptions")
            opcode, _frame = alive.ws.recv_data(control_frame=True)  # answers it with a pong
            assert opcode == websocket.ABNF.OPCODE_PING
            # `silent` never reads, so it never answers a ping: the server gives up on it,
            # while `alive` goes on reading (and so answering every ping).
            deadline = time.monotonic() + TIMEOUT
            while bus.subscriber_count() != 1:
                assert time.monotonic() < deadline, "the silent client was never dropped"
                alive.ws.recv_data(control_frame=True)
            alive.send({"type": "ping"})
            while (msg := alive.recv())["type"] != "pong":
                assert msg["type"] in {"heartbeat"} or "seq" in msg, msg
        finally:
            alive.close()
            silent.close()
