"""The child side: `from ipc import parent`.

Finds its channel the way Node does — the fd in ``NODE_CHANNEL_FD`` (so a Node parent's
`fork()` of a Python script just works) — or from ``IPC_EXPLORER_CHANNEL`` for the transports
Node does not have (``pipe:R,W``, ``unix:/path``, ``tcp:host:port``; the last two connect and
present ``IPC_EXPLORER_SECRET`` first). The variables are removed from `os.environ` and the fds
made non-inheritable, so a grandchild does not believe it has our channel.

`Parent` is a `connection.Connection`, the class the parent's end uses too: the same queue,
framing, handle protocol and states. What is the child's own is how bytes move:

* Reading. Without listeners, `messages()` reads in the caller's thread (one blocking read per
  batch, no thread hand-off). With listeners a daemon reader thread reads and calls them.
* Staying alive, as Node's channel is ref'd: while a ``message`` or ``disconnect`` listener is
  attached and the channel is open, a non-daemon keep-alive thread holds the process; when the
  last one is removed (or the channel closes) the process can end once its main code is done,
  as a Node child does (jest-worker's children end that way). `unref()` / `ref()` override it.
* Writing never blocks: `send()` writes what the kernel takes now and queues the rest for a
  daemon writer thread; it returns False past the high-water mark, as Node's `process.send`.
  Queued messages are written before the process exits (`atexit`), on `flush()` and on
  `disconnect()`.
* Listener failures are not lost on a thread: ``sys.exit(n)`` in a listener (or in a send
  callback) ends the process with status n, as Node's ``process.exit(n)``, and any other
  exception prints its traceback and ends it with status 1, as Node's uncaught exception
  does. Queued messages are written and `atexit` handlers run first.

Replies are coalesced the way Redis writes its replies: a `send()` made while handing out a
batch of messages that arrived together (from the `messages()` loop or a `message` listener,
with more of that batch still to come) joins a write-behind buffer, which is written in one
system call when the batch is done, before the next read. A reply to a lone message is written
at once. Each write to the parent's socket costs the child a cross-CPU wake-up of the parent
(~5 µs on a VM, more than the rest of an echo); a burst of requests now costs one per batch
instead of one per reply. The buffer never waits long: the writer thread writes it after
``IPC_COALESCE_US`` (default 1000 µs; 0 turns coalescing off) when the code that sent does not
come back to the loop (a long computation after a progress message), and it is written at once
at 64 KiB, by a `send()` from another thread or with a callback, by `flush()`, `disconnect()`
and at exit.
"""

from __future__ import annotations

import atexit
import os
import queue
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from . import wire
from .connection import Connection, HandleMessage
from .errors import (
    BrokenChannelError,
    ChannelClosedError,
    InvalidArgumentError,
    IPCError,
    ProtocolError,
)
from .fatal import exit_process
from .handles import message_listener
from .transports import (
    ENV_CHANNEL,
    ENV_MAX_MESSAGE_SIZE,
    ENV_SECRET,
    ENV_SERIALIZATION,
    NODE_CHANNEL_FD,
    NODE_CHANNEL_SERIALIZATION_MODE,
    Channel,
    connect_from_child,
)
from .waker import Waker

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from typing import Any

    from .connection import SendCallback

_END = object()
#: A write-behind buffer this large is written at once.
COALESCE_MAX = 64 * 1024
ENV_COALESCE = "IPC_COALESCE_US"
#: Events of `parent.on()`; the first two keep the process alive (Node refs the channel).
EVENTS = ("message", "disconnect", "internalMessage", "error")
_REF_EVENTS = ("message", "disconnect")


def _coalesce_delay_from_env(default_us: float = 1000.0) -> float:
    """``IPC_COALESCE_US`` in seconds; a value that is not a number >= 0 is ignored (an
    environment variable must not make a child fail)."""
    text = os.environ.get(ENV_COALESCE, "")
    try:
        value = float(text) if text else default_us
    except ValueError:
        value = default_us
    return (value if value >= 0 else default_us) / 1e6


