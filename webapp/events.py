"""The event bus: numbered events, bounded history, bounded subscribers, replay after a seq.

Every event is one JSON object ``{"seq", "job", "pid", "type", "t", "data", "host"}``
(docs/architecture.md, "One event, one shape"; ``host`` names the runner the event is about).
`seq` is global and strictly increasing, so a browser that reconnects says "after 41" and gets
42, 43, ... with nothing missed and nothing twice, as long as those events are still kept.

Memory is bounded everywhere, because a child flooding stdout must not grow the server:

* each job keeps at most ``max_events`` events and ``max_bytes`` bytes of history (oldest
  first out); what fell out is remembered as seq ranges only, so a replay can say exactly how
  many events it cannot give (a ``dropped`` notice);
* each subscriber has a queue bounded in events and bytes. A subscriber that is behind gets
  consecutive output of one job and stream merged into one chunk (``data.coalesced`` says how
  many events it stands for); when even that does not fit, events are dropped and, as soon as
  the subscriber catches up, it gets one ``dropped`` notice with the count and the seq range.
  Lifecycle events (spawn, exit, close, error, disconnect) are never dropped: the open gap is
  closed with its notice and the event queued after it (up to twice the event bound);
* a subscriber may also cap the output it wants per second (``output_rate``: a browser that
  renders every line cannot take 100 MB/s even when its socket can); output past the cap is
  dropped the same way, with ``reason: "output_rate"`` (the full output stays in the API).

A ``dropped`` notice is not kept. Its ``seq`` is the last seq it stands for, so a client that
resumes from it continues right after the gap.

Each event is encoded once, when it is published: its UTF-8 JSON bytes are what every
subscriber gets (a feed frames them as they are). Only a merged chunk is encoded again, for the
subscriber it was merged for. A subscriber tells its consumer that it has something through
`notify` (the feed hub's wake-up), so nothing has to poll it.

`MemoryEventBus` is the embedded implementation of the `bus.EventBus` interface; the Redis one
(``redis_bus.py``) keeps its history in Redis but fans out through the same `Subscriber`, and
computes its replay gaps with the same functions (`evicted_after`, `cut_replay`).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipc.process import EVENTS as CHILD_EVENTS

from . import jsontext
from .bus import EventBus

OUTPUT_TYPES = frozenset({"stdout", "stderr"})
#: Never dropped for a slow subscriber (they are few; a page must learn that a job ended).
#: ``lost``: the runner that owned the job stopped answering (scale-out), so it never closes.
LIFECYCLE_TYPES = frozenset({"spawn", "exit", "close", "error", "disconnect", "lost"})
#: A child's events are ipc's (`ipc.process.EVENTS`, less ``internalMessage``: the app
#: shows the messages, not Node's protocol); the rest are the app's own: ``stats`` (a live
#: job's RSS / CPU), ``dropped`` (a subscriber's or a history's gap), ``lost`` and ``lab``.
EVENT_TYPES = (CHILD_EVENTS - {"internalMessage"}) | {"stats", "dropped", "lost", "lab"}
# and fd3, fd4, ...: output of a spawn's extra stdio pipes
# ``lab``: the transport lab's progress (webapp/lab.py). Not a job's event: ``job`` is null,
# ``pid`` the server's, and ``data`` the whole run as it stands (LabRun.snapshot), so the
# latest one is all a page needs.


def check_type(type_: str) -> None:
    """:raises ValueError: `type_` is not an event type (nor ``fd<N>``)."""
    if type_ not in EVENT_TYPES and not (type_[:2] == "fd" and type_[2:].isdigit()):
        raise ValueError(f"unknown event type {type_!r}")


def dumps(event: dict[str, Any]) -> str:
    return jsontext.dumps(event)


def encode(event: dict[str, Any]) -> bytes:
    """`event` as UTF-8 JSON, whatever a child's message holds (see ``jsontext.py``)."""
    return jsontext.encode(event)


@dataclass
class _Kept:
    """One event in a history, with its encoding (sent as is to every subscriber)."""

    seq: int
    event: dict[str, Any]
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode()


