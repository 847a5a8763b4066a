"""Listeners per event name, with nothing lost to the race between start and `on()`.

In Node no event fires before the code that called `fork()` returns to the event loop, so
listeners attached right after `fork()` see everything. Here the reactor thread may already
have emitted `spawn` or a first message by the time `fork()` returns, so an event with no
listener of its type is *held* and delivered, in order, to the first listener that comes.

Events are emitted on the reactor thread only; a held queue is flushed on the reactor thread
too, before any newer event of that type, so listeners see one order.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from .reactor import Owner, Reactor

Listener = Callable[..., Any]

log = logging.getLogger("ipc")


class Emitter:
    def __init__(
        self,
        reactor: Reactor,
        on_drained: Callable[[str], None] | None = None,
        on_held: Callable[[str, tuple[Any, ...]], None] | None = None,
        report_held: frozenset[str] = frozenset(),
        owner: Owner | None = None,
    ) -> None:
        self._reactor = reactor
        self._lock = threading.Lock()
        self._listeners: dict[str, list[tuple[Listener, bool]]] = defaultdict(list)
        # Per event with no `once` listener: the tuple of listeners to call, kept until `on` or
        # `off` changes them, so a message's emission copies no list.
        self._snapshots: dict[str, tuple[Listener, ...]] = {}
        # Every emission is numbered; held and deferred entries are (number, event, args).
        self._numbers = itertools.count()
        # (number, event, args) or (number, event, args, extra) from `emit_extra`
        self._held: dict[str, deque[tuple[Any, ...]]] = {}
        # Emissions that arrived while held events were being flushed: they wait their turn.
        self._deferred: deque[tuple[Any, ...]] = deque()
        self._flush_scheduled = False
        self._on_drained = on_drained
        # `on_held(event, args)` for an event of `report_held` that found no listener and is
        # held (the child watches its `error`s: one nobody takes goes to stderr, as Node's).
        self._on_held = on_held
        self._report_held = report_held
        self._owner = owner  # the flush (and what `on_drained` registers) is the child's

    def on(self, event: str, fn: Listener, *, once: bool = False) -> None:
        if not callable(fn):
            from .errors import InvalidArgumentError

            raise InvalidArgumentError(f"listener for {event!r} must be callable, not {fn!r}")
        with self._lock:
            first = not self._listeners[event]
            self._listeners[event].append((fn, once))
            self._snapshots.pop(event, None)
            flush = first and bool(self._held.get(event)) and not self._flush_scheduled
            if flush:
                self._flush_scheduled = True
        if flush:
            self._reactor.call_soon(self._flush, owner=self._owner)

    def off(self, event: str, fn: Listener) -> None:
        with self._lock:
            listeners = self._listeners.get(event, [])
            for i, (candidate, _) in enumerate(listeners):
                if candidate == fn:
                    del listeners[i]
                    self._snapshots.pop(event, None)
                    break

    def held_count(self, event: str) -> int:
        with self._lock:
            held = self._held.get(event)
            return len(held) if held else 0

    def emit(self, event: str, *args: Any) -> bool:
        """Call the listeners of `event` (reactor thread). False when the event was held."""
        with self._lock:
            # Only an entry that waits needs its number (taken under the lock, so numbers
            # still follow emission order); a message delivered at once costs no tuple.
            if self._flush_scheduled:
                # behind the held events being flushed
                self._deferred.append((next(self._numbers), event, args))
                return True
            if not self._listeners.get(event):
                self._hold((next(self._numbers), event, args))
                return False
            listeners = self._snapshots.get(event) or self._take(event)
        for fn in listeners:
            try:
                fn(*args)
            except Exception:
                log.exception("listener failed")
        return True

    def emit_extra(self, event: str, args: tuple[Any, ...], extra: tuple[Any, ...]) -> bool:
        """As `emit(event, *args)`, and listeners marked `takes_extra` (`handles.WithHandle`)
        get `extra` too: a message that came with a handle. Rare, so not on `emit`'s path."""
        with self._lock:
            if self._flush_scheduled:
                self._deferred.append((next(self._numbers), event, args, extra))
                return True
            if not self._listeners.get(event):
                self._hold((next(self._numbers), event, args, extra))
                return False
            listeners = self._take(event)
        self._call(listeners, args, extra)
        return True

    def _hold(self, entry: tuple[Any, ...]) -> None:
        """Keep `entry` for the first listener of its type. Holds the lock."""
        self._held.setdefault(entry[1], deque()).append(entry)
        if self._on_held is not None and entry[1] in self._report_held:
            self._on_held(entry[1], entry[2])  # must not call back into this emitter

    def held_ids(self, event: str) -> set[int]:
        """`id()` of the first argument of every `event` that waits for a listener."""
        with self._lock:
            waiting = [*self._held.get(event, ())]
            if not self._listeners.get(event):  # a deferred one with a listener is delivered
                waiting += self._deferred
        return {id(entry[2][0]) for entry in waiting if entry[1] == event and entry[2]}

    def _take(self, event: str) -> tuple[Listener, ...]:
        """The listeners to call for one emission; `once` ones are removed. Holds the lock."""
        listeners = self._snapshots.get(event)
        if listeners is not None:
            return listeners
        entries = self._listeners[event]
        listeners = tuple(fn for fn, _ in entries)
        if any(once for _, once in entries):
            self._listeners[event] = [entry for entry in entries if not entry[1]]
        else:
            self._snapshots[event] = listeners
        return listeners

    @staticmethod
    def _call(
        listeners: tuple[Listener, ...], args: tuple[Any, ...], extra: tuple[Any, ...] = ()
    ) -> None:
        taken = False
        for fn in listeners:
            try:
                if extra and getattr(fn, "takes_extra", False):
                    taken = True
                    fn(*args, *extra)
                else:
                    fn(*args)
            except Exception:
                log.exception("listener failed")
        if extra and not taken:
            # A handle no listener took is closed now, not left to the garbage collector.
            for item in extra:
                close = getattr(item, "close", None)
                if close is not None:
                    close()

    def _next_deliverable(
        self,
    ) -> tuple[str, tuple[Any, ...], tuple[Listener, ...], tuple[Any, ...]] | None:
        """The oldest entry that has listeners now, across held types and deferred emissions.

        Deferred entries whose type has no listener become held. Holds the lock.
        """
        while True:
            best: deque[tuple[Any, ...]] | None = None
            for event, queue in self._held.items():
                if queue and self._listeners.get(event) and (best is None or queue[0] < best[0]):
                    best = queue
            if self._deferred and (best is None or self._deferred[0] < best[0]):
                event = self._deferred[0][1]  # entries may carry `extra` (emit_extra)
                if not self._listeners.get(event):
                    self._hold(self._deferred.popleft())
                    continue
                best = self._deferred
            if best is None:
                return None
            entry = best.popleft()
            event, args = entry[1], entry[2]
            return event, args, self._take(event), entry[3] if len(entry) > 3 else ()

    def _flush(self) -> None:
        """Reactor thread: deliver held events to their new listeners, in emission order."""
        drained: set[str] = set()
        while True:
            with self._lock:
                item = self._next_deliverable()
                if item is None:
                    self._flush_scheduled = False
                    for event in [e for e, queue in self._held.items() if not queue]:
                        del self._held[event]
                    break
            event, args, listeners, extra = item
            drained.add(event)
            self._call(listeners, args, extra)
        if self._on_drained is not None:
            for event in drained:
                if not self.held_count(event):
                    self._on_drained(event)
