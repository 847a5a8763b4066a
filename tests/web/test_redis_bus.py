"""What only the Redis bus does: several processes share one numbering; a browser resumes on
another server; Redis that goes away and comes back (empty, as it does without persistence).

Each `RedisEventBus` here has its own `RedisStore` (its own connections), as each server
process has; they share a real redis-server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from redis_server import RedisServer

from webapp.errors import StoreUnavailable
from webapp.redis_bus import RedisEventBus
from webapp.redis_store import SEQ_MARGIN, RedisStore, redact

TIMEOUT = 30.0


class Buses:
    """Makes buses on one Redis (each with its own store) and closes them all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[Any] = []

    def __call__(self, host: str = "local", **limits: Any) -> RedisEventBus:
        store = RedisStore(self.url)
        bus = RedisEventBus(store, host=host, **limits)
        self.made += [store, bus]
        return bus

    def close(self) -> None:
        for thing in reversed(self.made):
            thing.close()


@pytest.fixture
def buses(redis_url: str) -> Iterator[Buses]:
    made = Buses(redis_url)
    yield made
    made.close()


def drain_until(sub: Any, pred: Any, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Events from `sub` until one matches `pred` (included)."""
    got: list[dict[str, Any]] = []
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            for text in sub.drain(timeout=0.2):
                got.append(json.loads(text))
                if pred(got[-1]):
                    return got
    finally:
        timer.cancel()
    raise TimeoutError(f"no matching event in {timeout} s; got {got[-5:]}")


def test_two_processes_share_one_gap_free_numbering(buses: Buses) -> None:
    a, b = buses("server-a"), buses("server-b")
    sub, _ = b.subscribe(None, after=None)

    def produce(bus: RedisEventBus, job: str) -> None:
        for i in range(300):
            bus.publish(job, 1, "message", {"direction": "to_parent", "message": i})

    threads = [
        threading.Thread(target=produce, args=(bus, job)) for bus, job in ((a, "ja"), (b, "jb"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.sync(TIMEOUT) and b.sync(TIMEOUT)
    got = [json.loads(text) for text in sub.drain()]
    assert [e["seq"] for e in got] == list(range(1, 601))
    for job, host in (("ja", "server-a"), ("jb", "server-b")):
        mine = [e for e in got if e["job"] == job]
        assert [e["data"]["message"] for e in mine] == list(range(300))  # in publish order
        assert {e["host"] for e in mine} == {host}
    assert a.events(None) == b.events(None) == [e for e in got]
    assert a.last_seq == b.last_seq == 600


def test_a_client_resumes_on_the_other_server_with_no_gap(buses: Buses) -> None:
    a, b = buses("server-a"), buses("server-b")
    sub_a, _ = a.subscribe("j1", after=None)
    for i in range(50):
        a.publish("j1", 1, "stdout", {"text": f"{i}\n", "bytes": 3})
    assert a.sync(TIMEOUT)
    seen = [json.loads(t) for t in sub_a.drain()]  # (merged into chunks), then it went away
    a.unsubscribe(sub_a)
    for i in range(50, 80):  # more while it was away
        a.publish("j1", 1, "stdout", {"text": f"{i}\n", "bytes": 3})
    assert b.sync(TIMEOUT)
    sub_b, start = b.subscribe("j1", after=seen[-1]["seq"])
    assert start == 80
    a.publish("j1", 1, "close", {"code": 0, "signal": None})
    rest = drain_until(sub_b, lambda e: e["type"] == "close")
    texts = "".join(e["data"]["text"] for e in seen + rest if e["type"] == "stdout")
    assert texts == "".join(f"{i}\n" for i in range(80))
    assert [e["seq"] for e in rest] == list(range(seen[-1]["seq"] + 1, 82))


def test_redis_coming_back_empty_never_gives_a_seq_twice(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    bus = RedisEventBus(store, host="h")
    try:
        sub, _ = bus.subscribe(None, after=None)
        for i in range(10):
            bus.publish("j1", 1, "message", {"direction": "to_parent", "message": i})
        assert bus.sync(TIMEOUT)
        assert [json.loads(t)["seq"] for t in sub.drain()] == list(range(1, 11))

        own_redis.stop()
        with pytest.raises(StoreUnavailable) as err:
            bus.events(None)
        assert "cannot be reached" in err.value.message and own_redis.url in err.value.message
        health = bus.health()
        assert health["ok"] is False and health["error"]
        for i in range(10, 15):  # queued while Redis is away
            bus.publish("j1", 1, "message", {"direction": "to_parent", "message": i})
        bus.publish("j1", 1, "close", {"code": 0, "signal": None})

        own_redis.start()  # empty: no persistence
        got = drain_until(sub, lambda e: e["type"] == "close")
        notice, after = got[0], got[1:]
        assert notice["type"] == "dropped" and notice["data"]["reason"] == "redis_restarted"
        assert notice["data"]["from_seq"] == 11
        seqs = [e["seq"] for e in after]
        assert seqs[0] == notice["seq"] + 1 > 10 + SEQ_MARGIN - 1
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert [e["data"].get("message") for e in after[:-1]] == list(range(10, 15))
        assert bus.health()["ok"] is True
        replay = bus.events(None, after=5)  # history before the restart is gone: said so
        assert replay[0]["type"] == "dropped"
        assert replay[0]["data"]["reason"] == "redis_restarted"
    finally:
        bus.close()
        store.close()


def test_output_that_redis_cannot_take_is_counted_and_reported(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    bus = RedisEventBus(store, host="h", queue_bytes=2000)
    try:
        own_redis.stop()
        for _ in range(100):
            bus.publish("j1", 1, "stdout", {"text": "z" * 100, "bytes": 100})
        bus.publish("j1", 1, "exit", {"code": 0, "signal": None})  # lifecycle: never dropped
        assert bus.health()["lost_events"] > 80
        own_redis.start()
        assert bus.sync(TIMEOUT)
        events = [e for e in bus.events("j1") if e["type"] != "dropped"]
        error = events[0]
        assert error["type"] == "error" and error["data"]["code"] == "ERR_EVENTS_LOST"
        kept = [e for e in events if e["type"] == "stdout"]
        assert error["data"]["count"] + len(kept) == 100
        assert events[-1]["type"] == "exit"
    finally:
        bus.close()
        store.close()


def test_passwords_never_show_in_messages() -> None:
    assert redact("redis://:s3cret@db.example:6380/2") == "redis://:***@db.example:6380/2"
    assert redact("redis://user:s3cret@[::1]:6379/0") == "redis://user:***@[::1]:6379/0"
    assert redact("redis://localhost:6379/0") == "redis://localhost:6379/0"
    store = RedisStore("redis://:s3cret@127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with pytest.raises(StoreUnavailable) as err:
            store.ensure_epoch()
        assert "s3cret" not in err.value.message and ":***@" in err.value.message
    finally:
        store.close()
