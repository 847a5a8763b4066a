"""`ChildProcess`: one started child, its pipes, its message port and its lifecycle events.

Lifecycle (`states.State`; an event on every change, through `_change_state`)::

    starting ──spawn──▶ running ──exit──▶ exited | signaled ──(all streams at EOF)──▶ close
        └──error (cannot start)──▶ failed ──▶ close

The child is started with `subprocess.Popen` (its C fork+exec is safe in a threaded process),
in a process group of its own. Its exit is noticed through a pidfd in the reactor's selector —
no SIGCHLD handler, no thread per child — and it is reaped with `os.waitpid`. The status is kept
as one integer (`returncode`, as CPython's `popen_fork.py`); the signal's name is derived from it
for display. When the exit is noticed, what the child wrote before it died and is still unread
(output, messages, a connection not yet accepted) is read first, so it comes before `exit`.
`close` fires only after exit *and* end of stream on stdout, stderr, extra pipes and the channel
(asyncio's `_maybe_close_transport` rule).

Every reactor callback of a child belongs to it: one that raises (a bug) costs that child one
`error` event, a SIGKILL and its clean-up, and one log line; the reactor and other children go on.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import select
import shutil
import signal as signal_module
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from .emitter import Emitter
from .errors import (
    BrokenChannelError,
    ChannelClosedError,
    InvalidArgumentError,
    IPCError,
    ProcessTimeoutError,
    SpawnError,
)
from .handles import message_listener
from .messaging import MessagePort, SendCallback
from .reactor import Reactor, TimerHandle, get_reactor
from .signals import signal_name, signal_number
from .states import FINAL_STATES, TRANSITIONS, State
from .transports import TransportSetup
from .waker import Waker

log = logging.getLogger("ipc")

EVENTS: Final = frozenset(
    {
        "spawn",
        "message",
        "internalMessage",
        "stdout",
        "stderr",
        "exit",
        "close",
        "error",
        "disconnect",
    }
)
#: Events whose listeners may take a second argument, the handle (`handles.takes_handle`).
_HANDLE_EVENTS: Final = ("message", "internalMessage")
#: Output chunks / messages held for a type with no listener before reading that source pauses.
HOLD_LIMIT: Final = 256
_READ_SIZE: Final = 64 * 1024
_EXIT_POLL_INTERVAL: Final = 0.02  # seconds, only where pidfd_open is missing
_BASH: Final = shutil.which("bash") or "/bin/bash"
#: Seconds an `error` may wait for its first listener before it counts as unhandled and goes to
#: stderr (Node throws at once; here a listener attached just after fork() returns must not
#: race the reactor). Also reported at exit.
UNHANDLED_ERROR_GRACE: Final = 1.0
#: Unhandled errors of one child written out in full per report; the rest are counted.
UNHANDLED_ERRORS_SHOWN: Final = 3

Listeners = list[tuple[str, Callable[..., Any]]]


def seconds(value: object, what: str) -> float:
    """`value` as a finite number of seconds >= 0.

    :raises InvalidArgumentError: anything else (a bool, a str, a negative number, NaN, inf).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < float("inf")
    ):
        raise InvalidArgumentError(f"{what} must be a number of seconds >= 0, not {value!r}")
    return float(value)


@dataclass
class LaunchSpec:
    """Everything needed to start one child (built by `ipc.api`)."""

    kind: str  # "fork" | "spawn" | "exec"
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] | None = None
    stdin: str = "pipe"  # "pipe" | "inherit" | "ignore"
    stdout: str = "pipe"
    stderr: str = "pipe"
    extra_pipes: list[int] = field(default_factory=list)  # child fds 3, 4, ... as duplex sockets
    transport: TransportSetup | None = None
    #: An argv prefix the child runs through (e.g. ``["setpriv", ..., "--"]``): it must end by
    #: exec'ing the rest of argv, so the pid, the process group and the fds stay the child's.
    wrapper: list[str] = field(default_factory=list)
    serialization: str = "json"
    max_message_size: int = 64 * 1024 * 1024
    listeners: Listeners = field(default_factory=list)  # (event, fn), attached in this order
    # Called with the new ChildProcess before it starts: an owner that must act on the child
    # from its listeners (exec kills on overflow) learns it before any event can fire.
    on_created: Callable[[ChildProcess], None] | None = None
    timeout: float = 0.0  # seconds from spawn to kill_signal; 0 = none
    kill_signal: str | int = "SIGTERM"
    kill_after: float | None = None  # then SIGKILL this much later if it still runs


