"""The feed hub: every open WebSocket feed, served by one thread.

Thread model (why it is built this way)
---------------------------------------
gunicorn runs one gthread worker with ``--threads`` request threads (default 32). They serve
HTTP only. A WebSocket upgrade holds a request thread just for its handshake (``upgrade.py``):
then the connection is handed here and the thread goes back to the pool. So open feeds never
take the threads the API and the pages need, and how many feeds a server holds is its own
setting, ``--max-feeds`` (default 128), checked *before* the upgrade (HTTP 503 past it).

Before, each feed held a request thread for its whole life plus a reader thread of its own:
33 tabs took all 32 threads, the 33rd was told ``subscribed`` and then lost its feed to a broken
pipe, and with 100 tabs ``POST /api/jobs`` timed out. A thread per feed also costs a GIL
hand-off per feed per event. Here one thread does, for every feed, with one epoll loop:

* reading: each client's frames go through wsproto as they arrive and are handled at once,
  so there is no inbound queue to grow. A client may send ``--ws-rate`` frames per second (a
  token bucket with one second of burst); past it, close 1008. A message over
  ``--max-ws-message`` is dropped as it arrives (the client gets ``rejected``), and past four
  times that the connection is closed 1009, so a message is never buffered whole.
* writing: events come from the bus already encoded (`Subscriber.drain`), get a frame header
  (no compression is negotiated, so a frame is the header plus those bytes) and go out as one
  ``send`` per batch, not one per event. A client's unsent bytes stay below a low-water mark
  before its subscriber is drained again, so a slow client's backlog waits (merged, then
  dropped with a notice) in its bounded bus queue, not in an unbounded buffer here.
* timers: a keep-alive ping every ``--ws-ping-interval`` seconds (a client that has not
  answered the previous one, e.g. half-open after a network loss, is closed 1008), and each
  session's own timers (the heartbeat messages).
* closing: a close frame with the code that says why, then the write side is shut and the
  rest of what the client sends is read and dropped until it closes too (or a timeout), so the
  close frame is not lost to a reset. When the server stops, every feed gets 1001 (going away).

The bus wakes the hub through `Subscriber.notify` (ipc's `Waker`: a byte on a pipe, once per
batch), so an idle hub sleeps in epoll and costs nothing.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError

from ipc.waker import Waker

log = logging.getLogger("webapp.feed")

KiB = 1024

#: RFC 6455 close codes the hub sends.
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011


@dataclass(frozen=True)
class HubLimits:
    """What one feed may cost. The first four are settings (``config.py``, the CLI)."""

    #: Feeds open at once; past it the upgrade is refused with 503.
    capacity: int = 128
    #: Bytes of one client message; over it: `rejected`; over 4x: close 1009.
    max_message: int = 64 * KiB
    #: Frames per second a client may send (messages, fragments, pings), one second of burst.
    message_rate: float = 50.0
    #: Seconds between keep-alive pings (0: none).
    ping_interval: float = 20.0
    #: Seconds a closing connection waits for the client's close before it is cut.
    close_timeout: float = 2.0
    #: A client's subscriber is drained only while fewer bytes than this wait to be sent...
    low_water: int = 64 * KiB
    #: ... and at most about this much at a time.
    batch_bytes: int = 256 * KiB
    #: Unsent bytes at which a client that does not read is closed (only replies to its own
    #: requests can get there: events wait in the bus).
    max_unsent: int = 4 * 1024 * KiB
    #: Bytes read per connection per turn of the loop (fairness between clients).
    read_size: int = 64 * KiB


class Session(Protocol):
    """What a feed does with its connection (``feed.py``); every call comes from the hub."""

    def on_text(self, text: str) -> None: ...
    def on_binary(self) -> None: ...
    def on_too_big(self, size: int) -> None: ...
    def pump(self, limit: int) -> None: ...
    def has_more(self) -> bool: ...
    def due(self) -> float | None: ...
    def tick(self, now: float) -> None: ...
    def closed(self) -> None: ...


def text_frame_header(size: int) -> bytes:
    """The header of an unmasked, final text frame of `size` bytes (RFC 6455, 5.2)."""
    if size < 126:
        return bytes((0x81, size))
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8 (a control frame carries 125)."""
    data = text.encode()[:123]
    return data.decode("utf-8", "ignore")


