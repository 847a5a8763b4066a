"""The feed against a hostile client, on the real server (gunicorn, as users run it).

A client with a valid token may still send too fast, too much, too deep or not by the rules.
Each case is bounded and ends in a clear answer (a `rejected` message or a close frame with
the code that says why), the worker's memory stays flat, and another client is served all
along. Issue 9, items 1, 3 and 9, and its "WebSocket abuse test".
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from server import LiveServer
from webtest import TIMEOUT, Feed, frame, open_fds, wait_for, worker_pid

from webapp.stats import rss_of

MiB = 1024 * 1024
TEXT, BINARY, CONT = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY, 0)
PING = websocket.ABNF.OPCODE_PING


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    # A short keep-alive ping, so a half-open connection is found within the test.
    with LiveServer(["--ws-ping-interval", "0.5"]) as srv:
        yield srv


def feeds_in_use(srv: LiveServer) -> int:
    return srv.json("GET", "/api/status")[1]["feeds"]["in_use"]


class Bystander:
    """A client that reads all the time in a thread of its own, as a browser tab does (so it
    answers every keep-alive ping however long a test step takes), and can be asked whether
    it is still served."""

    def __init__(self, live: LiveServer) -> None:
        self.feed = Feed(live)
        self.feed.ws.settimeout(None)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while True:
                opcode, frame = self.feed.ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self.messages.put(json.loads(frame.data))
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.messages.put({"type": "closed", "data": frame.data})
                    return
        except Exception as exc:  # closed by the test: the end of the thread
            self.messages.put({"type": "closed", "error": repr(exc)})

    def served(self) -> None:
        """A ping gets its pong (returns None, for use in a wait condition)."""
        self.feed.send({"type": "ping"})
        while (msg := self.messages.get(timeout=10))["type"] != "pong":
            assert msg["type"] != "closed", f"the bystander was closed: {msg}"

    def close(self) -> None:
        self.feed.close()
        self.reader.join(10)


def served(other: Feed) -> None:
    """`other` (read by this thread) still gets an answer."""
    other.send({"type": "ping"})
    while (msg := other.recv(timeout=10))["type"] != "pong":
        assert "seq" in msg or msg["type"] == "heartbeat", msg


def test_a_client_sending_faster_than_the_server_reads_is_closed_and_memory_stays_flat(
    live: LiveServer,
) -> None:
    """200 MiB of valid messages pushed as fast as the socket takes them: the server closes
    the connection 1008 once the message rate is over its limit, and reads no more."""
    worker = worker_pid(live)
    other = Bystander(live)
    flooder = Feed(live)
    try:
        flooder.subscribe(None)
        other.served()
        baseline = rss_of(worker) or 0
        message = frame('{"type": "ping", "pad": "' + "x" * (60 * 1024) + '"}')
        sent = [0]
        stop = threading.Event()

        def push() -> None:
            try:
                while not stop.is_set() and sent[0] < 200 * MiB:
                    flooder.send_raw(message)
                    sent[0] += len(message)
            except OSError:
                pass  # the server closed the connection: what we wait for

        pusher = threading.Thread(target=push)
        pusher.start()
        try:
            code, reason, _ = flooder.close_frame(timeout=60)
        finally:
            stop.set()
            pusher.join(60)
        peak = rss_of(worker) or 0
        assert code == 1008, (code, reason, sent[0])
        assert "--ws-rate" in reason, reason
        assert sent[0] < 200 * MiB
        assert peak - baseline < 24 * MiB, f"worker RSS grew {(peak - baseline) / MiB:.0f} MiB"
        other.served()
    finally:
        flooder.close()
        other.close()


def test_a_burst_of_pings_gets_the_rate_limit_not_ten_thousand_pongs(live: LiveServer) -> None:
    feed = Feed(live)
    try:
        feed.send_raw(frame('{"type": "ping"}') * 10_000)
        code, reason, before = feed.close_frame(timeout=30)
        pongs = sum(1 for m in before if m["type"] == "pong")
        assert code == 1008 and "messages per second" in reason and "--ws-rate" in reason
        assert 1 <= pongs <= 200, pongs
    finally:
        feed.close()


@pytest.mark.parametrize(
    "text",
    [
        "[" * 30000,
        '{"a":' * 10000 + "1" + "}" * 10000,
        '{"type": "subscribe", "job": ' + "[" * 30000 + "]" * 30000 + "}",
    ],
    ids=["lists", "objects", "inside-subscribe"],
)
def test_deep_nesting_is_rejected_never_a_traceback(live: LiveServer, text: str) -> None:
    feed = Feed(live)
    try:
        feed.send(text)
        msg = feed.recv()
        assert msg["type"] == "rejected", msg
        assert "nest" in msg["message"], msg
        served(feed)  # the same connection is still usable
    finally:
        feed.close()
    assert "Traceback" not in live.log(), live.log()[-3000:]


def test_every_broken_frame_gets_a_clear_close_and_others_are_served(live: LiveServer) -> None:
    """Fragments, oversize, bad UTF-8, protocol errors and floods, one connection each; the
    server answers each by the rules and keeps serving a bystander and its HTTP API."""
    worker = worker_pid(live)
    other = Bystander(live)
    try:
        other.served()
        wait_for(lambda: feeds_in_use(live) == 1, what="earlier tests' feeds to close")
        fds = open_fds(worker)
        baseline = rss_of(worker) or 0
        abuse(live, other)
        # Half-open: half a frame, then silence; a subscriber that goes silent without a
        # close (a laptop that slept): both are closed after a keep-alive ping goes unanswered.
        stalled, silent = Feed(live), Feed(live)
        try:
            stalled.send_raw(frame('{"type": "ping"}')[:3])
            silent.subscribe(None)
            wait_for(lambda: feeds_in_use(live) == 1, what="the half-open feeds to be dropped")
        finally:
            stalled.close()
            silent.close()
        other.served()
    finally:
        other.close()
    wait_for(lambda: feeds_in_use(live) == 0, what="the last feed to close")
    wait_for(lambda: open_fds(worker) <= fds - 1, what=f"the worker's fds back to {fds - 1}")
    assert (rss_of(worker) or 0) - baseline < 24 * MiB
    status, body = live.json("GET", "/api/status")
    assert status == 200 and body["feeds"]["in_use"] == 0


def abuse(live: LiveServer, other: Bystander) -> None:
    """Each broken input on a connection of its own; `other` is served after each group."""

    def closing(data: bytes) -> tuple[int | None, str]:
        feed = Feed(live)
        try:
            feed.send_raw(data)
            code, reason, _ = feed.close_frame()
            return code, reason
        finally:
            feed.close()

    # A message in three fragments, a ping control frame between them: both answered.
    feed = Feed(live)
    try:
        feed.send_raw(
            frame('{"type":', TEXT, fin=False)
            + frame(b"are you there", PING)
            + frame(' "pi', CONT, fin=False)
            + frame('ng"}', CONT)
        )
        opcode, pong = feed.ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG and pong.data == b"are you there"
        assert feed.recv()["type"] == "pong"
        # Over the message limit (64 KiB): rejected, the connection stays.
        feed.send_raw(frame("x" * (70 * 1024)))
        msg = feed.recv()
        assert msg["type"] == "rejected" and "65536-byte limit" in msg["message"], msg
        feed.send_raw(frame(b"\x00\x01", BINARY))
        assert feed.recv()["type"] == "rejected"
        served(feed)
    finally:
        feed.close()
    other.served()

    # Far over the limit, in one frame or in fragments: closed 1009 without buffering it.
    assert closing(frame("y" * (400 * 1024)))[0] == 1009
    chunk = "z" * (60 * 1024)
    assert closing(frame(chunk, TEXT, fin=False) + frame(chunk, CONT, fin=False) * 8)[0] == 1009
    # Not UTF-8 in a text frame: 1007. Broken framing: 1002.
    assert closing(frame(b'{"type": "\xff\xfe"}'))[0] == 1007
    assert closing(frame('"x"}', CONT))[0] == 1002
    assert closing(frame('{"type": "ping"}', masked=False))[0] == 1002
    assert closing(frame(b"", 0xB))[0] == 1002  # a reserved opcode
    other.served()


def test_server_stop_closes_every_feed_with_1001_going_away() -> None:
    srv = LiveServer(["--grace", "1"])
    with srv:
        feeds = [Feed(srv) for _ in range(3)]
        for feed in feeds:
            feed.subscribe(None)
        stopper = threading.Thread(target=srv.stop)
        began = time.monotonic()
        stopper.start()
        try:
            closes = [feed.close_frame(timeout=TIMEOUT)[:2] for feed in feeds]
        finally:
            stopper.join(TIMEOUT)
            for feed in feeds:
                feed.close()
    assert srv.returncode == 0, srv.log()
    assert all(code == 1001 for code, _ in closes), closes
    assert all("server stopping" in reason for _, reason in closes), closes
    assert time.monotonic() - began < TIMEOUT
