"""`Waker`: wake a thread that sleeps in `poll` / `epoll` / `select`, from any other thread.

A self-pipe: the sleeping thread (the *waiter*) watches `fileno()` beside its other fds; any
thread that has put work where the waiter looks (a queue, a flag) calls `wake()`. At most one
byte is in the pipe per round: `wake()` writes only when no wake-up is pending, so a burst of a
thousand `call_soon`s costs one system call, not a thousand.

The protocol, and why its order matters:

* A waker first puts its work in place, then calls `wake()`.
* The waiter, when `fileno()` is readable, calls `drain()` *before* it looks at the work.
* `drain()` empties the pipe first and clears the pending flag after.

Clearing the flag before the read loses wake-ups: a waker that comes between the clear and the
read writes its byte, the read swallows it, and the flag stays set with an empty pipe; every
later `wake()` then sees "pending" and writes nothing, so the waiter sleeps through all later
work (the reactor's finding F4). In the order used here a waker that comes between the read and
the clear sees "pending" and writes nothing, which is safe: its work is already in place and
the waiter looks at the work after `drain()` returns. One that comes after the clear writes a
new byte, so the waiter's next poll returns at once.

`close()` may race `wake()` from another thread: both hold a small internal lock, so a late
`wake()` never writes to a closed fd whose number the system has since given to someone else.
The lock is held only around one non-blocking write or two closes, never while waiting.

Used by the reactor (`call_soon` from other threads), the child's writer thread,
`ChildProcess.write_stdin` (woken when the child exits) and the web app's feed hub. No
`typing` import: every Python child imports this module.
"""

from __future__ import annotations

import os
import threading


class Waker:
    """A non-blocking self-pipe with a pending flag (see the module docstring)."""

    __slots__ = ("_lock", "_read_fd", "_write_fd", "pending")

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()  # close-on-exec (PEP 446)
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._read_fd = read_fd
        self._write_fd = write_fd
        #: A byte was written and the waiter has not drained it yet.
        self.pending = False
        self._lock = threading.Lock()

    def fileno(self) -> int:
        """The fd to watch for reading (-1 once closed)."""
        return self._read_fd

    @property
    def closed(self) -> bool:
        return self._write_fd < 0

    def wake(self) -> None:
        """Make `fileno()` readable, unless a wake-up is already pending. Any thread; a no-op
        once closed."""
        if self.pending:
            return  # the common case under load, without the lock
        with self._lock:
            if self.pending or self._write_fd < 0:
                return
            self.pending = True
            try:
                os.write(self._write_fd, b"\0")
            except BlockingIOError:  # the pipe is full of bytes: the waiter will wake anyway
                pass

    def drain(self) -> None:
        """The waiter's call, before it looks at the work: empty the pipe, then let the next
        `wake()` write again (in this order; see the module docstring)."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        self.pending = False

    def close(self) -> None:
        """Close both ends; later `wake()` calls do nothing. Call it once the waiter no longer
        polls `fileno()`."""
        with self._lock:
            fds = (self._read_fd, self._write_fd)
            self._read_fd = self._write_fd = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def close_after_fork(self) -> None:
        """In the child of `os.fork()`: close both ends without the lock, which a thread that
        does not exist here may have held at the fork."""
        fds = (self._read_fd, self._write_fd)
        self._read_fd = self._write_fd = -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