class FeedConnection:
    """One client socket: wsproto for what it sends, ready-made frames for what we send.

    Only the hub's thread touches it.
    """

    def __init__(self, hub: FeedHub, sock: socket.socket) -> None:
        self.hub = hub
        self.sock = sock
        self.limits = hub.limits
        self.ws = Connection(ConnectionType.SERVER)
        self.session: Session | None = None
        self.open = True  # False once a close frame is queued
        self.finished = False
        self.close_deadline: float | None = None
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._offset = 0  # bytes of _out[0] already sent
        self._write_shut = False
        self._wants_write = False
        self._read_while_closing = 0
        self._tokens = self.limits.message_rate
        self._refilled = time.monotonic()
        self._message: list[str | bytes] | None = None
        self._message_size = 0
        self._message_binary = False
        self._too_big = False
        self.next_ping = (
            time.monotonic() + self.limits.ping_interval if self.limits.ping_interval else None
        )
        self._awaiting_pong = False

    # ---- sending ------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self.send_payloads([text.encode()])

    def send_payloads(self, payloads: list[bytes]) -> None:
        """Queue one text frame per payload (UTF-8 JSON), written as one batch."""
        if not self.open or not payloads:
            return
        parts: list[bytes] = []
        for payload in payloads:
            parts.append(text_frame_header(len(payload)))
            parts.append(payload)
        self._queue(b"".join(parts))
        if self._out_bytes > self.limits.max_unsent:
            self.close(POLICY_VIOLATION, "not reading: too many answers waiting to be sent")

    def _queue(self, data: bytes, urgent: bool = False) -> None:
        """Append, or put a control frame at the next frame boundary (before queued data)."""
        if urgent and self._out:
            self._out.insert(1 if self._offset else 0, data)
        else:
            self._out.append(data)
        self._out_bytes += len(data)

    def flush(self) -> None:
        """Write what the socket takes now; ask for EVENT_WRITE for the rest."""
        if self.finished:
            return
        while self._out:
            head = self._out[0]
            try:
                sent = self.sock.send(memoryview(head)[self._offset :])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.finish()
                return
            self._out_bytes -= sent
            self._offset += sent
            if self._offset == len(head):
                self._out.popleft()
                self._offset = 0
        if not self._out and not self.open and not self._write_shut:
            self._write_shut = True
            try:
                self.sock.shutdown(socket.SHUT_WR)  # our close frame is out: FIN after it
            except OSError:
                self.finish()
                return
        self._want_write(bool(self._out))

    def _want_write(self, want: bool) -> None:
        if want != self._wants_write and not self.finished:
            self._wants_write = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.hub.selector.modify(self.sock, events, self)

    def pump(self) -> None:
        """Move the subscriber's queued events into the send buffer, if it has room."""
        if not self.open or self.session is None or self._out_bytes >= self.limits.low_water:
            return
        self.session.pump(self.limits.batch_bytes)
        self.flush()
        if self.open and self._out_bytes < self.limits.low_water and self.session.has_more():
            self.hub.ready(self)  # more than one batch: the next turn, after the others

    def on_writable(self) -> None:
        self.flush()
        if self._out_bytes < self.limits.low_water:
            self.pump()

    # ---- receiving ----------------------------------------------------------------------

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(self.limits.read_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client is gone (or has answered our close)
            self.finish()
            return
        if not self.open:
            self._await_close_reply(data)
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if not self.open:
                break
            if isinstance(event, (TextMessage, BytesMessage)):
                if event.frame_finished and not self._take_token():
                    return
                self._on_data(event)
            elif isinstance(event, Ping):
                if self._take_token():
                    self._queue(self.ws.send(event.response()), urgent=True)
            elif isinstance(event, Pong):
                if not self._take_token():  # unasked pongs are frames like any other
                    return
                self._awaiting_pong = False
            elif isinstance(event, CloseConnection):
                self._on_close(event)
        self.flush()

    def _await_close_reply(self, data: bytes) -> None:
        """Closing: the rest of what the client sends is dropped; its close frame (the answer
        to ours) ends the connection at once, before the timeout. Only the first 64 KiB are
        parsed for it: a client still flooding is read and dropped unparsed until it closes
        or the timeout cuts it."""
        self._read_while_closing += len(data)
        if (
            self.ws.state is not ConnectionState.LOCAL_CLOSING
            or self._read_while_closing > self.limits.read_size
        ):
            return
        try:
            self.ws.receive_data(data)
            if any(isinstance(event, CloseConnection) for event in self.ws.events()):
                self.finish()
        except LocalProtocolError:
            self.finish()

    def _take_token(self) -> bool:
        """One frame's worth of the client's rate; closes the connection past it."""
        rate = self.limits.message_rate
        now = time.monotonic()
        self._tokens = min(rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.close(
            POLICY_VIOLATION,
            f"over {rate:g} messages per second: slow down (the server's --ws-rate)",
        )
        return False

    def _on_data(self, event: TextMessage | BytesMessage) -> None:
        if self._message is None:
            self._message, self._message_size = [], 0
            self._message_binary = isinstance(event, BytesMessage)
            self._too_big = False
        data = event.data
        self._message_size += len(data.encode() if isinstance(data, str) else data)
        limit = self.limits.max_message
        if self._message_size > 4 * limit:
            self.close(
                MESSAGE_TOO_BIG,
                f"message over 4 x the {limit}-byte limit; the feed takes small control messages",
            )
            return
        if self._message_size > limit:
            self._too_big = True
            self._message = []  # dropped as it comes: never held whole
        elif not self._too_big:
            self._message.append(data)
        if not event.message_finished:
            return
        parts, size, binary, too_big = (
            self._message,
            self._message_size,
            self._message_binary,
            self._too_big,
        )
        self._message = None
        assert self.session is not None
        if too_big:
            self.session.on_too_big(size)
        elif binary:
            self.session.on_binary()
        else:
            self.session.on_text("".join(parts))  # type: ignore[arg-type]

    def _on_close(self, event: CloseConnection) -> None:
        if self.ws.state is ConnectionState.REMOTE_CLOSING:
            # The client closes: answer with its code; nothing more is sent.
            self._closing(self.ws.send(event.response()))
        else:
            # wsproto found a protocol error (bad frame, bad UTF-8: event.code says which).
            self.close(event.code, event.reason or "protocol error")

    # ---- closing ------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Send a close frame with `code`; the connection ends when the client answers (or
        after ``close_timeout``)."""
        if not self.open:
            return
        try:
            frame = self.ws.send(CloseConnection(code=code, reason=_reason(reason)))
        except LocalProtocolError:
            frame = b""
        self._closing(frame)

    def _closing(self, frame: bytes) -> None:
        self.open = False
        self.close_deadline = time.monotonic() + self.limits.close_timeout
        self.hub.timer(self.close_deadline)
        self._release_session()
        # After what is already queued (bounded: answers and at most one batch of events).
        if frame:
            self._queue(frame)
        self.flush()

    def _release_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.closed()

    def finish(self) -> None:
        """Close the socket and forget the connection (no more frames either way)."""
        if self.finished:
            return
        self.finished = True
        self.open = False
        self._release_session()
        self.hub.forget(self)
        self.sock.close()

    # ---- timers -------------------------------------------------------------------------

    def due(self) -> float | None:
        if self.close_deadline is not None:
            return self.close_deadline
        session = self.session.due() if self.session is not None else None
        if self.next_ping is None:
            return session
        return self.next_ping if session is None else min(session, self.next_ping)

    def tick(self, now: float) -> None:
        if self.close_deadline is not None:
            if now >= self.close_deadline:
                self.finish()
            return
        if self.next_ping is not None and now >= self.next_ping:
            if self._awaiting_pong:
                self.close(
                    POLICY_VIOLATION,
                    f"no answer to the keep-alive ping in {self.limits.ping_interval:g} s",
                )
                return
            self._awaiting_pong = True
            self._queue(self.ws.send(Ping()), urgent=True)
            self.next_ping = now + self.limits.ping_interval
            self.flush()
        if self.session is not None:
            self.session.tick(now)
            self.flush()


class FeedHub:
    """Owns the feed connections after their upgrade and serves them from one thread.

    Thread-safe entry points: `reserve` / `release` (a slot, before the upgrade), `adopt`
    (a connection after it), `ready` (a subscriber has something), `stop`.
    """

    def __init__(self, limits: HubLimits | None = None) -> None:
        self.limits = limits or HubLimits()
        self._lock = threading.Lock()
        self._in_use = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._connections: set[FeedConnection] = set()
        self._incoming: deque[FeedConnection] = deque()
        self._ready: deque[FeedConnection] = deque()
        self._next_timer = float("inf")
        self._stop_code = (GOING_AWAY, "server stopping")
        # Made with the thread, at the first feed: an app that never has one holds no fds.
        self.selector: selectors.BaseSelector | None = None
        self._waker: Waker | None = None

    # ---- thread-safe ---------------------------------------------------------------------

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use

    @property
    def capacity(self) -> int:
        return self.limits.capacity

    def reserve(self) -> bool:
        """Take a feed slot; False when all are taken (or the hub is stopping)."""
        with self._lock:
            if self._stopping or self._in_use >= self.limits.capacity:
                return False
            self._in_use += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._in_use -= 1

    def adopt(self, sock: socket.socket, make_session: Callable[[FeedConnection], Session]) -> None:
        """Serve `sock` (upgraded, non-blocking; its slot reserved) until it closes."""
        conn = FeedConnection(self, sock)
        conn.session = make_session(conn)
        with self._lock:
            if self._thread is None and not self._stopping:
                self.selector = selectors.DefaultSelector()
                self._waker = Waker()
                self.selector.register(self._waker.fileno(), selectors.EVENT_READ, None)
                self._thread = threading.Thread(target=self._run, name="feed-hub", daemon=True)
                self._thread.start()
            accepted = not self._stopping
            if accepted:
                self._incoming.append(conn)
        if not accepted:
            conn.finish()
            self.release()
            return
        self._wake()

    def ready(self, conn: FeedConnection) -> None:
        """`conn`'s subscriber has events (called by the bus, under its lock: stays quick)."""
        self._ready.append(conn)
        self._wake()

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None:  # (None: not started; a stopped one ignores the call)
            waker.wake()

    def stop(self, code: int = GOING_AWAY, reason: str = "server stopping") -> None:
        """Close every feed with `code` (1001: the page says the server stopped), wait for
        them (at most ``close_timeout``), and end the thread."""
        with self._lock:
            if self._stopping and self._thread is None:
                return
            self._stopping = True
            self._stop_code = (code, reason)
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._wake()
        thread.join(self.limits.close_timeout + 5)
        if not thread.is_alive():
            assert self.selector is not None
            self.selector.close()
            assert self._waker is not None
            self._waker.close()

    # ---- the hub's thread ----------------------------------------------------------------

    def timer(self, when: float) -> None:
        """Something is due at `when` (hub thread only)."""
        self._next_timer = min(self._next_timer, when)

    def forget(self, conn: FeedConnection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self.selector.unregister(conn.sock)
            self.release()

    def _run(self) -> None:
        stop_deadline: float | None = None
        try:
            while True:
                if stop_deadline is None and self._stopping:
                    code, reason = self._stop_code
                    stop_deadline = time.monotonic() + self.limits.close_timeout
                    self._take_incoming()
                    for conn in list(self._connections):
                        self._guard(conn, partial(FeedConnection.close, code=code, reason=reason))
                if stop_deadline is not None and (
                    not self._connections or time.monotonic() >= stop_deadline
                ):
                    break
                timeout = max(0.0, min(self._next_timer, time.monotonic() + 1.0) - time.monotonic())
                for key, mask in self.selector.select(timeout):
                    conn = key.data
                    if conn is None:
                        self._on_wake()
                    else:
                        if mask & selectors.EVENT_WRITE:
                            self._guard(conn, FeedConnection.on_writable)
                        if mask & selectors.EVENT_READ and not conn.finished:
                            self._guard(conn, FeedConnection.on_readable)
                self._pump_ready()
                if time.monotonic() >= self._next_timer:
                    self._run_timers()
        except Exception:  # a bug here would silence every feed: say so loudly
            log.exception("the feed hub failed; every feed is closed")
        finally:
            for conn in list(self._connections):
                conn.finish()
            with self._lock:
                self._stopping = True

    def _on_wake(self) -> None:
        assert self._waker is not None
        self._waker.drain()  # before the queues are read (ipc's Waker protocol)
        self._take_incoming()

    def _take_incoming(self) -> None:
        while self._incoming:
            conn = self._incoming.popleft()
            self._connections.add(conn)
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)
            self.timer(conn.due() or float("inf"))

    def _pump_ready(self) -> None:
        seen: set[FeedConnection] = set()
        for _ in range(len(self._ready)):
            try:
                conn = self._ready.popleft()
            except IndexError:
                break
            if conn in seen or conn.finished or conn not in self._connections:
                continue
            seen.add(conn)
            self._guard(conn, FeedConnection.pump)

    def _run_timers(self) -> None:
        now = time.monotonic()
        nearest = float("inf")
        for conn in list(self._connections):
            due = conn.due()
            if due is not None and due <= now:
                self._guard(conn, lambda c: c.tick(now))
                due = None if conn.finished else conn.due()
            if due is not None:
                nearest = min(nearest, due)
        self._next_timer = nearest

    def _guard(self, conn: FeedConnection, action: Callable[[FeedConnection], None]) -> None:
        """Run `action` on `conn`; a bug in one feed closes that feed (1011), not the hub."""
        try:
            action(conn)
        except Exception:
            log.exception("feed connection failed")
            try:
                conn.close(INTERNAL_ERROR, "internal error; it was logged")
            except Exception:
                conn.finish()
