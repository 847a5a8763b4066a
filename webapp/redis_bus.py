"""The event bus on Redis Streams: one numbering and one history for every process that shares
a Redis (several gunicorn workers, several servers, ``agent`` runners on other hosts).

Three parts, each one thread or less:

* **publishing** (`publish` → the ``redis-publisher`` thread): `publish` encodes the event once
  and queues it; it never waits for the network (it runs on ipc's reactor thread). The
  publisher sends what is queued in batches to one Lua script (``redis_scripts.PUBLISH``)
  that numbers each event and appends it, atomically, to the global stream and to its job's
  bounded history, with the stream id derived from the seq (``<seq>-0``): seq order is stream
  order, across every process. The same call updates the records of the jobs in the batch.
  While Redis cannot be reached the queue holds up to `queue_bytes`; past that, events are
  counted and, once Redis is back, each job that lost some gets an ``error`` event saying how
  many (lifecycle events are never dropped);
* **tailing** (the ``redis-reader`` thread): ``XREAD BLOCK`` on the global stream, in stream
  order, handing each event to the local subscribers (`events.Subscriber`, as in memory).
  A reader that fell behind the stream's trim, or a Redis that lost its data, shows up as a
  jump in seq: the subscribers get a ``dropped`` notice for it;
* **replay** (`subscribe`, `events`): one Lua script reads a job's history (``XRANGE``) or
  merges every job's (newest `max_replay`), with what fell out, atomically; the gap rules are
  those of the memory bus (`events.evicted_after`, `contiguous_gap`, `cut_replay`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from .bus import EventBus
from .errors import StoreUnavailable
from .events import (
    LIFECYCLE_TYPES,
    OUTPUT_TYPES,
    _Kept,
    check_type,
    contiguous_gap,
    cut_replay,
    dropped_event,
    encode,
    evicted_after,
)
from .redis_store import RedisScriptError, RedisStore

#: Events and bytes per call of the publish script, and events per read of the stream: small
#: enough that a batch handed to the subscribers at once is no burst that overflows a client's
#: queue (1 MiB) which the same output, arriving as it was written, would not.
BATCH_EVENTS = 500
BATCH_BYTES = 256 * 1024
READ_COUNT = 100
#: Seconds between attempts while Redis cannot be reached.
RETRY = 0.5
#: How long the reader blocks in XREAD before it looks at its stop flag (and at the epoch).
READ_BLOCK_MS = 1000

#: (job id, seq-less UTF-8 JSON, output stream or "", output text, size)
_Queued = tuple[str, bytes, str, str, int]
RecordSource = Callable[[list[str]], list[tuple[str, bytes, str, str]]]


def _job_key(job: str | None) -> str:
    return "" if job is None else job


class RedisEventBus(EventBus):
    """`EventBus` on a `RedisStore`. Limits as `MemoryEventBus`'s, plus:

    :param output_cap: stdout + stderr kept per job for ``/api/jobs/<id>/output``.
    :param stream_maxlen: events the global stream keeps (about): how far a reader may fall
        behind before its subscribers get a ``dropped`` notice.
    :param queue_bytes: what waits for Redis before new output is dropped (counted).
    """

    def __init__(
        self,
        store: RedisStore,
        *,
        host: str,
        max_events_per_job: int = 2000,
        max_bytes_per_job: int = 2 * 1024 * 1024,
        subscriber_events: int = 1000,
        subscriber_bytes: int = 1024 * 1024,
        coalesce_bytes: int = 64 * 1024,
        max_replay: int = 10000,
        output_cap: int = 1024 * 1024,
        stream_maxlen: int = 2000,
        queue_bytes: int = 32 * 1024 * 1024,
        max_runs: int = 1000,
    ) -> None:
        super().__init__(
            host=host,
            subscriber_events=subscriber_events,
            subscriber_bytes=subscriber_bytes,
            coalesce_bytes=coalesce_bytes,
            max_replay=max_replay,
        )
        self.store = store
        self.queue_bytes = queue_bytes
        self.limits = [stream_maxlen, max_events_per_job, max_bytes_per_job, output_cap, max_runs]
        #: Gives the records of the jobs in a batch (set by the job registry).
        self.record_source: RecordSource | None = None
        self._stop = threading.Event()
        # publishing
        self._out: deque[_Queued] = deque()
        self._out_bytes = 0
        self._inflight = 0
        self._lost: dict[str, int] = {}  # per job, not yet reported
        self._lost_total = 0
        self._out_cond = threading.Condition()
        # tailing
        self._renewed = False
        #: The reader also blocks on this key of its own: `close` adds to it to wake it.
        self._wake_key = store.key(f"wake:{uuid.uuid4().hex}")
        store.on_new_epoch(self._note_new_epoch)
        self._dispatched = self._current_seq()
        store.note_seen(self._dispatched)
        self._publisher = threading.Thread(
            target=self._publish_loop, name="redis-publisher", daemon=True
        )
        self._reader = threading.Thread(target=self._read_loop, name="redis-reader", daemon=True)
        self._publisher.start()
        self._reader.start()

    # ---- the interface ----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._current_seq()

    def publish(
        self,
        job: str | None,
        pid: int | None,
        type_: str,
        data: dict[str, Any] | None = None,
        host: str | None = None,
    ) -> dict[str, Any]:
        """Queue the event for numbering (its ``seq`` is given in Redis: read it from the
        feed); never waits for Redis."""
        check_type(type_)
        event = {
            "job": job,
            "pid": pid,
            "type": type_,
            "t": time.time(),
            "data": data or {},
            "host": host or self.host,
        }
        rest = encode(event)
        stream, out = "", ""
        if type_ in OUTPUT_TYPES:
            stream, out = type_, event["data"].get("text", "")
        size = len(rest) + len(out)
        key = _job_key(job)
        with self._out_cond:
            full = self._out_bytes + size > self.queue_bytes
            if full and (type_ not in LIFECYCLE_TYPES or self._out_bytes > 2 * self.queue_bytes):
                self._lost[key] = self._lost.get(key, 0) + 1
                self._lost_total += 1
            else:
                self._out.append((key, rest, stream, out, size))
                self._out_bytes += size
                self._out_cond.notify()
        return {"seq": None, **event}

    def forget(self, job: str) -> None:
        self.store.run("forget", job)

    def sync(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._out_cond:
            while self._out or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._out_cond.wait(left):
                    return False
        target = self._current_seq()
        with self._lock:
            while self._dispatched < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._lock.wait(left):
                    return False
        return True

    def health(self) -> dict[str, Any]:
        health = self.store.health()
        with self._out_cond:
            health["queued_events"] = len(self._out)
            health["lost_events"] = self._lost_total
        return health

    def close(self, flush: float = 3.0) -> None:
        """Send what is queued (up to `flush` seconds), stop both threads, end every
        subscription."""
        deadline = time.monotonic() + flush
        with self._out_cond:
            while (self._out or self._inflight) and time.monotonic() < deadline:
                self._out_cond.wait(max(0.0, deadline - time.monotonic()))
            self._stop.set()
            self._out_cond.notify_all()
        self._publisher.join(5)
        try:  # wake the reader from its XREAD BLOCK at once
            self.store.call(self.store.client.xadd, self._wake_key, {"stop": 1})
        except StoreUnavailable:
            pass  # it is waiting to retry, on the stop flag
        self._reader.join(READ_BLOCK_MS / 1000 + 5)
        try:
            self.store.call(self.store.client.delete, self._wake_key)
        except StoreUnavailable:
            pass
        super().close()

    # ---- publishing -------------------------------------------------------------------------

    def _publish_loop(self) -> None:
        while True:
            with self._out_cond:
                while not self._out and not self._lost and not self._stop.is_set():
                    self._out_cond.wait()
                if self._stop.is_set():
                    return
                batch = self._take_batch()
                self._inflight = len(batch)
            try:
                self._send(batch)
            except StoreUnavailable:
                with self._out_cond:  # back to the front, in order, and try again
                    self._out.extendleft(reversed(batch))
                    self._inflight = 0
                self._stop.wait(RETRY)
                continue
            except RedisScriptError as exc:  # a bug of ours: say so, do not spin on it
                print(f"webapp: Redis refused {len(batch)} events: {exc}", flush=True)
            with self._out_cond:
                self._inflight = 0
                self._out_bytes -= sum(item[4] for item in batch)
                self._out_cond.notify_all()

    def _take_batch(self) -> list[_Queued]:
        """Up to BATCH_EVENTS / BATCH_BYTES from the queue, after the notices for events
        lost while Redis could not take them (under `_out_cond`)."""
        batch: list[_Queued] = []
        for key, count in self._lost.items():
            data = {
                "message": f"{count} events of this job were lost while Redis could not "
                "take them (unreachable, or too slow for the output)",
                "code": "ERR_EVENTS_LOST",
                "count": count,
            }
            event = {"job": key or None, "pid": None, "type": "error", "t": time.time()}
            rest = encode({**event, "data": data, "host": self.host})
            batch.append((key, rest, "", "", 0))
        self._lost.clear()
        size = 0
        while self._out and len(batch) < BATCH_EVENTS and size < BATCH_BYTES:
            item = self._out.popleft()
            size += item[4]
            batch.append(item)
        return batch

    def _send(self, batch: list[_Queued]) -> None:
        args: list[Any] = [*self.limits, len(batch)]
        jobs: dict[str, None] = {}
        for key, rest, stream, out, _size in batch:
            args += [key, rest, stream, out]
            if key:
                jobs[key] = None
        records = self.record_source(list(jobs)) if self.record_source and jobs else []
        args.append(len(records))
        for record in records:
            args += record
        first = int(self.store.run("publish", *args))
        self.store.note_seen(first + len(batch) - 1)

    # ---- tailing ----------------------------------------------------------------------------

    def _current_seq(self) -> int:
        self.store.ensure_epoch()
        value = self.store.call(self.store.client.get, self.store.key("seq"))
        return int(value or 0)

    def _delivered(self) -> int:
        return self._dispatched

    def _note_new_epoch(self) -> None:
        self._renewed = True

    def _read_loop(self) -> None:
        client, key = self.store.client, self.store.key("events")
        cursor = self._dispatched
        while not self._stop.is_set():
            try:
                reply = self.store.call(
                    client.xread,
                    {key: f"{cursor}-0", self._wake_key: "0-0"},
                    count=READ_COUNT,
                    block=READ_BLOCK_MS,
                )
                if not reply:
                    # Quiet: make sure the data set was not replaced under us (a Redis that
                    # came back empty numbers from below our cursor until we say otherwise).
                    self.store.check_epoch()
                    continue
            except StoreUnavailable:
                self._stop.wait(RETRY)
                continue
            streams = dict(reply)
            if self._wake_key.encode() in streams:
                return
            batch = []
            for entry_id, fields in streams.get(key.encode(), ()):
                payload = fields[b"e"]  # the UTF-8 JSON every subscriber is sent as is
                batch.append(_Kept(int(entry_id.split(b"-", 1)[0]), json.loads(payload), payload))
            if batch:
                self._dispatch(batch)
                cursor = batch[-1].seq

    def _dispatch(self, batch: list[_Kept]) -> None:
        with self._lock:
            for kept in batch:
                if kept.seq <= self._dispatched:
                    continue  # already handed out (cannot happen, but never twice)
                if kept.seq > self._dispatched + 1:
                    self._push_gap(self._dispatched + 1, kept.seq - 1)
                for sub in self._subscribers:
                    if sub.wants(kept.event["job"]):
                        sub.push(kept)
                self._dispatched = kept.seq
            self.store.note_seen(self._dispatched)
            self._lock.notify_all()

    def _push_gap(self, first: int, last: int) -> None:
        """Seqs this reader will never see: the stream was trimmed past it, or Redis lost
        its data (under `_lock`)."""
        reason = "redis_restarted" if self._renewed else "server_behind"
        self._renewed = False
        notice = dropped_event(None, last - first + 1, first, last, reason)
        kept = _Kept(last, notice, encode(notice))
        for sub in self._subscribers:
            sub.push(kept)

    # ---- replay -----------------------------------------------------------------------------

    def _replay(
        self, job: str | None, after: int, upto: int | None = None
    ) -> tuple[list[_Kept], dict | None]:
        """As `MemoryEventBus._replay`, from Redis; `upto`: leave out what came later (it
        reaches a new subscriber live)."""
        mode = "all" if job is None else "one"
        reply = self.store.run("replay", mode, _job_key(job), after, self.max_replay)
        floor = int(reply[0])
        items = []
        for entry_id, payload in reply[3:]:
            items.append(_Kept(int(entry_id.split(b"-", 1)[0]), json.loads(payload), payload))
        reason = "history_limit"
        if job is not None:
            if reply[1] is None:  # no such history
                return [], None
            runs = [[int(x) for x in run.split()] for run in reply[1]]
            if floor:
                runs.insert(0, [1, floor])
            gap = evicted_after(runs, after)
        else:
            evmax, cut = int(reply[1]), int(reply[2])
            gap = contiguous_gap(after, max(evmax, floor))
            if cut:
                gap = (cut - after, after + 1, cut)
        if floor > after and gap[2] <= floor:
            reason = "redis_restarted"
        if upto is not None:
            items = [k for k in items if k.seq <= upto]
            count, first, last = gap
            if count and last > upto:
                gap = (min(count, upto - first + 1), first, upto)
        return cut_replay(job, after, items, gap, self.max_replay, reason)