@dataclass
class _History:
    """One job's kept events plus the seq ranges of those that fell out."""

    events: deque[_Kept] = field(default_factory=deque)
    size: int = 0
    #: ``[first, last, count]`` runs of evicted seqs, oldest first (at most `max_runs`).
    evicted: list[list[int]] = field(default_factory=list)

    def evict_one(self, max_runs: int) -> None:
        old = self.events.popleft()
        self.size -= len(old.payload)
        runs = self.evicted
        if runs and runs[-1][1] == old.seq - 1:
            runs[-1][1] = old.seq
            runs[-1][2] += 1
            return
        runs.append([old.seq, old.seq, 1])
        if len(runs) > max_runs:
            # A job whose events interleave with another's evicts one run per event: without
            # this the list grew by one for every event evicted. The two oldest runs become
            # one (first of one, last of the other, both counts), exact for any replay that
            # starts outside it; as the Redis bus does (``note_evicted``).
            first, second = runs[0], runs[1]
            runs[:2] = [[first[0], second[1], first[2] + second[2]]]


def evicted_after(runs: list[list[int]], after: int) -> tuple[int, int, int]:
    """(count, first, last) of evicted seqs greater than `after`.

    `runs` are ``[first, last]`` runs of consecutive evicted seqs, oldest first, or
    ``[first, last, count]`` for a run that stands for `count` evictions spread over that
    range (Redis merges its oldest runs so that their list stays bounded); a notice that
    starts inside such a run counts at most the seqs it covers.
    """
    count, first, last = 0, 0, 0
    for run in reversed(runs):
        lo, hi = run[0], run[1]
        if hi <= after:
            break
        span = hi - lo + 1
        events = run[2] if len(run) > 2 else span
        lo = max(lo, after + 1)
        count += min(events, hi - lo + 1)
        first = lo
        last = last or hi
    return count, first, last


def contiguous_gap(after: int, last_evicted: int) -> tuple[int, int, int]:
    """For an all-jobs replay: (count, first, after') of the gap right after `after`, up to
    the newest evicted seq of any job. The gap is kept contiguous, so that a client that takes
    the notice's seq as its last one never sees a smaller seq afterwards: kept events inside it
    (other jobs' older events) are skipped and counted too."""
    if last_evicted > after:
        return last_evicted - after, after + 1, last_evicted
    return 0, after + 1, after


def cut_replay(
    job: str | None,
    asked: int,
    items: list[_Kept],
    gap: tuple[int, int, int],
    max_replay: int,
    reason: str = "history_limit",
) -> tuple[list[_Kept], dict | None]:
    """The replay's `items` (oldest first) cut to the newest `max_replay`, and the notice for
    the gap right after `asked`: `gap` is (count, first, last) of what is no longer kept."""
    count, first, last = gap
    if len(items) > max_replay:
        cut = len(items) - max_replay
        last = items[cut - 1].seq
        if job is None:
            first, count = asked + 1, last - asked
        else:
            first = first if count else items[0].seq
            count += cut
        items = items[cut:]
    if not count:
        return items, None
    return items, dropped_event(job, count, first, last, reason)


def dropped_event(
    job: str | None, count: int, first: int, last: int, reason: str, host: str | None = None
) -> dict:
    return {
        "seq": last,
        "job": job,
        "pid": None,
        "type": "dropped",
        "t": time.time(),
        "data": {"count": count, "from_seq": first, "to_seq": last, "reason": reason},
        "host": host,
    }


