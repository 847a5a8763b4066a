"""The child side: `from ipc import parent`.

Finds its channel the way Node does — the fd in ``NODE_CHANNEL_FD`` (so a Node parent's
`fork()` of a Python script just works) — or from ``IPC_EXPLORER_CHANNEL`` for the transports
Node does not have (``pipe:R,W``, ``unix:/path``, ``tcp:host:port``; the last two connect and
present ``IPC_EXPLORER_SECRET`` first). The variables are removed from `os.environ` and the fds
made non-inheritable, so a grandchild does not believe it has our channel.

As in Node, a process with a ``message`` listener stays alive while the channel is open: the
listener runs on a non-daemon reader thread that ends when the parent disconnects (or we do).
Without listeners, `messages()` reads in the caller's thread and nothing keeps the process up.

Replies are coalesced the way Redis writes its replies: a `send()` made while handing out a
batch of messages that arrived together (from the `messages()` loop or a `message` listener,
with more of that batch still to come) joins a write-behind buffer, which is written in one
system call when the batch is done, before the next read. A reply to a lone message is written
at once, as before. Each write to the parent's socket costs the child a cross-CPU wake-up of
the parent (~5 µs on a VM, more than the rest of an echo); a burst of requests now costs one
per batch instead of one per reply. The buffer never waits long: a daemon flusher writes it
after ``IPC_COALESCE_US`` (default 1000 µs; 0 turns coalescing off) when the code that sent
does not come back to the loop (a long computation after a progress message), and it is
written at once at 64 KiB, by a `send()` from another thread, by `disconnect()` and at exit.
"""

from __future__ import annotations

import atexit
import os
import queue
import select
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator

from . import wire
from .errors import (
    BrokenChannelError,
    ChannelClosedError,
    InvalidArgumentError,
    IPCError,
    ProtocolError,
)
from .transports import (
    ENV_CHANNEL,
    ENV_MAX_MESSAGE_SIZE,
    ENV_SECRET,
    ENV_SERIALIZATION,
    NODE_CHANNEL_FD,
    NODE_CHANNEL_SERIALIZATION_MODE,
    READ_SIZE,
    connect_from_child,
)

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from typing import Any

_END = object()
#: A write-behind buffer this large is written at once.
COALESCE_MAX = 64 * 1024
ENV_COALESCE = "IPC_COALESCE_US"


def _coalesce_delay_from_env(default_us: float = 1000.0) -> float:
    """``IPC_COALESCE_US`` in seconds; a value that is not a number >= 0 is ignored (an
    environment variable must not make a child fail)."""
    text = os.environ.get(ENV_COALESCE, "")
    try:
        value = float(text) if text else default_us
    except ValueError:
        value = default_us
    return (value if value >= 0 else default_us) / 1e6