class ChildProcess:
    """A child process, as Node's `ChildProcess`. Create it with `ipc.fork/spawn/exec`."""

    def __init__(self, spec: LaunchSpec, reactor: Reactor | None = None) -> None:
        self._reactor = reactor or get_reactor()
        self._reactor.ensure_running()
        self.kind = spec.kind
        self.spawnfile = spec.argv[0]
        self.spawnargs = list(spec.argv)
        self.pid: int | None = None
        #: Set once, when the child is reaped: its exit code, or -signum (as `subprocess`).
        self.returncode: int | None = None
        self.killed = False
        #: True once `timeout` expired and `kill_signal` was sent.
        self.timed_out = False
        self.state = State.STARTING
        self.started_at = time.time()
        self.transport = spec.transport.name if spec.transport else None
        #: exec / exec_file children: the `ExecResult` (or `ExecError`) once the child closed.
        self.result: Future[Any] | None = None
        self._emitter = Emitter(
            self._reactor,
            on_drained=self._resume_source,
            on_held=self._error_held,
            report_held=frozenset({"error"}),
            owner=self,
        )
        self._timeout = spec.timeout
        self._kill_signal = spec.kill_signal
        self._kill_after = spec.kill_after
        self._timers: list[TimerHandle] = []
        self._start_error: SpawnError | None = None
        self._start_error_retrieved = False
        self._failure: BaseException | None = None  # a reactor callback of ours raised
        # `error`s held with no listener since the last report (reactor thread appends; the
        # report may run at exit on another thread, hence the lock).
        self._unclaimed: list[BaseException] = []
        self._unclaimed_lock = threading.Lock()
        self._exit_handled = False
        self._exiting = False  # inside `_after_exit`
        self._exited = threading.Event()
        self._closed = threading.Event()
        self._reap_lock = threading.Lock()
        self._popen: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        # stdin (see `write_stdin`): our non-blocking write end, None once closed
        self._stdin_fd: int | None = None
        self._stdin_write_lock = threading.Lock()  # writers, one at a time (callers' threads)
        # Leaf lock over the fields below: held for a few instructions, never across a call
        # that can block, so the reactor may take it (a writer waits with it released).
        self._stdin_state_lock = threading.Lock()
        self._stdin_writing = False  # a writer uses `_stdin_fd`: it closes it when it is done
        self._stdin_ending = False  # end_stdin(): close once the write under way is done
        self._stdin_gone = False  # the child exited (or was given up): a write under way fails
        self._stdin_waker: Waker | None = None  # wakes a writer waiting for room (made then)
        self._fd_write_lock = threading.Lock()  # write_fd() callers, one at a time
        self._outputs: dict[int, str] = {}  # our fd -> its event name
        self._paused: dict[str, int] = {}  # event name -> fd whose reading is paused
        self._extra_socks: dict[int, socket.socket] = {}  # child fd number -> our end
        self._open_streams = 0
        self._port: MessagePort | None = None
        for event, fn in spec.listeners:
            self.on(event, fn)
        if spec.on_created is not None:
            spec.on_created(self)
        _table.add(self)
        self._start(spec)

    # ---- public API -----------------------------------------------------------------------

    def on(self, event: str, fn: Callable[..., Any]) -> ChildProcess:
        """Call `fn` on every `event`. Events fired before the first listener came are held.

        A `message` (or `internalMessage`) listener that names two positional parameters is
        called ``fn(message, handle)``: `handle` is the socket that came with the message, or
        None. One that names one is called ``fn(message)``.
        """
        self._check_event(event)
        if event in _HANDLE_EVENTS:
            fn = message_listener(fn)
        self._emitter.on(event, fn)
        return self

    def once(self, event: str, fn: Callable[..., Any]) -> ChildProcess:
        self._check_event(event)
        if event in _HANDLE_EVENTS:
            fn = message_listener(fn)
        self._emitter.on(event, fn, once=True)
        return self

    def off(self, event: str, fn: Callable[..., Any]) -> ChildProcess:
        self._emitter.off(event, fn)
        return self

    @property
    def connected(self) -> bool:
        return self._port is not None and self._port.connected

    @property
    def queued_bytes(self) -> int:
        """Bytes `send()` accepted that the kernel has not taken yet (0 without a channel):
        what a caller looks at to stop sending to a child that does not read."""
        port = self._port
        return port.queued_bytes if port is not None else 0

    @property
    def exit_code(self) -> int | None:
        """The exit code; None while running or when a signal ended the child."""
        rc = self.returncode
        return rc if rc is not None and rc >= 0 else None

    @property
    def signal_code(self) -> str | None:
        """The name of the signal that ended the child (``"SIGKILL"``, ``"SIGRTMIN+1"``)."""
        rc = self.returncode
        return signal_name(-rc) if rc is not None and rc < 0 else None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(
        self,
        message: Any,
        callback: SendCallback | None = None,
        *,
        handle: socket.socket | None = None,
        keep_open: bool = False,
    ) -> bool:
        """Send `message` over the channel. False past the high-water mark (still queued).

        On a closed channel: `callback(err)` if given, else an `error` event; returns False
        (the error is a `BrokenChannelError` when the child closed it).

        `handle`, a listening or connected stream socket, travels with the message as Node
        passes a ``net.Server`` / ``net.Socket`` (``SCM_RIGHTS``; transports ``socketpair``,
        ``unix``, ``auto``). A connected socket is handed over: it is detached from `handle`
        (which then reads as closed) unless `keep_open`, as in Node.

        :raises SerializationError: `message` cannot be encoded.
        :raises MessageTooLargeError: `message` is over the channel's size limit.
        :raises InvalidArgumentError: `handle` is not a stream socket, or the transport
            cannot carry one.
        """
        if self._port is None:
            error = ChannelClosedError(
                f"this child has no message channel (it was started with {self.kind}(), not fork())"
            )
            if callback is not None:
                self._reactor.call_soon(callback, error)  # the caller's code: not ours
            else:
                self._reactor.call_soon(self._emit_error, error, owner=self)
            return False
        if handle is not None:
            return self._port.send(message, callback, handle=handle, keep_open=keep_open)
        return self._port.send(message, callback)

    def set_channel_tap(self, tap: Callable[[str, bytes], None] | None) -> bool:
        """From now on, call `tap(direction, data)` with the bytes of every read() and write()
        on the parent's end of the channel ("read", "write", "eof"); None turns it off (see
        `ipc.tap`). Returns False when the child has no open channel."""
        return self._port is not None and self._port.set_tap(tap)

    def disconnect(self) -> None:
        """Close the channel (after queued messages are written); emits `disconnect`."""
        if self._port is None or not self._port.connected:
            raise ChannelClosedError("the channel is already closed")
        self._port.disconnect()

    def kill(
        self, sig: str | int = "SIGTERM", *, group: bool = True, kill_after: float | None = None
    ) -> bool:
        """Send `sig` to the child's process group (or to its pid alone with `group=False`).

        `kill_after`: if the child still runs that many seconds later (it ignored or handles
        `sig`), send SIGKILL (as coreutils' ``timeout --kill-after``).

        Returns True when the signal was delivered; False when the child has already been
        reaped (its pid may belong to someone else now) or could not be signalled.

        :raises InvalidArgumentError: unknown signal, or a bad `kill_after`.
        """
        signum = signal_number(sig)
        if kill_after is not None:
            kill_after = seconds(kill_after, "kill_after")
        with self._reap_lock:
            if self.pid is None or self.returncode is not None:
                return False
            try:
                if group:
                    os.killpg(self.pid, signum)
                else:
                    os.kill(self.pid, signum)
            except ProcessLookupError:
                return False
            except OSError as exc:
                error = IPCError(f"kill({signal_name(signum)}) failed: {exc}")
                error.code = errno.errorcode.get(exc.errno or 0, "EPERM")
                self._reactor.call_soon(self._emit_error, error, owner=self)
                return False
        self.killed = True
        if kill_after is not None and signum != signal_module.SIGKILL:
            self._timers.append(
                self._reactor.call_later(kill_after, self._escalate, group, owner=self)
            )
        return True

    def write_stdin(self, data: bytes | str) -> None:
        """Write to the child's stdin, blocking this thread until the kernel took it all.

        Writers from several threads go one after the other. The pipe is non-blocking: while
        it is full this thread waits in `poll` for room, or for the child's exit, which ends
        the wait at once although a grandchild may still hold the pipe without reading. The
        reactor never waits for a writer: at the exit it only marks stdin gone and wakes the
        writer, which closes the pipe on its way out.

        :raises ChannelClosedError: stdin is not a pipe, or `end_stdin()` was called.
        :raises BrokenChannelError: the child closed its stdin or exited (also when that cut
            this write short: part of `data` may have been written).
        """
        view = memoryview(data.encode() if isinstance(data, str) else data).cast("B")
        self._stdin_open_fd()  # (at once, not after the write under way: it may never end)
        with self._stdin_write_lock:
            with self._stdin_state_lock:
                fd = self._stdin_open_fd()
                self._stdin_writing = True
            try:
                while view:
                    if self._stdin_gone:
                        raise BrokenChannelError(
                            "the child exited before it read all of stdin "
                            f"({len(view)} bytes of this write were not written)"
                        )
                    try:
                        view = view[os.write(fd, view) :]
                    except BlockingIOError:
                        self._wait_stdin_room(fd)
                    except BrokenPipeError as exc:
                        raise BrokenChannelError("the child closed its stdin") from exc
            finally:
                with self._stdin_state_lock:
                    self._stdin_writing = False
                    if self._stdin_gone or self._stdin_ending:
                        self._close_stdin_locked()

    def _stdin_open_fd(self) -> int:
        """Our end of stdin, to write to.

        :raises BrokenChannelError: the child has exited.
        :raises ChannelClosedError: stdin is not a pipe, or end_stdin() was called.
        """
        fd = self._stdin_fd
        if self._stdin_gone:
            raise BrokenChannelError("the child has exited: its stdin is closed")
        if fd is None or self._stdin_ending:
            raise ChannelClosedError("stdin is not open (not a pipe, or end_stdin() was called)")
        return fd

    def _wait_stdin_room(self, fd: int) -> None:
        """A writer's wait: until the pipe has room, or `_stdin_gone_now` wakes it."""
        with self._stdin_state_lock:  # (so the reactor sees the waker, or we see "gone")
            if self._stdin_gone:
                return
            waker = self._stdin_waker
            if waker is None:
                waker = self._stdin_waker = Waker()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.register(waker.fileno(), select.POLLIN)
        poller.poll()  # writable, an error (the reader is gone), or woken
        waker.drain()

    def end_stdin(self) -> None:
        """Close the child's stdin so it reads end of file: now, or, while a `write_stdin()`
        is under way in another thread, once that write is done (as Node's ``end()``).
        Never blocks."""
        with self._stdin_state_lock:
            self._stdin_ending = True
            if not self._stdin_writing:
                self._close_stdin_locked()

    def _stdin_gone_now(self) -> None:
        """Reactor thread: the child is gone. Close stdin, or, while a writer uses it, tell
        the writer (it fails its write and closes it): the reactor never waits for one."""
        with self._stdin_state_lock:
            self._stdin_gone = True
            if self._stdin_writing:
                if self._stdin_waker is not None:
                    self._stdin_waker.wake()
            else:
                self._close_stdin_locked()

    def _close_stdin_locked(self) -> None:
        if self._stdin_fd is not None:
            os.close(self._stdin_fd)
            self._stdin_fd = None
        if self._stdin_waker is not None:
            self._stdin_waker.close()
            self._stdin_waker = None

    def write_fd(self, fd: int, data: bytes | str) -> None:
        """Write to the extra stdio pipe that the child sees as `fd` (3, 4, ...); blocks until
        the kernel took all of it.

        The socket stays non-blocking (the reactor reads from it at the same time: switching
        it to blocking mode would switch the reactor's reads too, and switching back could
        race the reactor closing it at the child's end); this thread waits for room instead.

        :raises BrokenChannelError: the child closed its end (or exited) first.
        """
        sock = self._extra_socks.get(fd)
        if sock is None:
            raise InvalidArgumentError(f"the child has no extra pipe at fd {fd}")
        view = memoryview(data.encode() if isinstance(data, str) else data).cast("B")
        with self._fd_write_lock:  # one writer at a time: chunks of two calls never interleave
            while view:
                try:
                    view = view[sock.send(view) :]
                except BlockingIOError:
                    try:  # the socket object, not its number: a closed one is -1, not reused
                        select.select([], [sock], [], 1.0)
                    except (ValueError, OSError) as exc:
                        raise BrokenChannelError(f"the child's fd {fd} is closed") from exc
                except OSError as exc:
                    raise BrokenChannelError(f"the child's fd {fd} is closed: {exc}") from exc

    def abandon_streams(self) -> None:
        """Stop waiting for end of file on stdout, stderr, the extra pipes and the channel:
        close our ends now, so `close` comes once the child has exited.

        For a child that is gone while something out of reach (a grandchild that left the
        process group with `setsid`) still holds its ends open: without this, `close` waits
        for that process. Output it writes afterwards is lost; what was read is kept.
        """
        self._reactor.call_soon(self._abandon_streams, owner=self)

    def _abandon_streams(self) -> None:
        for fd in list(self._outputs):
            self._end_output(fd)
        if self._port is not None:
            self._port.close()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the child exits; return `returncode`.

        :raises SpawnError: the child never started (the `error` event's error).
        :raises ProcessTimeoutError: still running after `timeout` seconds.
        """
        self._check_not_reactor("wait")
        if not self._exited.wait(timeout):
            raise ProcessTimeoutError(f"pid {self.pid} still running after {timeout} s")
        self._raise_start_error()
        rc = self.returncode
        return rc if rc is not None else -1  # -1 only if a callback fault ended our watch

    def wait_closed(self, timeout: float | None = None) -> None:
        """Block until `close` (exit and every stream at end of file).

        :raises SpawnError: the child never started.
        :raises ProcessTimeoutError: not closed after `timeout` seconds.
        """
        self._check_not_reactor("wait_closed")
        if not self._closed.wait(timeout):
            raise ProcessTimeoutError(f"pid {self.pid} not closed after {timeout} s")
        self._raise_start_error()

    def _raise_start_error(self) -> None:
        if self._start_error is not None:
            self._start_error_retrieved = True  # raised to the caller: not unhandled
            raise self._start_error

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """As `subprocess.Popen`: close the child's stdin (and the channel, so a child that
        reads messages until the end finishes too), then wait for it to exit. Nothing is
        killed: `kill()` first (``with`` body, or `timeout=`) to bound the wait."""
        if self._start_error is not None:
            return  # it never ran; the `error` event (or stderr) says why
        self.end_stdin()
        if self.connected:
            try:
                self.disconnect()
            except ChannelClosedError:  # closed meanwhile: nothing left to close
                pass
        self.wait()

    def __repr__(self) -> str:
        return (
            f"<ChildProcess {self.kind} pid={self.pid} state={self.state.value} "
            f"exit_code={self.exit_code} signal={self.signal_code}>"
        )

    # ---- starting -------------------------------------------------------------------------

    @staticmethod
    def _check_event(event: str) -> None:
        if event not in EVENTS and not (event.startswith("fd") and event[2:].isdigit()):
            raise InvalidArgumentError(
                f"unknown event {event!r}; events are {', '.join(sorted(EVENTS))}, fd3, fd4, ..."
            )

    def _check_not_reactor(self, what: str) -> None:
        if self._reactor.in_reactor_thread():
            raise IPCError(f"{what}() would block the reactor thread; call it from another thread")

    def _start(self, spec: LaunchSpec) -> None:
        fds_to_close: list[int] = []  # the child's ends, closed in the parent after the start
        ours: list[tuple[int, str]] = []  # (our read fd, event name)
        stdio: list[int | None] = []
        try:
            for index, mode in enumerate((spec.stdin, spec.stdout, spec.stderr)):
                if mode == "pipe":
                    read_end, write_end = os.pipe()
                    if index == 0:
                        os.set_blocking(write_end, False)  # see write_stdin
                        self._stdin_fd = write_end
                        stdio.append(read_end)
                        fds_to_close.append(read_end)
                    else:
                        ours.append((read_end, "stdout" if index == 1 else "stderr"))
                        stdio.append(write_end)
                        fds_to_close.append(write_end)
                elif mode == "ignore":
                    stdio.append(subprocess.DEVNULL)
                else:
                    stdio.append(None)
            pass_fds: list[int] = []
            argv = list(spec.argv)
            if spec.extra_pipes:
                redirections = []
                for target in spec.extra_pipes:
                    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                    mine.setblocking(False)
                    self._extra_socks[target] = mine
                    ours.append((mine.fileno(), f"fd{target}"))
                    # Above any fd number we map to, so the redirections below cannot collide.
                    high = _dup_high(theirs.fileno())
                    theirs.close()
                    fds_to_close.append(high)
                    pass_fds.append(high)
                    redirections.append(f"{target}<&{high} {high}<&-")
                # Popen can place fds only at 0-2; a bash trampoline moves ours to 3, 4, ...
                # (bash, not sh: dash cannot redirect fds above 9).
                argv = [_BASH, "-c", f'exec "$0" "$@" {" ".join(redirections)}', *argv]
            # Outermost, so the trampoline too runs inside what the wrapper sets up.
            argv = [*spec.wrapper, *argv]
            env = dict(os.environ if spec.env is None else spec.env)
            if spec.transport is not None:
                env.update(spec.transport.child_env)
                pass_fds.extend(spec.transport.child_fds)
            # Popen cannot see a missing program behind a trampoline or wrapper: look first.
            indirect = spec.extra_pipes or spec.wrapper
            if indirect and _find_program(spec.argv[0], env) is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", spec.argv[0])
            self._popen = subprocess.Popen(
                argv,
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                pass_fds=pass_fds,
                cwd=spec.cwd,
                env=env,
                process_group=0,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in fds_to_close:
                os.close(fd)
            for fd, _event in ours:
                if not any(s.fileno() == fd for s in self._extra_socks.values()):
                    os.close(fd)
            for sock in self._extra_socks.values():
                sock.close()
            self._extra_socks.clear()
            if self._stdin_fd is not None:
                os.close(self._stdin_fd)
                self._stdin_fd = None
            if spec.transport is not None:
                spec.transport.close()
            self._fail_to_start(exc, spec)
            return
        for fd in fds_to_close:
            os.close(fd)
        if spec.transport is not None:
            spec.transport.close_child_ends()
        self.pid = self._popen.pid
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:  # kernel before 5.3: fall back to polling waitpid on a timer
            self._pidfd = None
        for fd, event in ours:
            os.set_blocking(fd, False)
            self._outputs[fd] = event
            self._open_streams += 1
        if spec.transport is not None:
            self._open_streams += 1
            self._port = MessagePort(
                self._reactor,
                spec.transport,
                serialization=spec.serialization,
                max_message_size=spec.max_message_size,
                on_message=self._on_message,
                on_error=self._emit_error,
                on_close=self._on_port_closed,
                on_internal=self._on_internal,
            )
        self._reactor.call_soon(self._register, owner=self)

    def _fail_to_start(self, exc: BaseException, spec: LaunchSpec) -> None:
        code = errno.errorcode.get(getattr(exc, "errno", 0) or 0, "ERR_SPAWN")
        path = getattr(exc, "filename", None) or spec.argv[0]
        if isinstance(exc, NotADirectoryError) or (
            spec.cwd is not None and code == "ENOENT" and not os.path.isdir(spec.cwd)
        ):
            message = f"spawn {spec.argv[0]}: cwd {spec.cwd!r} is not a directory"
        else:
            message = f"spawn {path} {code}: {getattr(exc, 'strerror', None) or exc}"
        self._start_error = SpawnError(message, code=code, path=str(path))
        self._reactor.call_soon(self._report_start_error, owner=self)

    def _report_start_error(self) -> None:
        assert self._start_error is not None
        self._change_state(State.FAILED, self._start_error)
        self._closed.set()
        _table.discard(self)
        self._emit("close", None, None)

    def _register(self) -> None:
        """Reactor thread: watch every fd of this child."""
        if self.state is State.STARTING:  # (a shutdown on this thread may have reaped it)
            self._change_state(State.RUNNING)
        # Output before the pidfd: a child that printed and exited before this ran has both
        # ready at once, and epoll reports fds already ready in the order they were added, so
        # its output is read (and emitted) before its exit, as for a child still running.
        for fd in list(self._outputs):
            self._reactor.add_reader(fd, lambda fd=fd: self._on_output(fd))
        if not self._exited.is_set():
            self._watch_exit()
        if self._port is not None:
            self._port.start()
        if self._timeout > 0 and not self._exited.is_set():
            self._timers.append(
                self._reactor.call_later(self._timeout, self._on_timeout, owner=self)
            )

    def _watch_exit(self) -> None:
        if self._pidfd is not None:
            self._reactor.add_reader(self._pidfd, self._on_exit_ready)
        else:
            self._poll_exit()

    # ---- state and events (reactor thread) ------------------------------------------------

    def _change_state(self, new: State, *args: Any) -> None:
        """The one place the state changes; it emits the event of the change (`states.py`)."""
        event = TRANSITIONS[self.state].get(new)
        if event is None:
            raise IPCError(f"pid {self.pid}: no change from state {self.state} to {new}")
        self.state = new
        if new in FINAL_STATES:
            self._exited.set()
        if event == "error":
            self._emit_error(*args)
        else:
            self._emit(event, *args)

    def _emit(self, event: str, *args: Any) -> bool:
        return self._emitter.emit(event, *args)

    def _emit_error(self, error: BaseException) -> None:
        self._emitter.emit("error", error)

    def _error_held(self, event: str, args: tuple[Any, ...]) -> None:
        """An `error` found no listener: if none comes soon, it goes to stderr. One report
        (one timer) per child and grace period, however many errors: a sender that goes on
        after the channel broke makes one per `send()`."""
        with self._unclaimed_lock:
            self._unclaimed.append(args[0])
            first = len(self._unclaimed) == 1
        if first:
            _unhandled.add(self)
            self._reactor.call_later(UNHANDLED_ERROR_GRACE, self._report_unhandled)

    def _report_unhandled(self) -> None:
        """Write the errors that are still held and were not raised by `wait()` to stderr:
        the first few in full, then how many more."""
        with self._unclaimed_lock:
            errors, self._unclaimed = self._unclaimed, []
        _unhandled.discard(self)
        held = self._emitter.held_ids("error")  # one pass over what is held
        unhandled = [
            e
            for e in errors
            if id(e) in held and not (e is self._start_error and self._start_error_retrieved)
        ]
        if not unhandled:
            return
        who = f"pid {self.pid}" if self.pid is not None else f"{self.kind} {self.spawnfile}"
        lines = [
            f"ipc: Unhandled 'error' event ({who}): {type(e).__name__}: {e}"
            for e in unhandled[:UNHANDLED_ERRORS_SHOWN]
        ]
        more = len(unhandled) - UNHANDLED_ERRORS_SHOWN
        if more > 0:
            lines.append(f"ipc: ... and {more} more unhandled 'error' events ({who})")
        try:
            print("\n".join(lines), file=sys.stderr, flush=True)
        except (OSError, ValueError, AttributeError):  # no usable stderr at this point
            pass

    def reactor_callback_failed(self, exc: BaseException) -> None:
        """Reactor thread: one of this child's callbacks raised (a bug in ipc). The child gets
        one `error` event, is killed, reaped and closed; the log gets one line. Nothing else
        is touched: the reactor has already removed the failed fd handler."""
        if self._failure is not None:
            log.debug("pid %s: another callback failed while cleaning up", self.pid, exc_info=exc)
            self._give_up()
            return
        self._failure = exc
        log.error(
            "ipc: handling pid %s (%s) failed with %s: %s; the child is stopped and cleaned up",
            self.pid,
            self.spawnfile,
            type(exc).__name__,
            str(exc).replace("\n", " "),
        )
        log.debug("the traceback of that failure", exc_info=exc)
        error = IPCError(
            f"ipc failed while handling pid {self.pid}: {type(exc).__name__}: {exc}; "
            "the child was stopped"
        )
        error.code = "ERR_IPC_INTERNAL"
        error.__cause__ = exc
        self._emit_error(error)
        self._abandon_streams()
        self._stdin_gone_now()
        if self.returncode is None and self.pid is not None:
            self.kill("SIGKILL")
            self._watch_exit()  # again: it may be the handler the reactor just removed
        elif not self._exiting:  # (while `_after_exit` drains, it goes on to `exit` itself)
            self._after_exit()
            if not self._exited.is_set():  # the exit path itself is what failed
                self._give_up()
        self._maybe_close()

    def _give_up(self) -> None:
        """A second fault: stop watching this child but end its story, so no waiter hangs."""
        if self._pidfd is not None:
            self._reactor.remove_reader(self._pidfd)
        self._exited.set()
        if not self._closed.is_set():
            self._closed.set()
            _table.discard(self)
            self._emit("close", self.exit_code, self.signal_code)

    def _on_internal(self, msg: Any, handle: socket.socket | None = None) -> None:
        if handle is None:
            self._emitter.emit("internalMessage", msg)
        else:
            self._emitter.emit_extra("internalMessage", (msg,), (handle,))

    def _on_message(self, msg: Any, handle: socket.socket | None = None) -> None:
        if handle is None:
            emitted = self._emitter.emit("message", msg)
        else:
            emitted = self._emitter.emit_extra("message", (msg,), (handle,))
        if not emitted and self._emitter.held_count("message") >= HOLD_LIMIT:
            assert self._port is not None
            self._paused["message"] = -1
            self._port.pause_reading()

    def _on_output(self, fd: int) -> None:
        event = self._outputs[fd]
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            # ECONNRESET on an extra socket is its end; EBADF means this fd number was closed
            # under us, so closing it again could close someone else's new fd: only forget it.
            if exc.errno != errno.ECONNRESET:
                log.warning("reading %s of pid %s failed: %s", event, self.pid, exc)
            data = b""
            already_closed = exc.errno == errno.EBADF
        else:
            already_closed = False
        if not data:
            self._end_output(fd, already_closed=already_closed)
            return
        if not self._emit(event, data) and self._emitter.held_count(event) >= HOLD_LIMIT:
            self._paused[event] = fd
            self._reactor.remove_reader(fd)

    def _end_output(self, fd: int, *, already_closed: bool = False) -> None:
        """Stop reading output `fd` and close it (its end of file, or abandoned)."""
        event = self._outputs.pop(fd)
        self._reactor.remove_reader(fd)
        self._paused.pop(event, None)
        sock = self._extra_socks.pop(int(event[2:]), None) if event.startswith("fd") else None
        if already_closed:
            if sock is not None:
                sock.detach()
        elif sock is not None:
            sock.close()
        else:
            os.close(fd)
        self._stream_closed()

    def _resume_source(self, event: str) -> None:
        fd = self._paused.pop(event, None)
        if fd is None:
            return
        if event == "message":
            if self._port is not None:
                self._port.resume_reading()
        elif fd in self._outputs:
            self._reactor.add_reader(fd, lambda fd=fd: self._on_output(fd))

    def _on_port_closed(self) -> None:
        self._emit("disconnect")
        self._stream_closed()

    def _on_timeout(self) -> None:
        if self.returncode is None:
            self.timed_out = True
            self.kill(self._kill_signal, kill_after=self._kill_after)

    def _escalate(self, group: bool) -> None:
        if self.returncode is None:
            self.kill("SIGKILL", group=group)

    def _poll_exit(self) -> None:
        if self._reap():
            self._after_exit()
        elif self.returncode is None:
            self._reactor.call_later(_EXIT_POLL_INTERVAL, self._poll_exit, owner=self)

    def _on_exit_ready(self) -> None:
        if self._reap():
            self._after_exit()

    def _reap(self) -> bool:
        """waitpid the child if it has exited; True when this call reaped it."""
        with self._reap_lock:
            if self.returncode is not None or self.pid is None:
                return False
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0  # someone else reaped it; status unknown
            if pid == 0:
                return False
            # One integer, decoded once (WIFSIGNALED / WTERMSIG / WEXITSTATUS); names are
            # derived from it only to be shown.
            self.returncode = os.waitstatus_to_exitcode(status)
            if self._popen is not None:
                self._popen.returncode = self.returncode  # so Popen never waits or warns
        return True

    def _after_exit(self) -> None:
        """Reactor thread, once reaped: read what the child left, then `exit`."""
        if self._exit_handled:
            return
        self._exit_handled = self._exiting = True
        try:
            self._exit()
        finally:
            self._exiting = False

    def _exit(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._pidfd is not None:
            self._reactor.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._stdin_gone_now()
        # Output, messages and a connection it made, written before it died, are read now:
        # the pidfd may have been found ready before them (or before a connection's first
        # bytes could even be read), and they must come before `exit`.
        self._reactor.run_ready_readers(self)
        if self.state is State.STARTING:  # it ran and ended before the reactor saw it start
            self._change_state(State.RUNNING)
        rc = self.returncode
        assert rc is not None
        self._change_state(
            State.SIGNALED if rc < 0 else State.EXITED, self.exit_code, self.signal_code
        )
        if self._port is not None:
            # A unix/tcp child that never connected will not now. (A connected channel ends
            # when the child's end closes: already, unless a grandchild holds it.)
            self._port.child_exited()
        self._maybe_close()

    def _stream_closed(self) -> None:
        self._open_streams -= 1
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self._closed.is_set() or not self._exited.is_set() or self._open_streams > 0:
            return
        self._closed.set()
        _table.discard(self)
        self._emit("close", self.exit_code, self.signal_code)

    # ---- shutdown support -----------------------------------------------------------------

    def _signal_group(self, signum: int) -> None:
        """Signal the process group even if the leader is gone (its grandchildren may live)."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _dup_high(fd: int, minimum: int = 100) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, minimum)


