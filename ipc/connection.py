"""One message connection over one `Channel`: the same class for both ends of a fork().

After CPython's `multiprocessing.connection.Connection` (one class, public methods that check
the state), this holds everything the parent's end and the child's end share: the framing
(`wire`), the outgoing queue with its high-water mark and send callbacks, Node's internal
messages and its handle protocol (``NODE_HANDLE`` / ``_ACK`` / ``_NACK``, see `handles`), and
the state, with the reason it closed. A subclass says only *when* bytes move and *where*
callbacks run: `messaging.MessagePort` (the parent: one reactor thread for every child) and
`child.Parent` (the child: a reader thread or the caller's, and a writer thread).

Writes never block. `send()` writes from the caller's thread when nothing is queued (a small
message costs no thread hand-off); what the kernel does not take now is queued, and the
subclass's writer writes it, in order, many frames per system call, when the channel is
writable. Past `HIGH_WATER` queued bytes `send()` returns False, as Node's does; nothing is
dropped. Anything that cannot be delivered is reported, never dropped silently: a message's
callback gets the error, and messages without a callback produce one error.

States: open → closing (`disconnect()`: the queue is written first) → closed. A closed
connection refuses `send()` with `ChannelClosedError` when we closed it, or
`BrokenChannelError` when the peer went away (anyio's distinction).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque

from . import handles, wire
from .errors import BrokenChannelError, ChannelClosedError, HandleError, IPCError, ProtocolError
from .transports import Channel

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any, Final

    SendCallback = Callable[[BaseException | None], None]

#: Node's own high-water mark for an IPC channel's write queue is about this.
HIGH_WATER: Final = 128 * 1024
#: Queued frames written per `writev` (well under Linux's IOV_MAX of 1024).
_WRITEV_BATCH: Final = 256


class HandleMessage:
    """A received message that came with a handle (`Connection._receive` entry)."""

    __slots__ = ("handle", "internal", "message")

    def __init__(self, message: Any, handle: socket.socket, internal: bool) -> None:
        self.message = message
        self.handle = handle
        self.internal = internal


class _OutgoingHandle:
    """A handle on its way: kept (with our own fd) until the peer's ACK, for a resend on NACK."""

    __slots__ = ("fd", "frame", "kind", "payload", "retransmissions")

    def __init__(self, frame: bytes, fd: int, kind: str, payload: Any) -> None:
        self.frame = frame
        self.fd = fd
        self.kind = kind
        self.payload = payload
        self.retransmissions = 0


