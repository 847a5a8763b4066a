"""One background thread that multiplexes every child's fds and timers.

Every child's channel, stdout, stderr, extra pipes and exit notification (a pidfd) are
registered in one `select.epoll` loop (`select.poll` where there is no epoll), so a hundred
children cost one thread, not three each. Callbacks run on this thread and must be quick. Other
threads never touch the poller: they hand work over with `call_soon`, which wakes the loop
through a pipe.

The poller is used directly, not through `selectors`: every message's round trip passes through
this loop, and the wrapper's per-event key objects and mask translation cost a few µs each time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ipc")

Callback = Callable[[], None]

if hasattr(select, "epoll"):
    _IN, _OUT = select.EPOLLIN, select.EPOLLOUT
    _TIMEOUT_SCALE, _FOREVER = 1.0, -1.0  # epoll.poll takes seconds; -1 blocks
else:  # pragma: no cover - not Linux
    _IN, _OUT = select.POLLIN, select.POLLOUT
    _TIMEOUT_SCALE, _FOREVER = 1000.0, None  # poll.poll takes milliseconds; None blocks
#: How long (seconds) the loop keeps polling without sleeping after it served a child's fd,
#: before it blocks. A thread woken out of epoll_wait by another process's write pays a
#: cross-CPU wake-up (tens of µs on a VM: a blocking read gets the kernel's "sync" wake-up
#: hint, an epoll waiter does not); a reply that comes within the window is picked up by a
#: running thread instead. Measured with a raw echo child: p50 round trip 58 µs sleeping in
#: epoll, 26 µs with this spin, 35 µs for a blocking read. It costs at most this much CPU per
#: burst of activity, and every poll(0) releases the GIL, so other threads are not starved.
#: ``IPC_REACTOR_SPIN_US=0`` turns it off.


def _spin_from_env(default_us: float = 50.0) -> float:
    """``IPC_REACTOR_SPIN_US`` in seconds; a value that is not a number >= 0 is ignored (an
    environment variable must not make `import ipc` fail)."""
    text = os.environ.get("IPC_REACTOR_SPIN_US", "")
    try:
        value = float(text) if text else default_us
    except ValueError:
        value = default_us
    return (value if value >= 0 else default_us) / 1e6


DEFAULT_SPIN: float = _spin_from_env()

# Anything but "writable" (readable, hang-up, error) wakes the reader, and anything but
# "readable" wakes the writer, so both learn of a hang-up or error by their own I/O call (as
# `selectors` does).
_NOT_OUT, _NOT_IN = ~_OUT, ~_IN


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
    """An epoll loop on a daemon thread, started on first use."""

    def __init__(self, name: str = "ipc-reactor", *, spin: float = DEFAULT_SPIN) -> None:
        self._name = name
        self.spin = spin  # seconds; see DEFAULT_SPIN. May be changed at any time.
        self._poller = select.epoll() if hasattr(select, "epoll") else select.poll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, _IN)
        self._calls: deque[Callback] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._timer_ids = itertools.count()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._thread: threading.Thread | None = None
        # fd -> [reader, writer] and fd -> mask registered with the poller; touched only on
        # the reactor thread
        self._handlers: dict[int, list[Callback | None]] = {}
        self._masks: dict[int, int] = {}

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
        mask = (_IN if handlers[0] else 0) | (_OUT if handlers[1] else 0)
        if mask == self._masks.get(fd):
            return  # only the callback changed (or a reader re-added): nothing to tell epoll
        try:
            if not mask:
                del self._handlers[fd]
                self._forget(fd)
            elif fd in self._masks:
                try:
                    self._poller.modify(fd, mask)
                except OSError:
                    # The old fd of this number was closed (epoll forgot it): start afresh.
                    self._forget(fd)
                    self._poller.register(fd, mask)
                self._masks[fd] = mask
            else:
                self._poller.register(fd, mask)
                self._masks[fd] = mask
        except (ValueError, OSError):
            # The fd was closed under us (or never valid); drop what we knew of it.
            self._handlers.pop(fd, None)
            self._forget(fd)

    def _forget(self, fd: int) -> None:
        self._masks.pop(fd, None)
        try:
            self._poller.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    # ---- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        import time

        poll = self._poller.poll
        handlers_of = self._handlers.get
        wake_r = self._wake_r
        invoke = self._invoke
        calls = self._calls
        timers = self._timers
        busy = False  # the last round served a child's fd: more may come at once
        while True:
            spin = self.spin  # read each round: it may be changed while the loop runs
            try:
                ready = poll(0) if busy and spin and not calls else None
                if not ready and busy and spin and not calls:
                    deadline = time.perf_counter() + spin
                    while not ready and time.perf_counter() < deadline:
                        ready = poll(0)
                if not ready:
                    timeout = _FOREVER
                    if calls:
                        timeout = 0
                    elif timers:
                        timeout = max(0.0, timers[0][0] - time.monotonic()) * _TIMEOUT_SCALE
                    ready = poll(timeout)
            except OSError:  # pragma: no cover - a closed fd slipped through; retry
                log.exception("poll failed")
                ready = []
            busy = False
            for fd, events in ready:
                if fd == wake_r:
                    self._drain_wakeups()
                    continue
                handlers = handlers_of(fd)
                if handlers is None:
                    continue
                busy = True
                if events & _NOT_OUT and handlers[0] is not None:
                    invoke(handlers[0])
                    handlers = handlers_of(fd)  # the reader may have removed or replaced it
                if events & _NOT_IN and handlers is not None and handlers[1] is not None:
                    invoke(handlers[1])
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    _, _, handle = heapq.heappop(timers)
                    if not handle.cancelled:
                        invoke(handle._callback)
            for _ in range(len(calls)):
                invoke(calls.popleft())

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
