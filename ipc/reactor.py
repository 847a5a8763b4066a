"""One background thread that multiplexes every child's fds and timers.

Every child's channel, stdout, stderr, extra pipes and exit notification (a pidfd) are
registered in one `select.epoll` loop (`select.poll` where there is no epoll), so a hundred
children cost one thread, not three each. Callbacks run on this thread and must be quick. Other
threads never touch the poller: they hand work over with `call_soon`, which wakes the loop
through a pipe.

The poller is used directly, not through `selectors`: every message's round trip passes through
this loop, and the wrapper's per-event key objects and mask translation cost a few µs each time.

Faults stay with their owner. A queued call or timer may be given an *owner* (a child), and an
fd handler belongs to the owner whose callback registered it (ownership passes from a running
callback to the fds it watches, as asyncio's context passes on). A callback that raises never
runs again by itself (a failed fd handler is removed, so a still-readable fd cannot spin the
loop), and its owner is told, through `reactor_callback_failed(exc)`, to clean itself up; other
owners never notice. A call without an owner (user code: `ipc.call_soon`) that raises is
logged, once, and touches no child. A `SystemExit` (or any other exception that is not an
`Exception`) from a callback is the program asking to end, as ``process.exit()`` in a Node
listener: the process exits with its status (`fatal.exit_process`, after the `atexit`
handlers), rather than the loop's thread dying in silence and every child's events with it.
Should the loop's thread die anyway (a bug in the loop), the next `call_soon` starts a new one.
`run_ready_readers(owner)` drains an owner's readable fds at once (a child's last output and
messages before its `exit`). After `os.fork()` the child process gets a fresh reactor.
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
from typing import Any, Protocol

from .fatal import exit_process
from .waker import Waker

log = logging.getLogger("ipc")

Callback = Callable[[], None]


class Owner(Protocol):
    """What owns reactor callbacks (a child): told once when one of them raised."""

    def reactor_callback_failed(self, exc: BaseException) -> None: ...


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

    __slots__ = ("_callback", "cancelled", "owner", "when")

    def __init__(self, when: float, callback: Callback, owner: Owner | None) -> None:
        self.when = when
        self._callback = callback
        self.owner = owner
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    """An epoll loop on a daemon thread, started on first use."""

    def __init__(self, name: str = "ipc-reactor", *, spin: float = DEFAULT_SPIN) -> None:
        self._name = name
        self.spin = spin  # seconds; see DEFAULT_SPIN. May be changed at any time.
        self._poller = select.epoll() if hasattr(select, "epoll") else select.poll()
        self._waker = Waker()  # other threads' call_soon wakes the loop through it
        self._poller.register(self._waker.fileno(), _IN)
        self._calls: deque[tuple[Callback, Owner | None]] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._timer_ids = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        # fd -> [reader, writer, owner] and fd -> mask registered with the poller; touched
        # only on the reactor thread
        self._handlers: dict[int, list[Any]] = {}
        self._masks: dict[int, int] = {}
        #: The owner of the callback running now (reactor thread only; None between them).
        self._owner: Owner | None = None

    # ---- running --------------------------------------------------------------------------

    def ensure_running(self) -> None:
        """Start the loop's thread, or start it again if it died (`_run` clears `_thread` on
        its way out, so this check stays one attribute read on every `call_soon`)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread
                self._thread_id = thread.ident

    def in_reactor_thread(self) -> bool:
        return threading.get_ident() == self._thread_id

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def call_soon(self, fn: Callable[..., Any], *args: Any, owner: Owner | None = None) -> None:
        """Run `fn(*args)` on the reactor thread, after what is already queued (FIFO).

        `owner` is told if it raises (and owns the fds it registers).
        """
        self.ensure_running()
        self._calls.append(((lambda: fn(*args)) if args else fn, owner))
        self._wake()

    def call_later(
        self, delay: float, fn: Callable[..., Any], *args: Any, owner: Owner | None = None
    ) -> TimerHandle:
        """Run `fn(*args)` on the reactor thread after `delay` seconds (monotonic clock)."""
        import time

        callback = (lambda: fn(*args)) if args else fn
        handle = TimerHandle(time.monotonic() + max(0.0, delay), callback, owner)
        self.call_soon(self._push_timer, handle)
        return handle

    def _push_timer(self, handle: TimerHandle) -> None:
        heapq.heappush(self._timers, (handle.when, next(self._timer_ids), handle))

    def _wake(self) -> None:
        if not self._waker.pending and not self.in_reactor_thread():
            self._waker.wake()

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
            handlers = self._handlers[fd] = [None, None, self._owner]
        elif handlers[2] is None:
            handlers[2] = self._owner
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
        self._thread_id = threading.get_ident()  # before any callback asks in_reactor_thread()
        try:
            self._loop()
        except BaseException:  # a bug in the loop itself (callbacks cannot get here)
            log.exception("the ipc reactor loop failed; it starts again on next use")
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None  # so ensure_running() starts a new one

    def _loop(self) -> None:
        import time

        poll = self._poller.poll
        handlers_of = self._handlers.get
        wake_r = self._waker.fileno()
        drain_wakeups = self._waker.drain  # before the queued calls are run: see `Waker`
        invoke = self._invoke
        invoke_fd = self._invoke_fd
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
                    drain_wakeups()
                    continue
                handlers = handlers_of(fd)
                if handlers is None:
                    continue
                busy = True
                if events & _NOT_OUT and handlers[0] is not None:
                    invoke_fd(fd, 0, handlers)
                    handlers = handlers_of(fd)  # the reader may have removed or replaced it
                if events & _NOT_IN and handlers is not None and handlers[1] is not None:
                    invoke_fd(fd, 1, handlers)
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    _, _, handle = heapq.heappop(timers)
                    if not handle.cancelled:
                        invoke(handle._callback, handle.owner)
            for _ in range(len(calls)):
                invoke(*calls.popleft())

    def _invoke(self, callback: Callback, owner: Owner | None) -> None:
        self._owner = owner
        try:
            callback()
        except Exception as exc:
            self._callback_failed(exc, owner)
        except BaseException as exc:
            exit_process(exc)  # sys.exit() in a listener: the process's exit, as in Node
        finally:
            self._owner = None

    def _invoke_fd(self, fd: int, slot: int, handlers: list[Any]) -> None:
        """Run the reader (slot 0) or writer (1) of `fd`; one that raises is removed, so an fd
        that stays ready cannot run it again and again."""
        callback, owner = handlers[slot], handlers[2]
        self._owner = owner
        try:
            callback()
        except Exception as exc:
            current = self._handlers.get(fd)
            if current is not None and current[slot] is callback:
                self._set_handler(fd, slot, None)
            self._callback_failed(exc, owner)
        except BaseException as exc:
            exit_process(exc)  # sys.exit() in a listener: the process's exit, as in Node
        finally:
            self._owner = None

    @staticmethod
    def _callback_failed(exc: Exception, owner: Owner | None) -> None:
        """Tell the owner (it cleans itself up; what it registers meanwhile is still its
        own), or log it: one record per failure, and a failure never repeats by itself."""
        if owner is not None:
            try:
                owner.reactor_callback_failed(exc)
                return
            except Exception:
                log.exception("ipc: cleaning up after a failed callback failed too")
                return
        log.error("ipc callback failed", exc_info=exc)

    def run_ready_readers(self, owner: Owner, max_rounds: int = 64) -> None:
        """Reactor thread: run the reader of every fd of `owner` while it has something to
        read (data, end of stream or an error), up to `max_rounds` times each.

        A child's exit is noticed on its own fd; what it wrote before dying waits on others
        (stdout, the channel, a connection not yet accepted). Reading them first keeps the
        order the child wrote in: everything before its `exit`. The bound keeps a grandchild
        that holds a pipe and writes without pause from delaying `exit` for ever.
        """
        for _ in range(max_rounds):
            fds = [fd for fd, h in self._handlers.items() if h[2] is owner and h[0] is not None]
            if not fds:
                return
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            ready = [fd for fd, events in poller.poll(0) if events]
            if not ready:
                return
            for fd in ready:
                handlers = self._handlers.get(fd)
                if handlers is not None and handlers[0] is not None and handlers[2] is owner:
                    self._invoke_fd(fd, 0, handlers)

    def _close_after_fork(self) -> None:
        """In a forked child: this reactor's thread does not exist here; close its fds."""
        self._waker.close_after_fork()
        try:
            self._poller.close()  # type: ignore[union-attr]
        except (AttributeError, OSError):
            pass


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


def _reset_after_fork() -> None:
    """In the child of `os.fork()`: only the forking thread exists there, so the parent's
    reactor thread does not. Start afresh (a new reactor on first use), or every call_soon
    would wait for a thread that will never run."""
    global _default, _default_lock
    old, _default = _default, None
    _default_lock = threading.Lock()
    if old is not None:
        old._close_after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def call_soon(fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn(*args)` on ipc's reactor thread (where every event listener runs), after the
    callbacks already queued there. From a listener, it runs after the current event."""
    get_reactor().call_soon(fn, *args)


def call_later(delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
    """Run `fn(*args)` on ipc's reactor thread after `delay` seconds; `.cancel()` the handle
    to stop it. Keep `fn` quick: every child's events wait while it runs."""
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay != delay:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"delay must be a number of seconds, not {delay!r}")
    return get_reactor().call_later(delay, fn, *args)