class Connection:
    """Messages over one `Channel`. Subclasses implement the hooks marked below."""

    #: Seconds a reply may wait to be written with the rest of its batch (the child's
    #: write-behind, see `child`); 0 here: the parent writes every message at once.
    coalesce_delay: float = 0.0

    def __init__(
        self, serialization: str = "json", max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        self.serialization = serialization
        self.max_message_size = max_message_size
        self._decoder = wire.Decoder(serialization, max_message_size)
        # Guards the queue, the state and every write to the channel: frames from many
        # threads never interleave, and no write is under way when the channel closes.
        self._lock = threading.Lock()
        self._channel: Channel | None = None
        # (bytes still to write, callback when all of it is written, fd riding on it or -1)
        self._queue: deque[tuple[memoryview, SendCallback | None, int]] = deque()
        self._queued_bytes = 0
        self._writer_wanted = False
        self._closing = False  # disconnect() asked: close once everything is written
        self.closed = False
        self._refusal: IPCError | None = None  # what send() raises once closed
        # Node's handle queue: after a handle, every send waits for the peer's ACK/NACK.
        self._unacked: _OutgoingHandle | None = None
        self._held: deque[tuple[bytes, SendCallback | None, _OutgoingHandle | None]] = deque()
        #: True when the last `_receive()` returned entries other than plain messages.
        self._mixed = False
        # An fd that came with the first bytes of a frame not complete yet (a large
        # NODE_HANDLE); -1 when none. Guarded by `_lock` (close() closes it).
        self._frame_fd = -1
        #: Replies held back by `_cork_locked` (always empty on the parent's end).
        self._corked: list[bytes] = []

    # ---- hooks (subclasses) ---------------------------------------------------------------

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` soon on the owner's thread, never inside the caller's lock."""
        raise NotImplementedError

    def _writer_changed(self) -> None:
        """`_writer_wanted` flipped (lock held): start or stop waiting for writability."""
        raise NotImplementedError

    def _refuse(self, error: IPCError, callback: SendCallback | None) -> bool:
        """`send()` on a channel that is closed or closing."""
        raise NotImplementedError

    def _emit_error(self, error: IPCError) -> None:
        raise NotImplementedError

    def _emit_message(self, message: Any, handle: socket.socket | None = None) -> None:
        raise NotImplementedError

    def _emit_internal(self, message: Any, handle: socket.socket | None = None) -> None:
        raise NotImplementedError

    def _teardown(self, channel: Channel | None) -> None:
        """Stop watching and close `channel` (called once, by `close()`)."""
        raise NotImplementedError

    def _after_close(self) -> None:
        """The channel is closed and unsent messages reported."""

    def _expect_answer_locked(self) -> None:
        """A handle is in flight: make sure its ACK will be read (the parent always reads)."""

    def _passes_fds(self) -> bool:
        """The channel can carry handles (an AF_UNIX socket)."""
        return self._channel is not None and self._channel.passes_fds

    # ---- state ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return not self.closed and not self._closing

    @property
    def queued_bytes(self) -> int:
        """Bytes accepted by `send()` and not yet taken by the kernel."""
        return self._queued_bytes

    def _refusal_locked(self) -> IPCError:
        if self._refusal is not None:
            return type(self._refusal)(str(self._refusal))
        return ChannelClosedError("channel closed: send() after disconnect()")

    # ---- sending --------------------------------------------------------------------------

    def send(
        self,
        message: Any,
        callback: SendCallback | None = None,
        *,
        handle: socket.socket | None = None,
        keep_open: bool = False,
    ) -> bool:
        """Send `message`; never blocks. Written at once if the channel is idle, else queued;
        False past the high-water mark (the message is queued all the same, as in Node).

        `callback(error)` runs on the owner's thread (the parent's reactor, the child's
        writer) once the message is written (`error` None) or could not be. On a channel that
        is closed or closing it gets the error; without a callback the parent emits an
        `error` event and the child raises it: `ChannelClosedError` when we closed it,
        `BrokenChannelError` when the peer went away.

        `handle`, a listening or connected stream socket, travels with the message as Node
        passes a ``net.Server`` / ``net.Socket`` (``SCM_RIGHTS``, so only over an AF_UNIX
        channel). A connected socket is handed over, detached from `handle`, unless
        `keep_open` (as in Node); a server stays open here too.

        :raises SerializationError: `message` cannot be encoded.
        :raises MessageTooLargeError: `message` is over `max_message_size`.
        :raises InvalidArgumentError: `handle` is not a stream socket, or this channel cannot
            carry one.
        """
        if self._channel is None:
            self._unattached()
        if handle is not None:
            return self._send_handle(message, handle, callback, keep_open)
        frame = wire.encode(message, self.serialization, self.max_message_size)
        with self._lock:
            if self.closed or self._closing:
                error = self._refusal_locked()
            elif self._unacked is not None:
                return self._hold_locked(frame, callback, None)
            else:
                if self.coalesce_delay or self._corked:
                    frame = self._cork_locked(frame, callback)  # type: ignore[assignment]
                    if frame is None:
                        return True
                channel = self._channel
                if self._queue or channel is None:
                    return self._enqueue_locked(frame, callback)
                # Idle channel (the usual case): one write from this thread, nothing queued.
                # Only what the kernel does not take now is queued for the writer.
                try:
                    sent = channel.send_bytes(frame)
                except BrokenChannelError as exc:
                    return self._queue_rest_locked(frame, 0, callback, exc)
                if sent == len(frame):
                    if callback is not None:
                        self._call_soon(callback, None)
                    return True
                return self._queue_rest_locked(frame, sent, callback)
        return self._refuse(error, callback)

    def _unattached(self) -> None:
        """`send()` before the channel is there: the parent queues (a unix/tcp child not
        connected yet); the child opens its channel now, or says why it has none."""

    def _cork_locked(self, frame: bytes, callback: SendCallback | None) -> bytes | None:
        """Hold `frame` back to be written with its batch's other replies (None), or return
        what to write now (the replies held so far, then `frame`). The child's; see `child`."""
        return frame

    def _send_handle(
        self, message: Any, sock: socket.socket, callback: SendCallback | None, keep_open: bool
    ) -> bool:
        kind = handles.handle_type(sock)
        if not self._passes_fds():
            from .errors import InvalidArgumentError

            raise InvalidArgumentError(
                "this channel cannot carry a handle: only an AF_UNIX socket passes fds "
                "(transport 'socketpair', 'unix' or 'auto', not 'pipe' or 'tcp')"
            )
        frame = wire.encode(
            handles.envelope(message, kind), self.serialization, self.max_message_size
        )
        with self._lock:
            if self.closed or self._closing:
                error = self._refusal_locked()
            else:
                outgoing = _OutgoingHandle(
                    frame, handles.take_handle(sock, kind, keep_open), kind, message
                )
                if self._unacked is not None:
                    return self._hold_locked(frame, callback, outgoing)
                self._flush_corked_locked()
                self._unacked = outgoing
                self._expect_answer_locked()
                return self._enqueue_locked(frame, callback, outgoing.fd)
        return self._refuse(error, callback)

    def _hold_locked(
        self, frame: bytes, callback: SendCallback | None, outgoing: _OutgoingHandle | None
    ) -> bool:
        """A send made while a handle waits for its ACK waits too (Node's `_handleQueue`)."""
        self._held.append((frame, callback, outgoing))
        self._queued_bytes += len(frame)
        return self._queued_bytes < HIGH_WATER

    def _flush_corked_locked(self) -> None:
        """Replies held back by `_cork_locked` go first (the child)."""

    def _enqueue_locked(self, data: bytes, callback: SendCallback | None, fd: int = -1) -> bool:
        """Write `data` now if nothing waits before it, else queue it. True below the
        high-water mark. Holds the lock."""
        channel = self._channel
        if self._queue or channel is None or fd >= 0:
            self._queue.append((memoryview(data), callback, fd))
            self._queued_bytes += len(data)
            if fd >= 0 and channel is not None and len(self._queue) == 1:
                self._write_locked()
            return self._queued_bytes < HIGH_WATER
        try:
            sent = channel.send_bytes(data)
        except BrokenChannelError as exc:
            return self._queue_rest_locked(data, 0, callback, exc)
        if sent == len(data):
            if callback is not None:
                self._call_soon(callback, None)
            return True
        return self._queue_rest_locked(data, sent, callback)

    def _queue_rest_locked(
        self,
        data: bytes,
        sent: int,
        callback: SendCallback | None,
        error: BrokenChannelError | None = None,
    ) -> bool:
        """What the kernel did not take of `data` waits for the writer (or, after `error`, is
        reported by close())."""
        self._queue.append((memoryview(data)[sent:] if sent else memoryview(data), callback, -1))
        self._queued_bytes += len(data) - sent
        if error is not None:
            self._broken_locked(error)
            return False
        self._want_writer_locked(True)
        return self._queued_bytes < HIGH_WATER

    def _broken_locked(self, exc: BrokenChannelError) -> None:
        """A write found the peer gone: refuse sends from now on, and close soon."""
        if self._refusal is None:
            self._refusal = exc
            self._closing = True
            self._call_soon(self._fail, exc)

    def _want_writer_locked(self, want: bool) -> None:
        if want != self._writer_wanted:
            self._writer_wanted = want
            self._writer_changed()

    def _write_locked(self) -> None:
        """Write queued frames until the kernel pushes back or the queue is empty. Holds the
        lock."""
        channel = self._channel
        assert channel is not None
        queue = self._queue
        done: list[SendCallback] = []
        try:
            while queue:
                first = queue[0]
                if first[2] >= 0:  # a handle rides on this frame's first byte
                    batch = [first[0]]
                    sent = channel.send_with_fds(first[0], [first[2]])
                    if sent:
                        queue[0] = (first[0], first[1], -1)  # the fd went with that byte
                else:
                    # Many frames per system call: under a burst of sends they queue up, and
                    # one write each (each also a GIL release) made the writer the bottleneck.
                    batch = []
                    for view, _, fd in itertools.islice(queue, _WRITEV_BATCH):
                        if fd >= 0:
                            break
                        batch.append(view)
                    sent = channel.send_many(batch)
                self._queued_bytes -= sent
                complete = sent == sum(map(len, batch))
                while sent:
                    view, callback, fd = queue[0]
                    if sent < len(view):
                        queue[0] = (view[sent:], callback, fd)
                        break
                    sent -= len(view)
                    queue.popleft()
                    if callback is not None:
                        done.append(callback)
                if not complete:
                    break  # the kernel pushed back: the writer resumes
        except BrokenChannelError as exc:
            self._broken_locked(exc)
            return
        finally:
            for callback in done:
                self._call_soon(callback, None)
        self._want_writer_locked(bool(queue))
        if self._closing and self._flushed_locked():
            self._call_soon(self._close_when_flushed)

    def _on_writable(self) -> None:
        """The writer's call: the channel can take bytes."""
        with self._lock:
            if self._channel is not None and not self.closed:
                self._write_locked()

    def _answer_handle(self, cmd: str) -> None:
        """Send ``{"cmd": cmd}`` (NODE_HANDLE_ACK or _NACK) in this channel's framing: ahead
        of held sends (Node's rule), never reported (Node swallows the errors of the sends
        it makes itself)."""
        frame = wire.encode({"cmd": cmd}, self.serialization, self.max_message_size)
        with self._lock:
            if not self.closed:
                self._enqueue_locked(frame, None)

    # ---- closing --------------------------------------------------------------------------

    def _flushed_locked(self) -> bool:
        return not self._queue and self._unacked is None and not self._held

    def _start_closing(self) -> bool:
        """`disconnect()`: no more sends; False when already closing or closed."""
        with self._lock:
            if self.closed or self._closing:
                return False
            self._closing = True
            self._flush_corked_locked()
            return True

    def _close_when_flushed(self) -> None:
        with self._lock:
            if not self._flushed_locked() and self._channel is not None and not self.closed:
                return  # the writer (or the ACK) calls us again when it is all written
        self.close()

    def _fail(self, exc: IPCError) -> None:
        self.close(exc)

    def close(self, error: IPCError | None = None) -> None:
        """Close now. Unsent messages are reported with `error` (or a BrokenChannelError). A
        `BrokenChannelError` says the peer went away: later sends raise that, not
        `ChannelClosedError`."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if isinstance(error, BrokenChannelError):
                self._refusal = error
            elif error is not None:
                self._refusal = ChannelClosedError(f"the channel was closed: {error}")
            unsent: list[tuple[Any, SendCallback | None]] = [(v, cb) for v, cb, _ in self._queue]
            unsent += [(frame, cb) for frame, cb, _ in self._held]
            outgoing = [self._unacked] + [h for _, _, h in self._held]
            self._queue.clear()
            self._held.clear()
            self._unacked = None
            self._queued_bytes = 0
            channel = self._channel
            frame_fd, self._frame_fd = self._frame_fd, -1
        for handle in outgoing:
            if handle is not None:
                os.close(handle.fd)
        _close_fds([frame_fd])
        self._teardown(channel)
        if unsent:
            self._report_unsent(
                unsent, error or BrokenChannelError("channel closed before the message was sent")
            )
        self._after_close()

    def _report_unsent(
        self, unsent: list[tuple[Any, SendCallback | None]], error: IPCError
    ) -> None:
        without_callback = 0
        for _, callback in unsent:
            if callback is None:
                without_callback += 1
            else:
                self._call_soon(callback, error)
        if without_callback:
            note = f" ({without_callback} message(s) not sent)" if without_callback > 1 else ""
            self._call_soon(self._emit_error, type(error)(f"{error}{note}"))

    # ---- receiving ------------------------------------------------------------------------

    def _receive(self, data: bytes) -> list[Any]:
        """Decode `data`. Plain messages come back as they are; when anything else arrived
        (`_mixed` is then True) the entries also hold `HandleMessage`s, `wire.Internal`s that
        we do not consume, and `ProtocolError`s for bad frames. Node's handle answers are
        consumed here.

        :raises ProtocolError: the framing is lost; its `messages` hold the entries before it.
        """
        channel = self._channel
        if channel is not None and (channel.received_fds or self._frame_fd >= 0):
            return self._receive_with_fds(data, *channel.take_fds())
        decoder = self._decoder
        try:
            entries = decoder.feed(data)
        except ProtocolError as exc:
            exc.messages = self._sort(exc.messages) if decoder.specials else exc.messages
            raise
        if not decoder.specials:
            self._mixed = False
            return entries
        return self._sort(entries)

    def _receive_with_fds(self, data: bytes, fds: list[int], cut: bool) -> list[Any]:
        """`_receive` for a read that brought fds (`fds`; `cut`: the kernel dropped some), or
        that goes on with a frame an fd is held for. The rare path.

        An fd belongs to the frame whose first byte came with it (Node and we send a handle
        with the first byte of its frame's write, and the kernel ends a read after the bytes
        its fds came with): the last frame that began in this read. A ``NODE_HANDLE`` frame
        takes it, when it is complete (here, or in a later read: until then it is held, one
        at most). Every other fd is closed and the read reported once, as a `ProtocolError`
        after its messages: fds riding on plain messages must neither pile up until the
        channel closes nor be handed to a later ``NODE_HANDLE`` as its own.

        :raises ProtocolError: the framing is lost (as `_receive`); the fds are closed.
        """
        with self._lock:
            held, self._frame_fd = self._frame_fd, -1
        try:
            earlier, here, tail = self._decoder.feed_split(data)
        except ProtocolError as exc:
            _close_fds([*fds, held])
            exc.messages = self._sort(exc.messages)
            raise
        claims: dict[int, int] = {}  # entry index -> the fd offered to a NODE_HANDLE there
        stray: list[int] = []
        keep = -1  # the fd to hold for the frame that is not complete yet
        if held >= 0:
            if earlier:
                claims[0] = held  # its frame ended here: entry 0
            elif tail == "old":
                keep = held  # its frame goes on
            else:
                stray.append(held)  # its frame ended as nothing (a blank line)
        if fds:
            first, *others = fds
            stray += others
            if cut:
                stray.append(first)  # fds were lost on the way: none of them is trusted
            elif tail == "new":
                keep = first  # (`held` was settled above: its frame ended here)
            elif here:
                claims[len(earlier) + len(here) - 1] = first
            else:
                stray.append(first)  # no frame began in this read
        if keep >= 0:
            with self._lock:
                if self.closed:
                    stray.append(keep)
                else:
                    self._frame_fd = keep
        entries = self._sort([*earlier, *here], claims)
        stray += claims.values()  # offered to a frame that is not a NODE_HANDLE
        if stray:
            _close_fds(stray)
            why = (
                "more came in one read than it has room for, so none of them is trusted"
                if cut
                else "not sent with the first byte of a NODE_HANDLE message"
            )
            entries.append(
                ProtocolError(
                    f"{len(stray)} file descriptor{'s' if len(stray) > 1 else ''} "
                    f"(SCM_RIGHTS) closed: {why}",
                    data,
                )
            )
            self._mixed = True
        return entries

    def _sort(self, entries: list[Any], fds: dict[int, int] | None = None) -> list[Any]:
        """Consume Node's handle answers, turn each ``NODE_HANDLE`` into a `HandleMessage`
        (or a `HandleError`) with the fd `fds` offers it at its index (`fds` loses that
        entry), and set `_mixed`."""
        out: list[Any] = []
        mixed = False
        for index, entry in enumerate(entries):
            if type(entry) is wire.Internal:
                cmd = entry.cmd
                if cmd == handles.NODE_HANDLE_ACK or cmd == handles.NODE_HANDLE_NACK:
                    self._answered(cmd == handles.NODE_HANDLE_NACK)
                    continue
                if cmd == handles.NODE_HANDLE:
                    fd = fds.pop(index, -1) if fds else -1
                    entry = self._take_handle(entry.message, fd)
                mixed = True
            elif isinstance(entry, IPCError):
                mixed = True
            out.append(entry)
        self._mixed = mixed
        return out

    def _dispatch_mixed(self, entries: list[Any]) -> None:
        """Deliver what `_receive` returned with `_mixed` set, in order."""
        for entry in entries:
            if self.closed:
                break
            kind = type(entry)
            if kind is HandleMessage:
                emit = self._emit_internal if entry.internal else self._emit_message
                emit(entry.message, entry.handle)
            elif kind is wire.Internal:
                self._emit_internal(entry.message)
            elif isinstance(entry, IPCError):
                self._emit_error(entry)
            else:
                self._emit_message(entry)

    def _take_handle(self, envelope: dict[str, Any], fd: int) -> HandleMessage | HandleError:
        """A ``NODE_HANDLE`` arrived with `fd` (-1: none came with it): answer ACK (or NACK),
        and return the message with its socket (or the error, with the message)."""
        kind = envelope.get("type")
        payload = envelope.get("msg")
        if fd < 0:
            self._answer_handle(handles.NODE_HANDLE_NACK)
            return HandleError(
                f"a {kind} handle arrived without its file descriptor; answered "
                "NODE_HANDLE_NACK (a Node sender sends a net.Socket again)",
                handle_type=kind,
                payload=payload,
            )
        if kind not in handles.STREAM_TYPES:
            os.close(fd)
            self._answer_handle(handles.NODE_HANDLE_NACK)
            return HandleError(
                f"cannot take a {kind} handle (only net.Server and net.Socket); answered "
                "NODE_HANDLE_NACK so the sender goes on; the message is in .payload",
                handle_type=kind,
                payload=payload,
            )
        try:
            sock = handles.socket_from_fd(fd)
        except OSError as exc:
            os.close(fd)
            self._answer_handle(handles.NODE_HANDLE_NACK)
            return HandleError(
                f"the {kind} handle is not a socket ({exc}); answered NODE_HANDLE_NACK",
                handle_type=kind,
                payload=payload,
            )
        self._answer_handle(handles.NODE_HANDLE_ACK)
        return HandleMessage(payload, sock, wire.is_internal(payload))

    def _answered(self, nack: bool) -> None:
        """The peer's NODE_HANDLE_ACK / _NACK for the handle in flight: resend it (NACK, up to
        Node's limit) or let the sends that waited for it go."""
        error: HandleError | None = None
        with self._lock:
            outgoing = self._unacked
            if outgoing is None or self.closed:
                return  # nothing in flight (Node would assert): ignore
            if nack and outgoing.retransmissions < handles.MAX_HANDLE_RETRANSMISSIONS:
                outgoing.retransmissions += 1
                self._enqueue_locked(outgoing.frame, None, outgoing.fd)
                return
            self._unacked = None
            os.close(outgoing.fd)
            if nack:
                error = HandleError(
                    f"the peer refused the {outgoing.kind} handle "
                    f"{outgoing.retransmissions + 1} times (NODE_HANDLE_NACK); it was not passed",
                    handle_type=outgoing.kind,
                    payload=outgoing.payload,
                )
            while self._held:
                frame, callback, handle = self._held.popleft()
                self._queued_bytes -= len(frame)
                if handle is None:
                    self._enqueue_locked(frame, callback)
                    continue
                self._unacked = handle
                self._enqueue_locked(frame, callback, handle.fd)
                break
            if self._closing and self._flushed_locked():
                self._call_soon(self._close_when_flushed)
        if error is not None:
            self._call_soon(self._emit_error, error)


def _close_fds(fds: list[int]) -> None:
    """Close each fd that is not -1."""
    for fd in fds:
        if fd >= 0:
            os.close(fd)
