"""The parent's message port: a `Connection` driven by the reactor.

`send()` encodes in the caller's thread and, when nothing is queued, writes straight from that
thread: a small message costs no thread hand-off (the reactor only steps in when the kernel
buffer is full). Incoming bytes are read and decoded on the reactor thread, and every callback
(`on_message`, `on_error`, `on_close`, send callbacks) runs there. The queue, the handle
protocol and the state are `connection.Connection`'s, shared with the child's end.
"""

from __future__ import annotations

import functools
import hmac
import socket
from collections.abc import Callable
from typing import Any

from .connection import HIGH_WATER, Connection
from .errors import AuthenticationError, BrokenChannelError, IPCError, ProtocolError
from .reactor import Reactor
from .tap import TappedChannel
from .transports import MAX_HELLO, Channel, TransportSetup

__all__ = ["HIGH_WATER", "MessagePort", "SendCallback"]

SendCallback = Callable[[BaseException | None], None]
#: Transports whose channel is an AF_UNIX socket, which can carry handles.
_FD_TRANSPORTS = ("socketpair", "unix")


class MessagePort(Connection):
    """Messages to and from one child. Callbacks run on the reactor thread: `on_message(msg)`
    (or `on_message(msg, handle)` for a message that came with a socket), `on_internal(msg,
    handle=None)` for Node's internal messages we do not consume, `on_error(exc)`,
    `on_close()`."""

    def __init__(
        self,
        reactor: Reactor,
        setup: TransportSetup,
        *,
        serialization: str,
        max_message_size: int,
        on_message: Callable[..., None],
        on_error: Callable[[IPCError], None],
        on_close: Callable[[], None],
        on_internal: Callable[..., None] | None = None,
    ) -> None:
        super().__init__(serialization, max_message_size)
        self._reactor = reactor
        self._setup = setup
        self._on_message = on_message
        self._on_internal = on_internal
        self._on_error = on_error
        self._on_close = on_close
        self._reading_paused = False
        self._pending_peers: dict[int, tuple[socket.socket, bytearray]] = {}
        self._tap: Callable[[str, bytes], None] | None = None  # see set_tap
        self._call_soon = reactor.call_soon  # type: ignore[method-assign]

    # ---- Connection hooks -----------------------------------------------------------------

    def _writer_changed(self) -> None:
        self._reactor.call_soon(self._update_writer)

    def _refuse(self, error: IPCError, callback: SendCallback | None) -> bool:
        """As Node: `callback(err)` if given, else an `error` event; never raised."""
        self._report_unsent([(b"", callback)], error)
        return False

    def _emit_error(self, error: IPCError) -> None:
        self._on_error(error)

    def _emit_message(self, message: Any, handle: socket.socket | None = None) -> None:
        if handle is None:
            self._on_message(message)
        else:
            self._on_message(message, handle)

    def _emit_internal(self, message: Any, handle: socket.socket | None = None) -> None:
        if self._on_internal is not None:
            self._on_internal(message, handle)
        elif handle is not None:
            handle.close()

    def _passes_fds(self) -> bool:
        return self._setup.name in _FD_TRANSPORTS

    # ---- state ----------------------------------------------------------------------------

    @property
    def attached(self) -> bool:
        """The transport is connected (always, except a unix/tcp child not yet connected)."""
        return self._channel is not None

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

    def disconnect(self) -> None:
        """Close the channel once every queued message is written."""
        if self._start_closing():
            self._reactor.call_soon(self._close_when_flushed)

    def write_now(self) -> None:
        """Write what the kernel takes now of the queued messages, without waiting for room
        (before the child is terminated; any thread)."""
        self._on_writable()

    def _update_writer(self) -> None:
        with self._lock:
            channel, want = self._channel, self._writer_wanted
        if channel is None or channel.closed:
            return
        if want:
            self._reactor.add_writer(channel.write_fileno(), self._on_writable)
        else:
            self._reactor.remove_writer(channel.write_fileno())

    # ---- receiving (reactor thread) -------------------------------------------------------

    def _attach(self, channel: Channel, initial: bytes) -> None:
        with self._lock:
            self._channel = self._tapped(channel)
            if self._queue:
                self._write_locked()
        self._reactor.add_reader(channel.fileno(), self._on_readable)
        if initial:
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
            self.close(BrokenChannelError("the child closed the channel"))
            return
        if channel.received_fds or self._frame_fd >= 0:  # fds came (rare): pair or close them
            try:
                entries = self._receive_with_fds(data, *channel.take_fds())
            except ProtocolError as exc:
                self._lost_framing(exc)
                return
            self._dispatch_mixed(entries)
            return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        decoder = self._decoder  # (`Connection._receive`, spelled out: every message's path)
        try:
            messages = decoder.feed(data)
        except ProtocolError as exc:
            exc.messages = self._sort(exc.messages)
            self._lost_framing(exc)
            return
        if decoder.specials:
            self._dispatch_mixed(self._sort(messages))
            return
        on_message = self._on_message
        for msg in messages:
            if self.closed:
                break
            on_message(msg)

    def _lost_framing(self, exc: ProtocolError) -> None:
        """A frame we cannot skip: deliver what came before it (`exc.messages`, sorted), then
        report it and close."""
        self._dispatch_mixed(exc.messages)
        if not self.closed:
            self._on_error(exc)
            self.close(exc)

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

    def _teardown(self, channel: Channel | None) -> None:
        if channel is not None and not channel.closed:
            self._reactor.remove_reader(channel.fileno())
            self._reactor.remove_writer(channel.write_fileno())
        if self._setup.listener is not None:
            self._reactor.remove_reader(self._setup.listener.fileno())
        self._close_pending_peers()
        self._setup.close()

    def _after_close(self) -> None:
        self._on_close()