def _find_program(program: str, env: dict[str, str]) -> str | None:
    if os.sep in program:
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program, path=env.get("PATH", os.defpath))


class _ChildSet:
    """A set of children shared between threads: the children of this process that have not
    closed yet (`children()`, `shutdown()`), and those with `error`s no listener took yet
    (reported at interpreter exit too, not only after `UNHANDLED_ERROR_GRACE`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: set[ChildProcess] = set()

    def add(self, child: ChildProcess) -> None:
        with self._lock:
            self._children.add(child)

    def discard(self, child: ChildProcess) -> None:
        with self._lock:
            self._children.discard(child)

    def snapshot(self) -> list[ChildProcess]:
        """Oldest first."""
        with self._lock:
            return sorted(self._children, key=lambda c: c.started_at)


_table = _ChildSet()
_unhandled = _ChildSet()


def _report_unhandled_at_exit() -> None:
    for child in _unhandled.snapshot():
        child._report_unhandled()


atexit.register(_report_unhandled_at_exit)  # runs after shutdown() (atexit is LIFO)
atexit.register(lambda: shutdown())  # no orphans when the interpreter exits


def _reset_after_fork() -> None:
    """In the child of `os.fork()`: the children started before are the parent's, not ours
    (its atexit `shutdown()` must not kill them), and a lock may have been held mid-fork."""
    global _table, _unhandled
    _table = _ChildSet()
    _unhandled = _ChildSet()


os.register_at_fork(after_in_child=_reset_after_fork)


def children() -> list[ChildProcess]:
    """Every child started by this process that has not emitted `close` yet."""
    return _table.snapshot()


def shutdown(grace: float = 5.0) -> None:
    """Terminate every child and its process group: TERM, then KILL after `grace` seconds.

    First each channel gets what its kernel buffer takes now of the messages still queued
    (without waiting: a child that does not read must not hold this up). Waits for each
    child to be reaped (a few more seconds at most after KILL).
    """
    live = children()
    if not live:
        return
    on_reactor = get_reactor().in_reactor_thread()
    for child in live:
        if child._port is not None:
            try:
                child._port.write_now()
            except Exception:  # at exit, nothing may keep the children from their TERM
                log.debug("writing the queued messages of pid %s failed", child.pid, exc_info=True)
        child._signal_group(signal_module.SIGTERM)
    deadline = time.monotonic() + grace
    for child in live:
        _wait_exited(child, deadline, on_reactor)
    for child in live:
        child._signal_group(signal_module.SIGKILL)
    deadline = time.monotonic() + 5.0
    for child in live:
        _wait_exited(child, deadline, on_reactor)


def _wait_exited(child: ChildProcess, deadline: float, on_reactor: bool) -> None:
    """Wait for `child`'s exit; reap it here when the reactor cannot (its own thread, or gone)."""
    reactor = get_reactor()
    while not child._exited.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if on_reactor or not reactor.running:
            if child._reap():
                if on_reactor:
                    child._after_exit()  # the pidfd will not tell us now: exit (and close) here
                else:
                    child._exited.set()  # no reactor thread left to deliver events
                continue
            if child.returncode is not None:
                # Reaped, and its exit is being handled further up this thread's stack (a
                # listener of its last output called shutdown(), or sys.exit()): it is gone.
                return
            time.sleep(min(0.01, remaining))
        else:
            child._exited.wait(min(remaining, 0.1))
