"""The event bus on its own: numbering, bounded history, replay, bounded subscribers.

Every test runs against both implementations of the `EventBus` interface: in memory (the
embedded default) and on a real redis-server. The Redis bus numbers events in Redis and hands
them to subscribers from its reader thread, so a test calls `settle(bus)` (`EventBus.sync`)
where it needs what it published to have arrived; for the memory bus that is a no-op.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from webapp.bus import EventBus
from webapp.events import MemoryEventBus

MakeBus = Callable[..., EventBus]


@pytest.fixture(params=["memory", "redis"])
def make_bus(request: pytest.FixtureRequest) -> Iterator[MakeBus]:
    """Makes buses of the implementation under test (with Redis: sharing one emptied Redis);
    closes them after the test."""
    made: list[Any] = []

    def make(**limits: Any) -> EventBus:
        if request.param == "memory":
            bus: EventBus = MemoryEventBus(**limits)
        else:
            from webapp.redis_bus import RedisEventBus
            from webapp.redis_store import RedisStore

            store = RedisStore(request.getfixturevalue("redis_url"))
            made.append(store)
            bus = RedisEventBus(store, host="local", **limits)
        made.append(bus)
        return bus

    yield make
    for thing in reversed(made):
        thing.close()


def settle(bus: EventBus) -> None:
    assert bus.sync(30), "the bus did not deliver what was published within 30 s"


def out(text: str) -> dict:
    return {"text": text, "bytes": len(text)}


def test_seq_is_global_and_strictly_increasing(make_bus: MakeBus) -> None:
    bus = make_bus()
    for i in range(30):
        bus.publish(f"j{i % 3}", 1, "stdout", out("x"))
    settle(bus)
    assert [e["seq"] for e in bus.events(None)] == list(range(1, 31))
    assert [e["seq"] for e in bus.events("j1")] == list(range(2, 31, 3))
    event = bus.events("j1")[0]
    assert set(event) == {"seq", "job", "pid", "type", "t", "data", "host"}
    assert event["host"] == "local"


def test_history_is_bounded_by_count_and_replay_reports_the_gap(make_bus: MakeBus) -> None:
    bus = make_bus(max_events_per_job=10)
    for i in range(25):
        bus.publish("j1", 1, "stdout", out(str(i)))
    settle(bus)
    events = bus.events("j1", after=0)
    notice, kept = events[0], events[1:]
    assert notice["type"] == "dropped"
    assert notice["data"] == {
        "count": 15,
        "from_seq": 1,
        "to_seq": 15,
        "reason": "history_limit",
    }
    assert notice["seq"] == 15  # resuming from it continues right after the gap
    assert [e["seq"] for e in kept] == list(range(16, 26))
    assert bus.events("j1", after=20)[0]["seq"] == 21  # nothing missing: no notice


def test_history_is_bounded_by_bytes(make_bus: MakeBus) -> None:
    bus = make_bus(max_events_per_job=1000, max_bytes_per_job=10_000)
    for _ in range(100):
        bus.publish("j1", 1, "stdout", out("y" * 1000))
    settle(bus)
    kept = [e for e in bus.events("j1") if e["type"] != "dropped"]
    assert 5 <= len(kept) <= 10
    assert sum(len(json.dumps(e)) for e in kept) < 12_000


def test_interleaved_jobs_keep_their_gap_records_bounded(make_bus: MakeBus) -> None:
    """Two jobs whose events alternate evict one run of seqs per event each: the runs kept
    to report gaps are merged past `max_runs` (before, the memory bus kept one per event
    evicted, for ever), and a replay from before or after the merged run still counts exactly."""
    bus = make_bus(max_events_per_job=5, max_runs=4)
    for i in range(100):
        bus.publish("a", 1, "stdout", out(str(i)))  # odd seqs 1..199
        bus.publish("b", 2, "stdout", out(str(i)))  # even seqs 2..200
    settle(bus)
    notice = bus.events("a", after=0)[0]
    assert notice["type"] == "dropped"
    assert notice["data"] == {
        "count": 95,
        "from_seq": 1,
        "to_seq": 189,
        "reason": "history_limit",
    }
    late = bus.events("a", after=186)
    assert late[0]["data"]["count"] == 2  # 187 and 189, the newest runs, kept apart
    assert [e["seq"] for e in late[1:]] == [191, 193, 195, 197, 199]
    if isinstance(bus, MemoryEventBus):
        assert len(bus._histories["a"].evicted) <= 4


def test_all_jobs_replay_gap_is_contiguous(make_bus: MakeBus) -> None:
    bus = make_bus(max_events_per_job=3)
    for i in range(10):
        bus.publish("big", 1, "stdout", out(str(i)))  # seqs 1..10, keeps 8..10
    bus.publish("small", 2, "spawn", {})  # seq 11
    settle(bus)
    events = bus.events(None, after=0)
    assert events[0]["type"] == "dropped"
    assert events[0]["data"]["to_seq"] == 7
    assert [e["seq"] for e in events[1:]] == [8, 9, 10, 11]


def test_subscribe_replays_then_goes_live_without_gap_or_repeat(make_bus: MakeBus) -> None:
    bus = make_bus()
    for _ in range(5):
        bus.publish("j1", 1, "message", {"direction": "to_parent", "message": 1})
    settle(bus)
    sub, start = bus.subscribe(None, after=2)
    assert start == 5
    bus.publish("j1", 1, "exit", {"code": 0, "signal": None})
    settle(bus)
    got = [json.loads(t)["seq"] for t in sub.drain()]
    assert got == [3, 4, 5, 6]
    sub2, _ = bus.subscribe("j1", after=None)  # null: only what happens from now on
    bus.publish("j1", 1, "close", {"code": 0, "signal": None})
    bus.publish("j2", 1, "close", {"code": 0, "signal": None})  # another job: not for sub2
    settle(bus)
    assert [json.loads(t)["seq"] for t in sub2.drain()] == [7]


def test_slow_subscriber_gets_coalesced_output_then_a_dropped_notice(make_bus: MakeBus) -> None:
    bus = make_bus(subscriber_events=5, subscriber_bytes=100_000, coalesce_bytes=5000)
    sub, _ = bus.subscribe(None, after=None)
    bus.publish("j1", 1, "spawn", {})
    for _ in range(20):  # 20 x ~100 bytes merge into one chunk (under 5000 bytes)
        bus.publish("j1", 1, "stdout", out("z" * 10))
    settle(bus)
    got = [json.loads(t) for t in sub.drain()]
    assert [e["type"] for e in got] == ["spawn", "stdout"]
    assert got[1]["data"]["text"] == "z" * 200
    assert got[1]["data"]["coalesced"] == 20
    assert got[1]["seq"] == 21 and got[1]["data"]["first_seq"] == 2

    for i in range(50):  # alternating types cannot merge: the queue fills, the rest drops
        bus.publish("j1", 1, "stdout" if i % 2 else "stderr", out("w" * 500))
    settle(bus)
    got = [json.loads(t) for t in sub.drain()]
    assert len(got) == 6  # 5 queued + the notice
    notice = got[-1]
    assert notice["type"] == "dropped"
    assert notice["data"]["count"] == 45
    assert notice["data"]["to_seq"] == bus.last_seq
    assert sub.dropped_total == 45
    bus.publish("j1", 1, "close", {})
    settle(bus)
    assert [json.loads(t)["type"] for t in sub.drain()] == ["close"]  # caught up: live again


def test_concurrent_publishers_reach_a_subscriber_in_order_without_repeats(
    make_bus: MakeBus,
) -> None:
    bus = make_bus(subscriber_events=100_000, subscriber_bytes=100 << 20)
    sub, _ = bus.subscribe(None, after=None)
    received: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not (done.is_set() and not received_pending()):
            received.extend(json.loads(t)["seq"] for t in sub.drain(timeout=0.05))

    def received_pending() -> bool:
        return bool(received) and received[-1] < bus.last_seq

    def produce(job: str) -> None:
        for _ in range(500):
            bus.publish(job, 1, "message", {"direction": "to_parent", "message": 0})

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(f"j{i}",)) for i in range(4)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    settle(bus)
    done.set()
    consumer.join(30)
    assert received == list(range(1, 2001))


def test_forget_removes_a_job(make_bus: MakeBus) -> None:
    bus = make_bus()
    bus.publish("j1", 1, "spawn", {})
    bus.publish("j2", 1, "spawn", {})
    settle(bus)
    bus.forget("j1")
    assert bus.events("j1") == []
    assert [e["job"] for e in bus.events(None)] == ["j2"]


def test_lifecycle_events_are_never_dropped_and_stay_in_order(make_bus: MakeBus) -> None:
    bus = make_bus(subscriber_events=3, subscriber_bytes=100_000, coalesce_bytes=10)
    sub, _ = bus.subscribe(None, after=None)
    for i in range(10):
        bus.publish("j1", 1, "stdout" if i % 2 else "stderr", out("a" * 20))
    bus.publish("j1", 1, "exit", {"code": 0, "signal": None})
    bus.publish("j1", 1, "stdout", out("late"))
    bus.publish("j1", 1, "close", {"code": 0, "signal": None})
    settle(bus)
    got = [json.loads(t) for t in sub.drain()]
    assert [e["type"] for e in got] == [
        "stderr",
        "stdout",
        "stderr",
        "dropped",  # seqs 4..10
        "exit",
        "dropped",  # seq 12, the output after the exit
        "close",
    ]
    assert [e["seq"] for e in got] == [1, 2, 3, 10, 11, 12, 13]
    assert got[3]["data"]["count"] == 7 and got[5]["data"]["count"] == 1


def test_output_rate_caps_output_and_reports_it(make_bus: MakeBus) -> None:
    bus = make_bus(subscriber_events=10_000, subscriber_bytes=10 << 20, coalesce_bytes=1)
    sub, _ = bus.subscribe(None, after=None, output_rate=1000)
    bus.publish("j1", 1, "spawn", {})
    for _ in range(100):
        bus.publish("j1", 1, "stdout", out("x" * 100))  # ~10 kB at once: 1 kB/s allowed
    bus.publish("j1", 1, "exit", {"code": 0, "signal": None})
    settle(bus)
    got = [json.loads(t) for t in sub.drain()]
    kinds = [e["type"] for e in got]
    assert kinds[0] == "spawn" and kinds[-2:] == ["dropped", "exit"]
    assert 1 <= kinds.count("stdout") <= 10
    assert got[-2]["data"]["reason"] == "output_rate"
    assert got[-2]["data"]["count"] == 100 - kinds.count("stdout")


def test_each_event_is_encoded_once_and_shared_by_every_subscriber(make_bus: MakeBus) -> None:
    bus = make_bus()
    subs = [bus.subscribe(None)[0] for _ in range(3)]
    bus.publish("j1", 1, "message", {"direction": "to_parent", "message": "héllo"})
    settle(bus)
    payloads = [sub.drain() for sub in subs]
    assert all(p[0] is payloads[0][0] for p in payloads)  # one bytes object for all three
    assert json.loads(payloads[0][0])["data"]["message"] == "héllo"


def test_a_lone_surrogate_still_reaches_subscribers_as_valid_utf8(make_bus: MakeBus) -> None:
    """A child may send "\\ud800" in a JSON message; the feed must stay valid UTF-8 (a browser
    closes a feed on invalid text), and the value must arrive unchanged."""
    bus = make_bus()
    sub, _ = bus.subscribe(None)
    bus.publish("j1", 1, "message", {"direction": "to_parent", "message": "a\ud800b"})
    settle(bus)
    (payload,) = sub.drain()
    payload.decode("utf-8")  # strict: raises on anything that is not UTF-8
    assert json.loads(payload)["data"]["message"] == "a\ud800b"
    assert json.loads(next(bus.iter_texts("j1")))["data"]["message"] == "a\ud800b"  # export


def test_notify_comes_once_per_drain_and_a_limited_drain_leaves_the_rest(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    sub, _ = bus.subscribe(None)
    calls: list[int] = []
    sub.notify = lambda: calls.append(1)
    for i in range(10):
        bus.publish("j1", 1, "message", {"direction": "to_parent", "message": "x" * 100, "i": i})
    settle(bus)
    assert calls == [1]  # one wake-up for the burst, not ten
    first = sub.drain(limit=300)
    assert 1 <= len(first) <= 3 and sub.pending()
    rest = sub.drain()
    assert [json.loads(p)["seq"] for p in first + rest] == list(range(1, 11))
    assert not sub.pending()
    bus.publish("j1", 1, "exit", {"code": 0, "signal": None})
    settle(bus)
    assert calls == [1, 1]  # drained empty: the next event wakes the consumer again


def test_a_merged_chunk_joins_its_texts_in_order(make_bus: MakeBus) -> None:
    bus = make_bus(coalesce_bytes=100_000)
    sub, _ = bus.subscribe(None)
    for i in range(500):
        bus.publish("j1", 1, "stdout", out(f"line {i}\n"))
    settle(bus)
    (chunk,) = [json.loads(p) for p in sub.drain()]
    assert chunk["data"]["text"] == "".join(f"line {i}\n" for i in range(500))
    assert chunk["data"]["coalesced"] == 500 and chunk["data"]["first_seq"] == 1
    assert chunk["seq"] == 500
