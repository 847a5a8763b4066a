"""The event bus interface: what `jobs`, `feed` and `api` may ask of the bus, whichever it is.

Two implementations sit behind it, as Django Channels' ``InMemoryChannelLayer`` sits beside
``channels_redis``' ``RedisChannelLayer``:

* `webapp.events.MemoryEventBus`, the embedded default: one process, nothing to run;
* `webapp.redis_bus.RedisEventBus`: every server process and ``agent`` runner that shares one
  Redis shares one numbering and one history (Redis Streams: ``XADD`` to append, ``XREAD
  BLOCK`` to tail, ``XRANGE`` to replay).

The contract, which ``tests/web/test_events.py`` checks against both:

* every event is ``{"seq", "job", "pid", "type", "t", "data", "host"}``; `seq` is global,
  strictly increasing and gap-free, and seq order is the order every subscriber sees;
* each job keeps a bounded history (events and bytes); what fell out is reported to a replay
  as one ``dropped`` notice;
* a subscriber is a local `events.Subscriber`: a bounded queue that merges or drops for a slow
  client and never blocks a publisher; subscribing with ``after`` replays what is kept after
  that seq and then goes live with nothing missed and nothing twice;
* `publish` never blocks on a client, nor (Redis) on the network: it may number the event
  later. `sync()` waits until what was published is numbered and delivered to the local
  subscribers (tests, and anyone who needs to read their own writes).

What both share lives here too: the local subscribers and the one lock that orders handing
out events with subscribing (`subscribe`, `unsubscribe`, `events`, ...). An implementation
numbers, keeps and delivers; it says what it last delivered (`_delivered`) and what it keeps
after a seq (`_replay`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # events.py implements this interface, so it imports this module
    from .events import Subscriber, _Kept


class EventBus(ABC):
    """Numbers, keeps and fans out events. Thread-safe."""

    def __init__(
        self,
        *,
        host: str,
        subscriber_events: int,
        subscriber_bytes: int,
        coalesce_bytes: int,
        max_replay: int,
    ) -> None:
        #: The runner name stamped on events this process publishes (``host`` of each event).
        self.host = host
        self.subscriber_events = subscriber_events
        self.subscriber_bytes = subscriber_bytes
        self.coalesce_bytes = coalesce_bytes
        self.max_replay = max_replay
        #: Held while events are handed to the subscribers, and while one subscribes
        #: (reentrant: an implementation's `_replay` may take it too).
        self._lock = threading.Condition(threading.RLock())
        self._subscribers: set[Subscriber] = set()

    @property
    @abstractmethod
    def last_seq(self) -> int:
        """The last seq numbered so far (by any process sharing the bus)."""

    @abstractmethod
    def publish(
        self,
        job: str | None,
        pid: int | None,
        type_: str,
        data: dict[str, Any] | None = None,
        host: str | None = None,
    ) -> dict[str, Any]:
        """Number `type_` event of `job`, keep it, hand it to every interested subscriber.

        :param host: the runner the event is about (default: this process's `host`).
        :raises ValueError: an unknown event type.
        """

    def subscribe(
        self, job: str | None = None, after: int | None = None, output_rate: int | None = None
    ) -> tuple[Subscriber, int]:
        """A subscriber to `job` (None: all), with the replay of everything after `after`
        (None: nothing, only what happens from now on). Returns it and the seq it starts at.

        Under the lock that delivery takes: no event falls between the replay (which stops
        at the last seq delivered) and the live queue.
        """
        from .events import Subscriber

        sub = Subscriber(
            job, self.subscriber_events, self.subscriber_bytes, self.coalesce_bytes, output_rate
        )
        with self._lock:
            start = self._delivered()
            if after is not None and after < start:
                items, notice = self._replay(job, max(after, 0), upto=start)
                sub.preload(items, notice)
            self._subscribers.add(sub)
        return sub, start

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)
        sub.close()

    def subscriber_count(self) -> int:
        """Subscribers of this process (each server counts its own feeds)."""
        with self._lock:
            return len(self._subscribers)

    def events(self, job: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        """The kept events after `after` (of one job, or all), oldest first, plus a leading
        ``dropped`` notice when some that were asked for are no longer kept."""
        items, notice = self._replay(job, after)
        head = [notice] if notice is not None else []
        return head + [kept.event for kept in items]

    def iter_texts(self, job: str | None = None, after: int = 0) -> Iterator[str]:
        """As `events`, encoded (for NDJSON export)."""
        from .events import dumps

        items, notice = self._replay(job, after)
        if notice is not None:
            yield dumps(notice)
        for kept in items:
            yield kept.text

    @abstractmethod
    def _delivered(self) -> int:
        """The last seq handed to this process's subscribers (called under `_lock`)."""

    @abstractmethod
    def _replay(
        self, job: str | None, after: int, upto: int | None = None
    ) -> tuple[list[_Kept], dict[str, Any] | None]:
        """The kept events after `after` (up to `upto`), and the ``dropped`` notice for what
        is no longer kept right after `after`."""

    @abstractmethod
    def forget(self, job: str) -> None:
        """Drop a job's history: its seqs are then absent from replays (deleted on purpose)."""

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until every event published here is numbered and every event numbered so far
        reached the local subscribers. True when done within `timeout`."""
        return True

    def health(self) -> dict[str, Any]:
        """Where events live and whether that works right now (``/api/status``)."""
        return {"kind": "memory", "ok": True}

    def close(self) -> None:
        """Stop background work and end every subscription (server shutdown)."""
        with self._lock:
            subs, self._subscribers = self._subscribers, set()
        for sub in subs:
            sub.close()