class Subscriber:
    """One feed client's view of the bus: a replay, then live events, bounded.

    The bus pushes under its lock; the consumer calls `drain()`. Nothing here blocks the
    publisher: a full queue merges or drops, never waits. `notify`, when set, is called (under
    the bus's lock, so it must be quick and must not call back into the bus) once when the
    subscriber gets something to drain after its last drain.
    """

    def __init__(
        self,
        job: str | None,
        max_events: int,
        max_bytes: int,
        coalesce_bytes: int,
        output_rate: int | None = None,
    ) -> None:
        self.job = job
        #: Output bytes per second this client can take (a page that renders every line);
        #: a token bucket with one second of burst. None: as fast as its socket drains.
        self.output_rate = output_rate
        self._tokens = float(output_rate or 0)
        self._refilled = time.monotonic()
        self._gap_reason = "subscriber_behind"
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.coalesce_bytes = coalesce_bytes
        # A plain lock (C-level `with`), and a condition on it only for a consumer that waits
        # in `drain(timeout)`: the bus pushes to every subscriber per event, so push is lean.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0
        self._queue: deque[list[Any]] = deque()  # [seq, event, payload-or-None, size]
        self._bytes = 0
        self._gap: list[int] | None = None  # [count, first, last] while dropping
        self.closed = False
        self.dropped_total = 0
        self.notify: Callable[[], None] | None = None
        self._notified = False

    def _signal(self) -> None:
        """Under the lock: wake a waiting drain, and the consumer, once."""
        if self._waiting:
            self._cond.notify()
        if self.notify is not None and not self._notified:
            self._notified = True
            self.notify()

    def wants(self, job: str | None) -> bool:
        return self.job is None or self.job == job

    def _put(self, seq: int, event: dict[str, Any], payload: bytes | None, size: int) -> None:
        self._queue.append([seq, event, payload, size, None])
        self._bytes += size

    def push(self, kept: _Kept) -> None:
        """Called by the bus, under its lock: queue, merge into the last chunk, or drop.

        Runs once per event per subscriber, so it is kept lean (a feed server fans every
        event out to a classroom of pages)."""
        event = kept.event
        kind = event["type"]
        size = len(kept.payload)
        with self._lock:
            if self.closed:
                return
            queue = self._queue
            keep = kind in LIFECYCLE_TYPES and len(queue) < 2 * self.max_events
            if keep:
                # Rare and what a page most needs (a job ended): never dropped. A gap open
                # before it is closed first, so seqs stay in order.
                self._close_gap()
            elif self._gap is not None:
                self._note_drop(kept.seq)
                return
            elif kind in OUTPUT_TYPES:
                if self.output_rate and not self._afford(size):
                    self._note_drop(kept.seq, "output_rate")
                    self._signal()
                    return
                if queue:
                    last = queue[-1]
                    head = last[1]
                    if (
                        head["type"] == kind
                        and head["job"] == event["job"]
                        and last[3] + size <= self.coalesce_bytes
                    ):
                        self._merge(last, kept, size)
                        return  # the queue was not empty: the consumer knows already
            if not keep and (len(queue) >= self.max_events or self._bytes + size > self.max_bytes):
                self._note_drop(kept.seq)
                self._signal()
                return
            queue.append([kept.seq, event, kept.payload, size, None])
            self._bytes += size
            if self._waiting or not self._notified:
                self._signal()

    def _merge(self, last: list[Any], kept: _Kept, size: int) -> None:
        """Merge output `kept` into the queued chunk `last` (same job and stream). The texts
        are collected in a list and joined once, when the chunk is drained."""
        parts = last[4]
        if parts is None:
            merged = dict(last[1])
            data = merged["data"] = dict(merged["data"])
            data.setdefault("first_seq", last[0])
            parts = last[4] = [data.pop("text", "")]
            last[1] = merged
        merged = last[1]
        data = merged["data"]
        new = kept.event["data"]
        parts.append(new.get("text", ""))
        data["bytes"] = data.get("bytes", 0) + new.get("bytes", 0)
        data["coalesced"] = data.get("coalesced", 1) + new.get("coalesced", 1)
        merged["seq"] = last[0] = kept.seq
        merged["t"] = kept.event["t"]
        last[2] = None
        last[3] += size
        self._bytes += size

    def _afford(self, size: int) -> bool:
        """Take `size` bytes from the output budget, refilled at `output_rate` per second."""
        assert self.output_rate
        now = time.monotonic()
        self._tokens = min(
            float(self.output_rate), self._tokens + (now - self._refilled) * self.output_rate
        )
        self._refilled = now
        if self._tokens < size:
            return False
        self._tokens -= size
        return True

    def _note_drop(self, seq: int, reason: str = "subscriber_behind") -> None:
        self.dropped_total += 1
        if self._gap is None:
            self._gap_reason = reason
            self._gap = [1, seq, seq]
        else:
            self._gap[0] += 1
            self._gap[2] = seq

    def preload(self, items: list[_Kept], notice: dict[str, Any] | None) -> None:
        """The replay, queued ahead of live events (not bounded by the live limits: the
        history it comes from is bounded, and `max_replay` caps it)."""
        with self._lock:
            if notice is not None:
                self._put(notice["seq"], notice, None, 0)
            for kept in items:
                self._put(kept.seq, kept.event, kept.payload, 0)
            if self._queue:
                self._signal()

    def drain(self, timeout: float | None = None, limit: int | None = None) -> list[bytes]:
        """What is queued, encoded (UTF-8 JSON), in seq order; waits up to `timeout` for
        something. With `limit`, stops once that many bytes are taken (at least one event is);
        the rest stays queued for the next drain, and no new `notify` comes for it.

        A pending gap becomes one ``dropped`` notice after the queued events: they all came
        before it, and nothing after it was queued while it was open.
        """
        with self._lock:
            if not self._queue and self._gap is None and not self.closed and timeout:
                self._waiting += 1
                try:
                    self._cond.wait(timeout)
                finally:
                    self._waiting -= 1
            queue = self._queue
            out: list[bytes] = []
            taken = 0
            while queue and (limit is None or not out or taken < limit):
                _, event, payload, size, parts = queue.popleft()
                if payload is None:
                    if parts is not None:
                        event["data"]["text"] = "".join(parts)
                    payload = encode(event)
                out.append(payload)
                taken += len(payload)
                self._bytes -= size
            if not queue:
                self._close_gap()
                if queue:
                    out.append(encode(queue.popleft()[1]))
                self._bytes = 0
                self._notified = False
            return out

    def pending(self) -> bool:
        """Something is queued (or a gap is waiting for its notice)."""
        with self._lock:
            return bool(self._queue) or self._gap is not None

    def _close_gap(self) -> None:
        """Queue the notice for the open gap, if any (under the condition's lock)."""
        if self._gap is not None:
            count, first, last = self._gap
            self._gap = None
            notice = dropped_event(self.job, count, first, last, self._gap_reason)
            self._put(last, notice, None, 0)

    def wake(self) -> None:
        with self._lock:
            self._cond.notify_all()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._queue.clear()
            self._cond.notify_all()


