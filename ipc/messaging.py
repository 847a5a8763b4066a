"""The parent's message port: framing, an outgoing queue and back pressure over one `Channel`.

`send()` encodes in the caller's thread and, when nothing is queued, writes straight from that
thread: a small message costs no thread hand-off (the reactor only steps in when the kernel
buffer is full). Incoming bytes are read and decoded on the reactor thread. Anything that cannot
be delivered is reported, never dropped silently: a message's callback gets the error, and
messages without a callback produce one `error`.
"""

from __future__ import annotations

import functools
import hmac
import itertools
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from . import wire
from .errors import (
    AuthenticationError,
    BrokenChannelError,
    ChannelClosedError,
    IPCError,
    ProtocolError,
)
from .reactor import Reactor
from .tap import TappedChannel
from .transports import MAX_HELLO, Channel, TransportSetup

#: Node's own high-water mark for an IPC channel's write queue is about this.
HIGH_WATER: Final = 128 * 1024
#: Queued frames written per `writev` (well under Linux's IOV_MAX of 1024).
_WRITEV_BATCH: Final = 256

SendCallback = Callable[[BaseException | None], None]


class MessagePort:
    """Messages to and from one child. Callbacks (`on_message`, `on_error`, `on_close`) run on
    the reactor thread."""

    def __init__(
        self,
        reactor: Reactor,
        setup: TransportSetup,
        *,
        serialization: str,
        max_message_size: int,
        on_message: Callable[[Any], None],
        on_error: Callable[[IPCError], None],
        on_close: Callable[[], None],
    ) -> None:
        self._reactor = reactor
        self._setup = setup
        self.serialization = serialization
        self.max_message_size = max_message_size
        self._decoder = wire.Decoder(serialization, max_message_size)
        self._on_message = on_message
        self._on_error = on_error
        self._on_close = on_close
        self._lock = threading.Lock()
        self._queue: deque[tuple[memoryview, SendCallback | None]] = deque()
        self._queued_bytes = 0
        self._channel: Channel | None = None
        self._writer_registered = False
        self._closing = False  # disconnect() asked: close once the queue is written
        self.closed = False
        self._reading_paused = False
        self._pending_peers: dict[int, tuple[socket.socket, bytearray]] = {}
        self._tap: Callable[[str, bytes], None] | None = None  # see set_tap

    # ---- state ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return not self.closed and not self._closing

    @property
    def attached(self) -> bool:
        """The transport is connected (always, except a unix/tcp child not yet connected)."""
        return self._channel is not None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def start(self) -> None:
        """Reactor thread: begin reading (or accepting the child's connection)."""
        if self._setup.channel is not None:
            self._attach(self._setup.channel, b"")
        elif self._setup.listener is not None:
            self._reactor.add_reader(self._setup.listener.fileno(), self._accept)

    def set_tap(self, tap: Callable[[str, bytes], None] | None) -> bool:
        """From now on, report every read() and write() on the channel to `tap(direction,
        data)`, or stop (None); see `ipc.tap`. A channel not attached yet (a unix/tcp child
        still connecting) is tapped when it is. False once the channel is closed."""
        with self._lock:
            if self.closed:
                return False
            self._tap = tap
            channel = self._channel
            if channel is not None:
                inner = channel.inner if isinstance(channel, TappedChannel) else channel
                self._channel = self._tapped(inner)
            return True

    def _tapped(self, channel: Channel) -> Channel:
        """`channel` itself, or wrapped while a tap is on (under the lock)."""
        if self._tap is None:
            return channel
        return TappedChannel(channel, self._tap)  # type: ignore[return-value]

    # ---- sending (any thread) -------------------------------------------------------------

    def send(self, msg: Any, callback: SendCallback | None = None) -> bool:
        """Queue `msg`; write at once if the channel is idle. False past the high-water mark.

        :raises SerializationError: `msg` cannot be encoded.
        :raises MessageTooLargeError: `msg` is over `max_message_size`.
        """
        frame = wire.encode(msg, self.serialization, self.max_message_size)
        with self._lock:
            if self.closed or self._closing:
                error = ChannelClosedError("channel closed: send() after disconnect()")
                self._report_unsent([(memoryview(frame), callback)], error)
                return False
            channel = self._channel
            if self._queue or channel is None:
                self._queue.append((memoryview(frame), callback))
                self._queued_bytes += len(frame)
                return self._queued_bytes < HIGH_WATER
            # Idle channel (the usual case): one write from this thread, nothing queued. Only
            # what the kernel does not take now is queued for the reactor's writer.
            try:
                sent = channel.send_bytes(frame)
            except BrokenChannelError as exc:
                self._queue.append((memoryview(frame), callback))  # reported by close()
                self._queued_bytes += len(frame)
                self._reactor.call_soon(self._fail, exc)
                return False
            if sent == len(frame):
                if callback is not None:
                    self._reactor.call_soon(callback, None)
                return True
            self._queue.append((memoryview(frame)[sent:], callback))
            self._queued_bytes += len(frame) - sent
            self._writer_registered = True
            self._reactor.call_soon(self._update_writer)
            return self._queued_bytes < HIGH_WATER

    def disconnect(self) -> None:
        """Close the channel once every queued message is written."""
        with self._lock:
            if self.closed or self._closing:
                return
            self._closing = True
        self._reactor.call_soon(self._close_when_flushed)

    def _close_when_flushed(self) -> None:
        with self._lock:
            if self._queue and self._channel is not None and not self.closed:
                return  # _write_locked() calls us again when the queue empties
        self.close()

    def _write_locked(self) -> None:
        """Write queued frames until the kernel pushes back. Caller holds the lock."""
        channel = self._channel
        assert channel is not None
        queue = self._queue
        done: list[SendCallback] = []
        try:
            while queue:
                # Many frames per system call: under a burst of sends they queue up, and one
                # write each (each also a GIL release) made the reactor the bottleneck.
                batch = [view for view, _ in itertools.islice(queue, _WRITEV_BATCH)]
                sent = channel.send_many(batch)
                self._queued_bytes -= sent
                complete = sent == sum(map(len, batch))
                while sent:
                    view, callback = queue[0]
                    if sent < len(view):
                        queue[0] = (view[sent:], callback)
                        break
                    sent -= len(view)
                    queue.popleft()
                    if callback is not None:
                        done.append(callback)
                if not complete:
                    break  # the kernel pushed back: the writer callback resumes
        except BrokenChannelError as exc:
            self._reactor.call_soon(self._fail, exc)
            return
        finally:
            for callback in done:
                self._reactor.call_soon(callback, None)
        want_writer = bool(self._queue)
        if want_writer != self._writer_registered:
            self._writer_registered = want_writer
            self._reactor.call_soon(self._update_writer)
        if not self._queue and self._closing:
            self._reactor.call_soon(self._close_when_flushed)

    def _update_writer(self) -> None:
        with self._lock:
            channel, want = self._channel, self._writer_registered
        if channel is None or channel.closed:
            return
        if want:
            self._reactor.add_writer(channel.write_fileno(), self._on_writable)
        else:
            self._reactor.remove_writer(channel.write_fileno())

    def _on_writable(self) -> None:
        with self._lock:
            if self._channel is not None and not self.closed:
                self._write_locked()

    # ---- receiving (reactor thread) -------------------------------------------------------

    def _attach(self, channel: Channel, initial: bytes) -> None:
        with self._lock:
            self._channel = self._tapped(channel)
            if self._queue:
                self._write_locked()
            tapped = self._channel
        self._reactor.add_reader(channel.fileno(), self._on_readable)
        if initial:
            if isinstance(tapped, TappedChannel):  # read together with the secret line
                tapped.report("read", initial)
            self._deliver(initial)

    def pause_reading(self) -> None:
        if not self._reading_paused and self._channel is not None and not self.closed:
            self._reading_paused = True
            self._reactor.remove_reader(self._channel.fileno())

    def resume_reading(self) -> None:
        if self._reading_paused and self._channel is not None and not self.closed:
            self._reading_paused = False
            self._reactor.add_reader(self._channel.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        channel = self._channel
        if channel is None or self.closed:
            return
        data = channel.recv_bytes()
        if data is None:
            return
        if not data:
            if self._decoder.pending:
                self._on_error(
                    ProtocolError(
                        f"channel ended inside a frame ({self._decoder.pending} bytes pending)"
                    )
                )
            self.close()
            return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        error: ProtocolError | None = None
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            messages, error = exc.messages, exc
        for msg in messages:
            if self.closed:
                break
            self._on_message(msg)
        if error is not None:
            self._on_error(error)
            self.close()

    # ---- accepting a unix/tcp child (reactor thread) --------------------------------------

    def _accept(self) -> bool:
        """Accept one waiting connection; False when there was none."""
        listener = self._setup.listener
        if listener is None:
            return False
        try:
            peer, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._on_error(BrokenChannelError(f"accepting the child's connection failed: {exc}"))
            return False
        peer.setblocking(False)
        fd = peer.fileno()
        self._pending_peers[fd] = (peer, bytearray())
        self._reactor.add_reader(fd, functools.partial(self._read_hello, fd))
        return True

    def child_exited(self) -> None:
        """Reactor thread: the child is gone. A unix/tcp child may have connected, sent and
        exited before we accepted: take what waits in the backlog (its bytes are still there),
        then stop listening; with nobody to authenticate, the channel closes."""
        if self._channel is not None or self.closed:
            return
        listener = self._setup.listener
        if listener is not None:
            while self._accept():
                pass
            self._reactor.remove_reader(listener.fileno())
            self._setup.close_listener()
        if not self._pending_peers:
            self.close()

    def _read_hello(self, fd: int) -> None:
        peer, buffer = self._pending_peers[fd]
        try:
            data = peer.recv(MAX_HELLO + 1)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        buffer += data
        newline = buffer.find(b"\n")
        if newline < 0 and data and len(buffer) <= MAX_HELLO:
            return  # the secret line is not complete yet
        self._reactor.remove_reader(fd)
        del self._pending_peers[fd]
        secret = bytes(buffer[:newline]) if newline >= 0 else b""
        if newline >= 0 and hmac.compare_digest(secret, self._setup.secret):
            if self._setup.listener is not None:
                self._reactor.remove_reader(self._setup.listener.fileno())
            self._setup.close_listener()
            self._close_pending_peers()
            if peer.family == socket.AF_INET:
                peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd_ = peer.fileno()
            self._setup.channel = Channel(fd_, fd_, sock=peer)
            self._attach(self._setup.channel, bytes(buffer[newline + 1 :]))
            return
        peer.close()
        self._on_error(
            AuthenticationError(
                f"refused a connection to the child's {self._setup.name} channel: the peer "
                "did not present the child's secret"
            )
        )
        if self._setup.listener is None and not self._pending_peers and self._channel is None:
            self.close()  # the child exited and no connection of its own is left

    def _close_pending_peers(self) -> None:
        for fd, (peer, _) in list(self._pending_peers.items()):
            self._reactor.remove_reader(fd)
            peer.close()
        self._pending_peers.clear()

    # ---- closing (reactor thread) ---------------------------------------------------------

    def _fail(self, exc: IPCError) -> None:
        self.close(exc)

    def close(self, error: IPCError | None = None) -> None:
        """Close the channel now; unsent messages are reported with `error`."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            unsent = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            channel = self._channel
        if channel is not None and not channel.closed:
            self._reactor.remove_reader(channel.fileno())
            self._reactor.remove_writer(channel.write_fileno())
        if self._setup.listener is not None:
            self._reactor.remove_reader(self._setup.listener.fileno())
        self._close_pending_peers()
        self._setup.close()
        if unsent:
            self._report_unsent(
                unsent, error or BrokenChannelError("channel closed before the message was sent")
            )
        self._on_close()

    def _report_unsent(
        self, unsent: list[tuple[memoryview, SendCallback | None]], error: IPCError
    ) -> None:
        without_callback = 0
        for _, callback in unsent:
            if callback is None:
                without_callback += 1
            else:
                self._reactor.call_soon(callback, error)
        if without_callback:
            note = f" ({without_callback} message(s) not sent)" if without_callback > 1 else ""
            self._reactor.call_soon(self._on_error, type(error)(f"{error}{note}"))