class Parent(Connection):
    """This process's channel to the parent that forked it."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners_lock = threading.RLock()  # opening, listeners, keep-alive
        self._opened = False  # _open() started (set first, so it runs once)
        self._ready = False  # _open() finished with a channel
        self._no_channel = False  # not started by fork(): nothing to open
        self._listeners: dict[str, list[Callable[..., Any]]] = {e: [] for e in EVENTS}
        self._reader: threading.Thread | None = None
        self._read_lock = threading.Lock()  # one reader at a time; close() waits for it
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[Any] = deque()  # decoded by messages() but not yet yielded
        self._pending_mixed = False  # _pending may hold more than plain messages
        # messages() loops reading the reader thread's inbox: with message listeners and no
        # such loop, nothing is kept (a long-lived child with listeners must not grow).
        self._iterators = 0
        self._dispatching = False  # the reader is calling listeners
        # Held by whoever calls message listeners (the reader, per batch; `on()`, replaying
        # what came before the first listener), so they see one order.
        self._dispatch_lock = threading.RLock()
        self._progress = threading.Condition(self._lock)  # a handle's answer, or the close
        # keep-alive (Node's ref/unref of the channel)
        self._keeper: threading.Event | None = None
        self._ref_explicit: bool | None = None
        self._ref_deferred = False  # a release waits for the reader's batch to end
        # Write-behind (see the module docstring). `_batch_thread` is the thread handing out
        # the current batch; `_dispatch_left` how many of the reader thread's batch remain
        # (the messages() loop counts with `_pending`). Guarded by `_lock`.
        self.coalesce_delay = _coalesce_delay_from_env()
        self._batch_thread: int | None = None
        self._dispatch_left = 0
        self._corked: list[bytes] = []
        self._corked_bytes = 0
        self._cork_deadline: float | None = None
        # the writer thread: written-behind replies, queued bytes, send callbacks
        self._writer: threading.Thread | None = None
        self._writer_stop = False
        self._waker: Waker | None = None  # wakes the writer thread (made with the channel)
        # Leaf lock: the callbacks queue, the writer's start and its end (the writer closes
        # the waker when it ends; `Waker` itself keeps a late wake() off a reused fd number).
        self._callbacks_lock = threading.Lock()
        self._callbacks: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._writer_done = False
        self._writer_idle = False  # waiting with no deadline: only a signal wakes it

    # ---- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        with self._listeners_lock:
            if self._opened:
                return
            self._opened = True
            env = os.environ
            serialization = wire.check_serialization(
                env.pop(ENV_SERIALIZATION, None) or env.pop(NODE_CHANNEL_SERIALIZATION_MODE, "json")
            )
            env.pop(NODE_CHANNEL_SERIALIZATION_MODE, None)
            max_size = int(env.pop(ENV_MAX_MESSAGE_SIZE, wire.DEFAULT_MAX_MESSAGE_SIZE))
            node_fd, address = env.pop(NODE_CHANNEL_FD, None), env.pop(ENV_CHANNEL, None)
            secret = env.pop(ENV_SECRET, "")
            if node_fd is not None:
                sock = socket.socket(fileno=int(node_fd))
                channel = Channel(sock.fileno(), sock.fileno(), sock=sock, blocking_reads=True)
            elif address is not None and address.startswith("pipe:"):
                read_fd, write_fd = (int(x) for x in address[len("pipe:") :].split(","))
                channel = Channel(read_fd, write_fd, blocking_reads=True)
            elif address is not None:
                try:
                    sock = connect_from_child(address, secret)
                except OSError as exc:
                    self.closed = True  # not "open but unusable": every later call says why
                    raise BrokenChannelError(
                        f"cannot connect to the parent's channel at {address}: {exc}"
                    ) from exc
                except BaseException:
                    self.closed = True
                    raise
                channel = Channel(sock.fileno(), sock.fileno(), sock=sock, blocking_reads=True)
            else:
                self.closed = self._no_channel = True
                return
            for fd in {channel.fileno(), channel.write_fileno()}:
                os.set_inheritable(fd, False)
            self.serialization = serialization
            self.max_message_size = max_size
            self._decoder = wire.Decoder(serialization, max_size)
            self._waker = Waker()
            self._channel = channel
            atexit.register(self._flush_at_exit)
            self._ready = True

    @property
    def connected(self) -> bool:
        self._open()
        return not self.closed and not self._closing

    def _require_channel(self) -> None:
        self._open()
        if self.closed or self._closing:
            if self._no_channel:
                raise ChannelClosedError(
                    "this process has no channel to a parent (it was not started by fork(): "
                    f"neither {NODE_CHANNEL_FD} nor {ENV_CHANNEL} is set)"
                )
            with self._lock:
                raise self._refusal_locked()

    # ---- sending --------------------------------------------------------------------------

    def _unattached(self) -> None:
        self._require_channel()  # opens the channel (under the lock) or says why there is none

    def _refuse(self, error: IPCError, callback: SendCallback | None) -> bool:
        if callback is None:
            raise error
        self._call_soon(callback, error)
        return False

    def _cork_locked(self, frame: bytes, callback: SendCallback | None) -> bytes | None:
        """Hold `frame` back while its batch continues (None); else what to write now: the
        replies held so far, then `frame`, in one write. A batch continues when this thread is
        handing one out and more of it waits (tested cheapest first: this is every send's
        path)."""
        if (
            (self._dispatch_left > 0 or self._pending)
            and callback is None
            and self.coalesce_delay > 0
            and self._batch_thread == threading.get_ident()
        ):
            self._corked.append(frame)
            self._corked_bytes += len(frame)
            if self._corked_bytes < COALESCE_MAX:
                if len(self._corked) == 1:
                    self._arm_flusher()
                return None
            frame = b""
        if self._corked:
            frame = self._take_corked() + frame
        return frame

    def _flush_corked_locked(self) -> None:
        if self._corked:
            self._enqueue_locked(self._take_corked(), None)

    def _take_corked(self) -> bytes:
        data = b"".join(self._corked)
        self._corked.clear()
        self._corked_bytes = 0
        self._cork_deadline = None
        return data

    def _arm_flusher(self) -> None:
        """The buffer just got its first reply: the writer writes it in time if the loop
        does not."""
        self._cork_deadline = time.monotonic() + self.coalesce_delay
        if self._writer_idle or self._writer is None:
            # (a writer already waiting for an earlier deadline sees this one when it wakes:
            # one wake-up per `coalesce_delay` at most, not one per batch)
            self._signal_writer()

    def flush(self) -> None:
        """Write everything held back or queued now, waiting until the kernel took it.

        :raises BrokenChannelError: the parent went away.
        """
        self._require_channel()
        self._drain()
        with self._lock:
            if isinstance(self._refusal, BrokenChannelError):
                raise self._refusal_locked()

    def _flush_quietly(self) -> None:
        """Write held replies (before a read, or from the writer); a parent that has gone is
        reported by the read that follows, or the next send."""
        if not self._corked:
            return
        with self._lock:
            if self._corked and not self.closed:
                self._enqueue_locked(self._take_corked(), None)

    def _drain(self, wait_answer: bool = True) -> None:
        """Write the queue in this thread, waiting for room; with `wait_answer`, also wait for
        the answer to a handle in flight (the messages after it wait for that)."""
        while True:
            with self._lock:
                channel = self._channel
                if self.closed or channel is None or self._refusal is not None:
                    return
                self._flush_corked_locked()
                if self._queue:
                    self._write_locked()
                if not self._queue:
                    if self._unacked is None or not wait_answer:
                        return
                    if self._reader is None:
                        self._start_reader_locked()  # someone must read the ACK
                    self._progress.wait()
                    continue
            channel.wait_writable(None)

    def _flush_at_exit(self) -> None:
        try:  # (the reader thread, exiting for a listener, cannot wait for an answer it reads)
            self._drain(wait_answer=threading.current_thread() is not self._reader)
        except IPCError:
            pass  # the parent is gone: nobody is left to read the replies

    # ---- the writer thread ----------------------------------------------------------------

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the writer thread (send callbacks, closing after a failure); in
        this thread once the writer has ended (the channel is closed: we hold no lock)."""
        with self._callbacks_lock:
            if not self._writer_done:
                self._callbacks.append((fn, args))
                fn = None  # type: ignore[assignment]
        if fn is None:
            self._signal_writer()
        else:
            fn(*args)

    def _writer_changed(self) -> None:
        self._signal_writer()

    def _signal_writer(self) -> None:
        """Wake the writer (started on first use). Often called under `_lock`, so only the
        leaf `_callbacks_lock` is taken here."""
        waker = self._waker
        if waker is None:
            return  # no channel
        if waker.pending and self._writer is not None:
            return  # a wake-up is on its way already
        with self._callbacks_lock:
            if self._writer is None:
                if self._writer_stop or waker.closed:
                    return
                self._writer = threading.Thread(
                    target=self._writer_loop, name="ipc-parent-writer", daemon=True
                )
                self._writer.start()
        waker.wake()  # (a no-op once the writer has ended and closed it)

    def _writer_loop(self) -> None:
        """Daemon: writes what the kernel did not take at once, the write-behind buffer
        `coalesce_delay` after it began, and runs send callbacks. It wakes once per buffer,
        not once per reply; usually the loop that made the replies has written them already."""
        waker = self._waker
        assert waker is not None
        wake_fd = waker.fileno()
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        watched = -1
        try:
            while True:
                with self._lock:
                    if self._writer_stop:
                        break
                    channel = self._channel
                    want = -1
                    if self._writer_wanted and channel is not None and not channel.closed:
                        want = channel.write_fileno()
                    deadline = self._cork_deadline
                    # Idle: nothing timed and nothing to write, so only a signal wakes it.
                    # Set under `_lock`, as `_arm_flusher` reads it: an armed buffer is seen.
                    self._writer_idle = deadline is None and want < 0
                if want != watched:
                    if watched >= 0:
                        poller.unregister(watched)
                    if want >= 0:
                        poller.register(want, select.POLLOUT)
                    watched = want
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = poller.poll(None if timeout is None else timeout * 1000)
                self._writer_idle = False
                if any(fd == wake_fd for fd, _ in ready):
                    waker.drain()  # before the callbacks are looked at (see `Waker`)
                while self._callbacks:
                    fn, args = self._callbacks.popleft()
                    fn(*args)
                if watched >= 0 and any(fd == watched for fd, _ in ready):
                    self._on_writable()
                deadline = self._cork_deadline
                if deadline is not None and time.monotonic() >= deadline:
                    self._flush_quietly()
            with self._callbacks_lock:  # from now on _call_soon runs callbacks itself
                self._writer_done = True
                left = list(self._callbacks)
                self._callbacks.clear()
                self._close_waker_locked()
            for fn, args in left:
                fn(*args)
        except BaseException as exc:
            self._die(exc)

    def _close_waker_locked(self) -> None:
        if self._waker is not None:
            self._waker.close()

    # ---- receiving ------------------------------------------------------------------------

    def on(self, event: str, fn: Callable[..., Any]) -> Parent:
        """`message(msg)` (or `message(msg, handle)`: a listener naming two positional
        parameters also gets the socket that came with a message, or None),
        `internalMessage(msg)` (Node's ``{"cmd": "NODE_..."}`` messages we do not consume),
        `error(exc)` (a bad frame, a handle we could not take, unsent messages; without an
        `error` listener these are printed on stderr) and `disconnect()`. A `message` or
        `disconnect` listener keeps this process alive while the channel is open (as Node)."""
        if event not in self._listeners:
            raise InvalidArgumentError(
                f"unknown event {event!r}; use {', '.join(map(repr, EVENTS))}"
            )
        if not callable(fn):
            raise InvalidArgumentError(f"listener for {event!r} must be callable, not {fn!r}")
        self._require_channel()
        if event in ("message", "internalMessage"):
            fn = message_listener(fn)
        with self._dispatch_lock:
            with self._listeners_lock:
                self._listeners[event].append(fn)
                if self._reader is None and event in _REF_EVENTS:
                    with self._lock:
                        self._start_reader_locked()
            if event == "message" and len(self._listeners[event]) == 1:
                self._replay_held()
        self._update_ref()
        return self

    def _replay_held(self) -> None:
        """The first `message` listener gets what the reader kept while nobody listened (as
        Node's pending messages), before anything newer: here, in the calling thread, under
        the lock the reader dispatches under."""
        if self._iterators:
            return  # a messages() loop takes them
        held: list[Any] = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self._inbox.put(_END)
                break
            held.append(item)
        if held:
            self._dispatch(held, True)

    def off(self, event: str, fn: Callable[..., Any]) -> Parent:
        """Remove a listener. With the last `message` and `disconnect` listener gone, nothing
        keeps this process alive (Node unrefs its channel)."""
        with self._listeners_lock:
            listeners = self._listeners.get(event, [])
            for index, candidate in enumerate(listeners):
                if candidate == fn:
                    del listeners[index]
                    break
        self._update_ref()
        return self

    def ref(self) -> None:
        """Keep this process alive while the channel is open, listeners or not (Node's
        ``process.channel.ref()``)."""
        self._ref_explicit = True
        self._update_ref()

    def unref(self) -> None:
        """Let this process end when its main code is done, even with listeners (Node's
        ``process.channel.unref()``)."""
        self._ref_explicit = False
        self._update_ref()

    def _update_ref(self) -> None:
        with self._listeners_lock:
            if self._ref_explicit is not None:
                want = self._ref_explicit
            else:
                want = any(self._listeners[event] for event in _REF_EVENTS)
            want = want and self._ready and not self.closed
            if want and self._keeper is None:
                keeper = self._keeper = threading.Event()
                threading.Thread(target=keeper.wait, name="ipc-parent-keepalive").start()
                with self._lock:
                    self._start_reader_locked()  # someone must see the channel end
            elif not want and self._keeper is not None:
                if self._dispatching:
                    # While the reader calls listeners the process stays: the one that removed
                    # itself may still be sending. The reader calls us again after the batch.
                    self._ref_deferred = True
                    return
                self._keeper.set()
                self._keeper = None

    def _expect_answer_locked(self) -> None:
        """A handle went out: its ACK must be read even if nobody listens or iterates (Node
        always reads), or the sends after it wait for ever."""
        self._start_reader_locked()

    def _start_reader_locked(self) -> None:
        if self._reader is None and self._ready and not self.closed:
            self._reader = threading.Thread(
                target=self._read_loop, name="ipc-parent-reader", daemon=True
            )
            self._reader.start()

    def messages(self, timeout: float | None = None, *, handles: bool = False) -> Iterator[Any]:
        """Yield messages until the parent disconnects (or `timeout` seconds pass idle).

        Without `message` listeners it yields every message, from the first. Alongside
        listeners it yields those that arrive while it iterates (listeners get every one).
        With `handles=True` it yields ``(message, handle)`` pairs (`handle` None for a message
        that came without one); otherwise a handle that comes is closed, with a note on stderr.
        """
        self._require_channel()
        if self._reader is None:
            yield from self._read_inline(timeout, handles)  # moves to the inbox if need be
        else:
            yield from self._from_inbox(timeout, handles)

    def _from_inbox(self, timeout: float | None, handles: bool) -> Iterator[Any]:
        """What the reader thread hands out, when there is one."""
        with self._listeners_lock:
            self._iterators += 1
        try:
            while True:
                try:
                    item = self._inbox.get(timeout=timeout)
                except queue.Empty:
                    return
                if item is _END:
                    self._inbox.put(_END)
                    return
                yield self._as_yielded(item, handles)
        finally:
            with self._listeners_lock:
                self._iterators -= 1

    @staticmethod
    def _as_yielded(item: Any, handles: bool) -> Any:
        if type(item) is HandleMessage:
            if handles:
                return item.message, item.handle
            item.handle.close()
            print(
                "ipc: a handle came with a message, and messages() was not asked for "
                "handles (messages(handles=True)); it was closed",
                file=sys.stderr,
            )
            return item.message
        return (item, None) if handles else item

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; raises `ChannelClosedError` at the end, `TimeoutError` on time."""
        for msg in self.messages(timeout):
            return msg
        if self.closed:
            raise ChannelClosedError("the parent disconnected")
        raise TimeoutError(f"no message from the parent within {timeout} s")

    def _read_inline(self, timeout: float | None, handles: bool) -> Iterator[Any]:
        """messages() without a reader thread: reads in the caller's thread. Every message
        passes here, so the common case (a socket, no timeout, plain messages) is spelled out
        with locals rather than through `_read_chunk` and `_receive`."""
        pending = self._pending
        get_ident = threading.get_ident
        channel = self._channel
        assert channel is not None
        decoder = self._decoder
        read_lock = self._read_lock
        blocking_read = timeout is None and channel.is_socket
        while True:
            mixed = self._pending_mixed
            while pending:  # popped one at a time: a caller may stop between two
                entry = pending.popleft()
                self._batch_thread = get_ident()  # replies to this batch coalesce
                if mixed and not self._is_plain(entry):
                    if type(entry) is HandleMessage and not entry.internal:
                        yield self._as_yielded(entry, handles)
                    else:
                        self._deliver_special(entry)
                    continue
                yield (entry, None) if handles else entry
            self._pending_mixed = False
            if self._corked:
                self._flush_quietly()  # the batch is handed out: its replies go before we wait
            if self.closed:
                return
            if self._reader is not None:  # a listener (or a handle's answer) started one
                yield from self._from_inbox(timeout, handles)
                return
            if blocking_read:
                with read_lock:  # one blocking read; interrupt() wakes it
                    data = b"" if channel.closed or channel.interrupted else channel.recv_bytes()
            else:
                data = self._read_chunk(timeout)
            if data is None:
                return
            if not data:
                self._at_end()
                return
            try:
                if channel.received_fds or self._frame_fd >= 0:  # fds came, or one is held
                    entries = self._receive_with_fds(data, *channel.take_fds())  # (rare)
                    self._pending_mixed = self._mixed
                else:
                    try:
                        entries = decoder.feed(data)
                    except ProtocolError as exc:  # (as `_receive`: what came before, sorted)
                        exc.messages = self._sort(exc.messages)
                        raise
                    if decoder.specials:
                        entries = self._sort(entries)
                        self._pending_mixed = self._mixed
            except ProtocolError as exc:  # the framing is lost: what came before, then close
                entries = [*exc.messages, exc]
                self._pending_mixed = True
                self.close(exc)
            pending.extend(entries)

    @staticmethod
    def _is_plain(entry: Any) -> bool:
        return not (
            type(entry) is HandleMessage
            or type(entry) is wire.Internal
            or isinstance(entry, IPCError)
        )

    def _read_chunk(self, timeout: float | None) -> bytes | None:
        """Bytes from the channel; b"" at its end (or once closing); None on timeout."""
        channel = self._channel
        assert channel is not None
        with self._read_lock:
            if channel.closed or channel.interrupted:
                return b""
            if timeout is None and channel.is_socket:
                return channel.recv_bytes()  # one blocking read; interrupt() wakes it
            if not channel.wait_readable(timeout):
                return None
            if channel.interrupted:
                return b""
            return channel.recv_bytes()

    def _read_loop(self) -> None:
        try:
            while True:
                data = self._read_chunk(None)
                if not data:
                    self._at_end()
                    return
                fatal: ProtocolError | None = None
                try:
                    entries = self._receive(data)
                except ProtocolError as exc:
                    entries, fatal = exc.messages, exc
                    self._mixed = True
                self._dispatch(entries, self._mixed)
                if fatal is not None:
                    self._emit_error(fatal)
                    self.close(fatal)
                    return
                if self.closed:
                    return
        except BaseException as exc:
            self._die(exc)

    def _dispatch(self, entries: list[Any], mixed: bool) -> None:
        """One batch to the listeners (and to messages() loops): the reader thread's."""
        with self._dispatch_lock:
            self._dispatch_locked(entries, mixed)
        self._flush_quietly()
        if self._ref_deferred:
            self._ref_deferred = False
            self._update_ref()

    def _dispatch_locked(self, entries: list[Any], mixed: bool) -> None:
        with self._listeners_lock:
            # One snapshot per read, not per message: a listener added meanwhile starts with
            # the next read's messages (all of which it then sees).
            listeners = tuple(self._listeners["message"])
            keep = not listeners or self._iterators > 0
        self._batch_thread = threading.get_ident()  # listeners' replies coalesce
        self._dispatching = True
        try:
            left = len(entries)
            for entry in entries:
                left -= 1
                self._dispatch_left = left
                if mixed and not self._is_plain(entry):
                    if type(entry) is HandleMessage and not entry.internal:
                        if keep:
                            self._inbox.put(entry)
                        self._call_with_handle(listeners, entry.message, entry.handle, keep)
                    else:
                        self._deliver_special(entry)
                    continue
                if keep:  # for messages(); held until one reads them if none listens
                    self._inbox.put(entry)
                for fn in listeners:
                    fn(entry)
        finally:
            self._dispatching = False

    def _deliver_special(self, entry: Any) -> None:
        if type(entry) is HandleMessage:
            self._emit_internal(entry.message, entry.handle)
        elif type(entry) is wire.Internal:
            self._emit_internal(entry.message)
        else:
            self._emit_error(entry)

    def _emit_internal(self, message: Any, handle: socket.socket | None = None) -> None:
        with self._listeners_lock:
            listeners = tuple(self._listeners["internalMessage"])
        if handle is None:
            for fn in listeners:
                fn(message)
        else:
            self._call_with_handle(listeners, message, handle, False)

    @staticmethod
    def _call_with_handle(
        listeners: tuple[Callable[..., Any], ...], message: Any, handle: socket.socket, kept: bool
    ) -> None:
        """Two-parameter listeners get the handle; if none (and no messages() loop) takes it,
        it is closed now, not left to the garbage collector."""
        for fn in listeners:
            if getattr(fn, "takes_extra", False):
                kept = True
                fn(message, handle)
            else:
                fn(message)
        if not kept:
            handle.close()

    def _emit_error(self, error: IPCError) -> None:
        with self._listeners_lock:
            listeners = tuple(self._listeners["error"])
        if not listeners:
            print(f"ipc: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        for fn in listeners:
            fn(error)

    def _answered(self, nack: bool) -> None:
        super()._answered(nack)
        with self._lock:
            self._progress.notify_all()

    # ---- closing --------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Write what is queued, then close the channel; the parent sees `disconnect`, and
        this process may end.

        :raises ChannelClosedError: the channel is already closed.
        """
        self._require_channel()
        if not self._start_closing():
            raise ChannelClosedError("the channel is already closed (disconnect() was called)")
        # On the reader thread the answer to a handle in flight cannot be read while we
        # wait: then, as Node, the channel closes when it comes (`_answered`).
        on_reader = threading.current_thread() is self._reader
        try:
            self._drain(wait_answer=not on_reader)
        except IPCError:
            pass  # the parent went away meanwhile: closing is all that is left
        with self._lock:
            if on_reader and not self._flushed_locked() and not self.closed:
                return
        self.close()

    def _at_end(self) -> None:
        """A read saw the end: the parent went away, or we are closing."""
        if not self.closed:
            self.close(BrokenChannelError("the parent closed the channel"))
        channel = self._channel
        if channel is not None and not channel.closed:
            with self._read_lock:
                channel.close()

    def _teardown(self, channel: Channel | None) -> None:
        # Under no lock of ours but `_read_lock`: a reader blocked in recv is woken first
        # (interrupt), so closing never races a read; writes stopped with `closed` (set
        # under `_lock`, which every write holds).
        if channel is not None:
            channel.interrupt()
            with self._read_lock:  # a read under way has returned (interrupt woke it)
                channel.close()
        with self._lock:
            self._writer_stop = True
            self._progress.notify_all()
        with self._callbacks_lock:
            if self._writer is None:  # never started: nobody else closes the waker
                self._writer_done = True
                self._close_waker_locked()
        self._signal_writer()
        atexit.unregister(self._flush_at_exit)

    def _after_close(self) -> None:
        self._inbox.put(_END)
        with self._listeners_lock:
            listeners = tuple(self._listeners["disconnect"])
        self._update_ref()
        for fn in listeners:
            fn()

    # ---- dying as Node does ---------------------------------------------------------------

    def _die(self, exc: BaseException) -> None:
        """An exception escaped a listener or callback on one of our threads: end the process
        as Node would (``process.exit(n)`` for SystemExit, status 1 and the traceback for
        anything else) instead of losing it with the thread; queued messages are written
        first (`fatal.exit_process`)."""
        exit_process(exc, lambda: self._drain(wait_answer=False))


parent = Parent()