class MemoryEventBus(EventBus):
    """The embedded bus: numbers, keeps and fans out events in this process. Thread-safe;
    `publish` never blocks on a client."""

    def __init__(
        self,
        *,
        host: str = "local",
        max_events_per_job: int = 2000,
        max_bytes_per_job: int = 2 * 1024 * 1024,
        subscriber_events: int = 1000,
        subscriber_bytes: int = 1024 * 1024,
        coalesce_bytes: int = 64 * 1024,
        max_replay: int = 10000,
        max_runs: int = 1000,
    ) -> None:
        super().__init__(
            host=host,
            subscriber_events=subscriber_events,
            subscriber_bytes=subscriber_bytes,
            coalesce_bytes=coalesce_bytes,
            max_replay=max_replay,
        )
        self.max_events_per_job = max_events_per_job
        self.max_bytes_per_job = max_bytes_per_job
        #: Runs of evicted seqs each history remembers (`_History.evict_one`).
        self.max_runs = max_runs
        self._seq = 0
        self._histories: dict[str | None, _History] = {}

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def publish(
        self,
        job: str | None,
        pid: int | None,
        type_: str,
        data: dict[str, Any] | None = None,
        host: str | None = None,
    ) -> dict[str, Any]:
        """Number `type_` event of `job`, keep it, hand it to every interested subscriber."""
        check_type(type_)
        with self._lock:
            self._seq += 1
            event = {
                "seq": self._seq,
                "job": job,
                "pid": pid,
                "type": type_,
                "t": time.time(),
                "data": data or {},
                "host": host or self.host,
            }
            kept = _Kept(self._seq, event, encode(event))
            history = self._histories.get(job)
            if history is None:
                history = self._histories[job] = _History()
            history.events.append(kept)
            history.size += len(kept.payload)
            while len(history.events) > 1 and (
                len(history.events) > self.max_events_per_job
                or history.size > self.max_bytes_per_job
            ):
                history.evict_one(self.max_runs)
            for sub in self._subscribers:
                if sub.job is None or sub.job == job:  # sub.wants(job), inlined: per event
                    sub.push(kept)
            return event

    def forget(self, job: str) -> None:
        """Drop a job's history (DELETE /api/jobs/<id>). Its seqs are then simply absent from
        replays of all jobs: deleted on purpose, not dropped."""
        with self._lock:
            self._histories.pop(job, None)

    def _delivered(self) -> int:
        return self._seq  # publish numbers and delivers in one step, under the lock

    # ---- internals (under the lock) -------------------------------------------------------

    def _replay(
        self, job: str | None, after: int, upto: int | None = None
    ) -> tuple[list[_Kept], dict | None]:
        """Kept events after `after`, and the notice for a gap right after `after` (`upto`
        is always the last seq here: numbering and delivery are one step).

        For all jobs the gap is contiguous (see `contiguous_gap`); for one job the evicted
        events are always its oldest, so its gap is exact.
        """
        with self._lock:
            return self._replay_locked(job, after)

    def _replay_locked(self, job: str | None, after: int) -> tuple[list[_Kept], dict | None]:
        asked = after
        if job is not None:
            history = self._histories.get(job)
            if history is None:
                return [], None
            gap = evicted_after(history.evicted, after)
            items = [k for k in history.events if k.seq > after]
        else:
            last = max((h.evicted[-1][1] for h in self._histories.values() if h.evicted), default=0)
            gap = contiguous_gap(after, last)
            after = gap[2]
            streams = [[k for k in h.events if k.seq > after] for h in self._histories.values()]
            items = list(heapq.merge(*streams, key=lambda k: k.seq))
        return cut_replay(job, asked, items, gap, self.max_replay)