class Parent:
    """This process's channel to the parent that forked it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._opened = False  # _open() started (set first, so it runs once)
        self._ready = False  # _open() finished with a channel: the fds below are set
        self._read_fd: int | None = None
        self._write_fd: int | None = None
        self._sock: socket.socket | None = None
        self._serialization = "json"
        self._max_size = wire.DEFAULT_MAX_MESSAGE_SIZE
        self._listeners: dict[str, list[Callable[..., Any]]] = {"message": [], "disconnect": []}
        self._reader: threading.Thread | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake_r, self._wake_w = -1, -1
        self._closed = False
        self._pending: deque[Any] = deque()  # decoded by messages() but not yet yielded
        # messages() loops reading the reader thread's queue: with message listeners and no
        # such loop, nothing is queued (a long-lived child with listeners must not grow).
        self._iterators = 0
        self._shared_decoder: wire.Decoder | None = None
        self._poller: select.poll | None = None
        # Write-behind (see the module docstring). `_batch_thread` is the thread handing out
        # the current batch; `_dispatch_left` how many of the reader thread's batch remain
        # (the messages() loop counts with `_pending`). Guarded by `_write_lock`.
        self.coalesce_delay = _coalesce_delay_from_env()
        self._batch_thread: int | None = None
        self._dispatch_left = 0
        self._corked: list[bytes] = []
        self._corked_bytes = 0
        self._flusher: threading.Thread | None = None
        self._flush_wanted = threading.Event()
        self._flusher_stop = threading.Event()  # the channel closed: the flusher ends
        self._flush_error: BrokenChannelError | None = None  # the flusher's, for the next call

    # ---- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        with self._lock:
            if self._opened:
                return
            self._opened = True
            env = os.environ
            self._serialization = wire.check_serialization(
                env.pop(ENV_SERIALIZATION, None) or env.pop(NODE_CHANNEL_SERIALIZATION_MODE, "json")
            )
            env.pop(NODE_CHANNEL_SERIALIZATION_MODE, None)
            self._max_size = int(env.pop(ENV_MAX_MESSAGE_SIZE, wire.DEFAULT_MAX_MESSAGE_SIZE))
            node_fd, address = env.pop(NODE_CHANNEL_FD, None), env.pop(ENV_CHANNEL, None)
            secret = env.pop(ENV_SECRET, "")
            if node_fd is not None:
                fd = int(node_fd)
                self._sock = socket.socket(fileno=fd)
                self._read_fd = self._write_fd = self._sock.fileno()
            elif address is not None and address.startswith("pipe:"):
                read_fd, write_fd = (int(x) for x in address[len("pipe:") :].split(","))
                self._read_fd, self._write_fd = read_fd, write_fd
            elif address is not None:
                try:
                    self._sock = connect_from_child(address, secret)
                except OSError as exc:
                    self._closed = True  # not "open but unusable": every later call says why
                    raise BrokenChannelError(
                        f"cannot connect to the parent's channel at {address}: {exc}"
                    ) from exc
                except BaseException:
                    self._closed = True
                    raise
                self._read_fd = self._write_fd = self._sock.fileno()
            else:
                self._closed = True
                return
            for fd in {self._read_fd, self._write_fd}:
                os.set_inheritable(fd, False)
                os.set_blocking(fd, True)
            self._wake_r, self._wake_w = os.pipe()
            self._ready = True

    @property
    def connected(self) -> bool:
        self._open()
        return not self._closed

    def _require_channel(self) -> None:
        self._open()
        if self._closed:
            if self._read_fd is None:
                raise ChannelClosedError(
                    "this process has no channel to a parent (it was not started by fork(): "
                    f"neither {NODE_CHANNEL_FD} nor {ENV_CHANNEL} is set)"
                )
            raise ChannelClosedError("the channel to the parent is closed")

    # ---- sending --------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        """Send `message` to the parent.

        Written before this returns (blocking until the kernel took it), except a reply made
        while more of a received batch is waiting to be handed out: that one is written with
        the batch's other replies, within ``coalesce_delay`` seconds (see the module docstring).

        :raises ChannelClosedError: there is no channel or it was closed.
        :raises BrokenChannelError: the parent went away.
        """
        if self._closed or not self._ready:  # checked without the lock: every send passes
            self._require_channel()  # opens the channel (under the lock) or raises
        frame = wire.encode(message, self._serialization, self._max_size)
        with self._write_lock:  # one frame at a time: frames from many threads never interleave
            if self._closed:  # checked again under the lock: the fd may be closed by now
                self._require_channel()
            self._raise_flush_error()
            if self._batch_continues():
                self._corked.append(frame)
                self._corked_bytes += len(frame)
                if self._corked_bytes < COALESCE_MAX:
                    if len(self._corked) == 1:
                        self._arm_flusher()
                    return
                frame = b""
            if self._corked:
                frame = self._take_corked() + frame
            self._write(frame)

    def flush(self) -> None:
        """Write replies still held in the write-behind buffer now.

        :raises BrokenChannelError: the parent went away.
        """
        with self._write_lock:
            self._raise_flush_error()
            if self._corked and not self._closed:
                self._write(self._take_corked())

    def _batch_continues(self) -> bool:
        """This thread is handing out a batch and more of it waits. Holds `_write_lock`."""
        return (
            self.coalesce_delay > 0
            and self._batch_thread == threading.get_ident()
            and (self._dispatch_left > 0 or len(self._pending) > 0)
        )

    def _take_corked(self) -> bytes:
        data = b"".join(self._corked)
        self._corked.clear()
        self._corked_bytes = 0
        return data

    def _write(self, data: bytes) -> None:
        """Write all of `data` (the fd is blocking). Holds `_write_lock`."""
        fd = self._write_fd
        assert fd is not None
        try:
            sent = os.write(fd, data)  # all of it, nearly always
            if sent < len(data):
                view = memoryview(data)[sent:]
                while view:
                    view = view[os.write(fd, view) :]
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BrokenChannelError("the parent closed the channel") from exc
        except OSError as exc:
            if self._closed:  # disconnect() closed the fd under this send
                raise ChannelClosedError("the channel to the parent is closed") from exc
            raise

    def _raise_flush_error(self) -> None:
        if self._flush_error is not None:
            error, self._flush_error = self._flush_error, None
            raise error

    def _arm_flusher(self) -> None:
        """The buffer just got its first reply: make sure it is written in time."""
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="ipc-parent-flusher", daemon=True
            )
            self._flusher.start()
            atexit.register(self._flush_at_exit)
        self._flush_wanted.set()

    def _flush_loop(self) -> None:
        """Daemon: writes a buffer its sender left behind, `coalesce_delay` after it began.

        Usually the loop that made the replies has written them already, and this finds
        nothing to do. It wakes once per buffer, not once per reply.
        """
        while True:
            self._flush_wanted.wait()
            self._flush_wanted.clear()
            if self._flusher_stop.wait(self.coalesce_delay):
                break
            self._flush_quietly()

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except IPCError:
            pass  # the parent is gone: nobody is left to read the replies

    def _flush_quietly(self) -> None:
        """Write held replies (before a read, or from the flusher); a parent that has gone is
        found by the read that follows, and the error is kept for the next send."""
        if not self._corked:
            return
        with self._write_lock:
            if self._corked and not self._closed:
                self._write_or_keep_error()

    def _write_or_keep_error(self) -> None:
        """Write the buffer; a failure is raised by the next `send()`. Holds `_write_lock`."""
        try:
            self._write(self._take_corked())
        except (IPCError, OSError) as exc:
            self._flush_error = BrokenChannelError(f"a reply could not be sent: {exc}")

    # ---- receiving ------------------------------------------------------------------------

    def on(self, event: str, fn: Callable[..., Any]) -> Parent:
        """`message(msg)` or `disconnect()`. A message listener keeps this process alive while
        the channel is open."""
        if event not in self._listeners:
            raise InvalidArgumentError(f"unknown event {event!r}; use 'message' or 'disconnect'")
        self._require_channel()
        with self._lock:
            self._listeners[event].append(fn)
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read_loop, name="ipc-parent-reader", daemon=False
                )
                self._reader.start()
        return self

    def off(self, event: str, fn: Callable[..., Any]) -> Parent:
        with self._lock:
            if fn in self._listeners.get(event, []):
                self._listeners[event].remove(fn)
        return self

    def messages(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield messages until the parent disconnects (or `timeout` seconds pass idle).

        Without `message` listeners it yields every message, from the first. Alongside
        listeners it yields those that arrive while it iterates (listeners get every one).
        """
        self._require_channel()
        if self._reader is None:
            yield from self._read_inline(timeout)
            return
        with self._lock:
            self._iterators += 1
        try:
            while True:
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    return
                if item is _END:
                    self._queue.put(_END)
                    return
                yield item
        finally:
            with self._lock:
                self._iterators -= 1

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; raises `ChannelClosedError` at the end, `TimeoutError` on time."""
        for msg in self.messages(timeout):
            return msg
        if self._closed:
            raise ChannelClosedError("the parent disconnected")
        raise TimeoutError(f"no message from the parent within {timeout} s")

    def _read_inline(self, timeout: float | None) -> Iterator[Any]:
        decoder = self._decoder()
        pending = self._pending
        while not self._closed:
            while pending:  # popped one at a time: a caller may stop between two
                self._batch_thread = threading.get_ident()  # replies to this batch coalesce
                yield pending.popleft()
            self._flush_quietly()  # the batch is handed out: its replies go before we wait
            data = self._read_chunk(timeout)
            if data is None:
                return
            if not data:
                self._close_channel()
                return
            try:
                self._pending.extend(decoder.feed(data))
            except ProtocolError as exc:
                self._pending.extend(exc.messages)
                self._close_channel()
                yield from self._pending
                raise

    def _decoder(self) -> wire.Decoder:
        if self._shared_decoder is None:
            self._shared_decoder = wire.Decoder(self._serialization, self._max_size)
        return self._shared_decoder

    def _read_chunk(self, timeout: float | None) -> bytes | None:
        """Bytes from the channel; b"" at its end; None on timeout."""
        assert self._read_fd is not None
        if timeout is None and self._sock is not None:
            # One syscall per message: disconnect() wakes this read with shutdown().
            try:
                return os.read(self._read_fd, READ_SIZE)
            except OSError:
                return b""
        if self._poller is None:  # made once: this is on every message's path
            self._poller = select.poll()
            self._poller.register(self._read_fd, select.POLLIN)
            self._poller.register(self._wake_r, select.POLLIN)
        ready = self._poller.poll(None if timeout is None else timeout * 1000)
        if not ready:
            return None
        if any(fd == self._wake_r for fd, _ in ready):
            return b""
        try:
            return os.read(self._read_fd, READ_SIZE)
        except (ConnectionResetError, OSError):
            return b""

    def _read_loop(self) -> None:
        decoder = self._decoder()
        try:
            while not self._closed:
                data = self._read_chunk(None)
                if not data:
                    break
                error: IPCError | None = None
                try:
                    messages = decoder.feed(data)
                except ProtocolError as exc:
                    messages, error = exc.messages, exc
                if messages:
                    # One snapshot per read, not per message: a listener added meanwhile
                    # starts with the next read's messages (all of which it then sees).
                    with self._lock:
                        listeners = tuple(self._listeners["message"])
                        keep = not listeners or self._iterators > 0
                    self._batch_thread = threading.get_ident()  # listeners' replies coalesce
                    left = len(messages)
                    for msg in messages:
                        left -= 1
                        self._dispatch_left = left
                        if keep:  # for messages(); held until one reads them if none listens
                            self._queue.put(msg)
                        for fn in listeners:
                            fn(msg)
                    self._flush_quietly()
                if error is not None:
                    import sys

                    print(
                        f"ipc: bad frame from the parent, channel closed: {error}", file=sys.stderr
                    )
                    break
        finally:
            self._close_channel()

    # ---- closing --------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Close the channel (after any held replies); the parent sees `disconnect`, and this
        process may end."""
        self._require_channel()
        self._flush_quietly()
        if self._reader is not None and threading.current_thread() is not self._reader:
            os.write(self._wake_w, b"\0")  # the reader closes the channel on its way out
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_RDWR)
            self._reader.join()
        else:
            self._close_channel()

    def _close_channel(self) -> None:
        # Under the write lock: held replies go first, and no write (the flusher's, another
        # thread's send) is under way when the fd closes, so none can hit a reused fd number.
        with self._write_lock:
            if self._corked and not self._closed:
                self._write_or_keep_error()
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                if self._sock is not None:
                    self._sock.close()
                else:
                    for fd in {self._read_fd, self._write_fd}:
                        if fd is not None:
                            os.close(fd)
                listeners = list(self._listeners["disconnect"])
        if self._flusher is not None:
            self._flusher_stop.set()
            self._flush_wanted.set()
            atexit.unregister(self._flush_at_exit)
        self._queue.put(_END)
        for fn in listeners:
            fn()


parent = Parent()
