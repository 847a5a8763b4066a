"""One background thread that multiplexes every child's fds and timers.

Every child's channel, stdout, stderr, extra pipes and exit notification (a pidfd) are
registered in one `selectors` loop, so a hundred children cost one thread, not three each.
Callbacks run on this thread and must be quick. Other threads never touch the selector: they
hand work over with `call_soon`, which wakes the loop through a pipe.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import selectors
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ipc")

Callback = Callable[[], None]


class TimerHandle:
    """A pending `call_later`; `cancel()` stops it from running."""

    __slots__ = ("_callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self._callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    """A `selectors` loop on a daemon thread, started on first use."""

    def __init__(self, name: str = "ipc-reactor") -> None:
        self._name = name
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._calls: deque[Callback] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._timer_ids = itertools.count()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._thread: threading.Thread | None = None
        # fd -> [reader, writer]; touched only on the reactor thread
        self._handlers: dict[int, list[Callback | None]] = {}

    # ---- running --------------------------------------------------------------------------

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def in_reactor_thread(self) -> bool:
        return threading.current_thread() is self._thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the reactor thread, after what is already queued (FIFO)."""
        self.ensure_running()
        self._calls.append((lambda: fn(*args)) if args else fn)
        self._wake()

    def call_later(self, delay: float, fn: Callback) -> TimerHandle:
        """Run `fn()` on the reactor thread after `delay` seconds (monotonic clock)."""
        import time

        handle = TimerHandle(time.monotonic() + max(0.0, delay), fn)
        self.call_soon(self._push_timer, handle)
        return handle

    def _push_timer(self, handle: TimerHandle) -> None:
        heapq.heappush(self._timers, (handle.when, next(self._timer_ids), handle))

    def _wake(self) -> None:
        if self._wake_pending or self.in_reactor_thread():
            return
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    # ---- fd registration (reactor thread only) --------------------------------------------

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._set_handler(fd, 0, callback)

    def remove_reader(self, fd: int) -> None:
        self._set_handler(fd, 0, None)

    def add_writer(self, fd: int, callback: Callback) -> None:
        self._set_handler(fd, 1, callback)

    def remove_writer(self, fd: int) -> None:
        self._set_handler(fd, 1, None)

    def _set_handler(self, fd: int, slot: int, callback: Callback | None) -> None:
        assert self.in_reactor_thread(), "fd registration must happen on the reactor thread"
        handlers = self._handlers.get(fd)
        if handlers is None:
            if callback is None:
                return
            handlers = self._handlers[fd] = [None, None]
        handlers[slot] = callback
        mask = (selectors.EVENT_READ if handlers[0] else 0) | (
            selectors.EVENT_WRITE if handlers[1] else 0
        )
        try:
            if not mask:
                del self._handlers[fd]
                self._selector.unregister(fd)
            elif fd in self._selector.get_map():
                try:
                    self._selector.modify(fd, mask)
                except OSError:
                    # The old fd of this number was closed (epoll forgot it): start afresh.
                    self._forget(fd)
                    self._selector.register(fd, mask)
            else:
                self._selector.register(fd, mask)
        except (KeyError, ValueError, OSError):
            # The fd was closed under us (or never valid); drop what we knew of it.
            self._handlers.pop(fd, None)
            self._forget(fd)

    def _forget(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    # ---- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        import time

        while True:
            timeout: float | None = None
            if self._calls:
                timeout = 0
            elif self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                ready = self._selector.select(timeout)
            except OSError:  # pragma: no cover - a closed fd slipped through; retry
                log.exception("selector failed")
                ready = []
            for key, mask in ready:
                if key.fd == self._wake_r:
                    self._drain_wakeups()
                    continue
                handlers = self._handlers.get(key.fd)
                if handlers is None:
                    continue
                if mask & selectors.EVENT_READ and handlers[0] is not None:
                    self._invoke(handlers[0])
                handlers = self._handlers.get(key.fd)
                if handlers is not None and mask & selectors.EVENT_WRITE and handlers[1]:
                    self._invoke(handlers[1])
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, handle = heapq.heappop(self._timers)
                if not handle.cancelled:
                    self._invoke(handle._callback)
            for _ in range(len(self._calls)):
                self._invoke(self._calls.popleft())

    def _drain_wakeups(self) -> None:
        """Empty the wake-up pipe, then allow the next wake-up to write again.

        The order matters: clearing the flag first would let a waker write its byte between
        the clear and the read, the read would swallow it and the flag would stay set with an
        empty pipe, so no later `call_soon` would ever wake the loop (finding F4). Clearing it
        after the read is safe because the queued calls are run after this, in the same
        iteration: a waker that saw the flag still set has its call in the queue already.
        """
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self._wake_pending = False

    @staticmethod
    def _invoke(callback: Callback) -> None:
        try:
            callback()
        except Exception:
            log.exception("ipc callback failed")


_default: Reactor | None = None
_default_lock = threading.Lock()


def get_reactor() -> Reactor:
    """The process-wide reactor (created on first use; its thread starts with the first call)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Reactor()
    return _default
