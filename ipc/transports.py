"""Byte channels between a parent and its child, and the constructors for each transport.

One `Channel` class moves bytes over one or two bare file descriptors, whatever they are: a pipe
pair, an AF_UNIX socket or a TCP socket (as CPython's `multiprocessing.connection.Connection`
serves pipes and sockets alike). It does no framing and knows nothing of messages.

Transports (`TRANSPORTS`):

``pipe``        two ``os.pipe()``s, one per direction. Python children only: a Node child needs
                one duplex fd for ``NODE_CHANNEL_FD``.
``socketpair``  an anonymous AF_UNIX ``socketpair()`` — what Node itself uses for ``fork()``.
``unix``        a named AF_UNIX socket in a private 0700 directory; the child connects to it.
``tcp``         a listener on 127.0.0.1 with an ephemeral port; the child connects to it.

For ``unix`` and ``tcp`` a Python child proves it is the child we started by sending a one-time
secret (from its environment) as its first line; we accept no message before that, and any other
peer is refused. A Node child cannot do that handshake (Node opens ``NODE_CHANNEL_FD`` itself,
before any user code runs), so for a Node child the parent makes the connection on the child's
behalf, checks that the accepted peer is that very socket, closes the listener, and hands the
connected fd over as ``NODE_CHANNEL_FD``: the bytes still cross a real unix or TCP connection.

``auto`` picks ``socketpair``: duplex, no file system entry, no port, no handshake, works for
Node and Python children alike, and is at least as fast as the others in ``bench/ipc_bench.py``.
"""

from __future__ import annotations

import array
import errno
import os
import select
import socket
import threading

from .errors import BrokenChannelError, ChannelClosedError, InvalidArgumentError, SpawnError

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from typing import Final

TRANSPORTS: Final = ("pipe", "socketpair", "unix", "tcp")
AUTO: Final = "auto"

#: Environment variables a child reads to find its channel (besides Node's NODE_CHANNEL_FD).
ENV_CHANNEL: Final = "IPC_EXPLORER_CHANNEL"
ENV_SECRET: Final = "IPC_EXPLORER_SECRET"
ENV_SERIALIZATION: Final = "IPC_EXPLORER_SERIALIZATION"
ENV_MAX_MESSAGE_SIZE: Final = "IPC_EXPLORER_MAX_MESSAGE_SIZE"
NODE_CHANNEL_FD: Final = "NODE_CHANNEL_FD"
NODE_CHANNEL_SERIALIZATION_MODE: Final = "NODE_CHANNEL_SERIALIZATION_MODE"

#: The longest line a connecting peer may send before it counts as not knowing the secret.
MAX_HELLO: Final = 256
#: One read's size. Not larger: a request above glibc's mmap threshold (128 KiB) makes every
#: `os.read` map and unmap its buffer, ~12 µs per read even for a 40-byte message (measured:
#: 2.6 µs at 64 KiB, 15 µs at 256 KiB); a large message costs a few more reads instead.
READ_SIZE: Final = 64 * 1024
_DONTWAIT = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)
_CMSG_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
#: Room for the fds of one `sendmsg` (Node sends one handle per write).
_FD_SPACE = socket.CMSG_SPACE(16 * 4)


def choose_transport(transport: str, *, node_child: bool) -> str:
    """Resolve `transport` (possibly ``"auto"``) to a concrete transport for this child.

    :raises InvalidArgumentError: unknown transport name.
    :raises SpawnError: the transport cannot carry a channel to this kind of child.
    """
    if transport == AUTO:
        return "socketpair"
    if transport not in TRANSPORTS:
        names = ", ".join(repr(t) for t in (AUTO, *TRANSPORTS))
        raise InvalidArgumentError(f"transport must be one of {names}, not {transport!r}")
    if transport == "pipe" and node_child:
        raise SpawnError(
            "transport='pipe' cannot carry a Node child's channel: Node needs one duplex "
            "socket in NODE_CHANNEL_FD; use 'socketpair', 'unix', 'tcp' or 'auto'",
            code="ERR_IPC_TRANSPORT",
        )
    return transport


class Channel:
    """Bytes and file descriptors over a read fd and a write fd (the same fd for sockets), for
    both ends of a channel (as CPython's `multiprocessing.connection.Connection` serves pipes
    and sockets alike).

    Writes never block, on either end: a pipe's write fd is non-blocking and a socket is
    written with ``MSG_DONTWAIT``, so a socket's reads may block (`blocking_reads`, the child's
    reader thread) while its writes do not. `send_*` move what the kernel takes now.

    Over an AF_UNIX socket, file descriptors travel with the bytes (``SCM_RIGHTS``): the read
    that carries them puts them in `received_fds` (close-on-exec), and the message layer
    takes them at once (`take_fds`) to pair them with the ``NODE_HANDLE`` frame they came
    with, or to close them. One read carries the fds of one ``sendmsg`` at most: the kernel
    ends a read after the data the fds came with.

    Every public method checks the state: after `close()` they raise `ChannelClosedError`, so
    a stale call can never reach an fd number the system has since given to someone else.
    """

    def __init__(
        self,
        read_fd: int,
        write_fd: int,
        *,
        sock: socket.socket | None = None,
        blocking_reads: bool = False,
    ) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._sock = sock  # kept so the socket object, not a bare fd, is what gets closed
        self.blocking_reads = blocking_reads
        if sock is not None:
            os.set_blocking(read_fd, blocking_reads)  # writes pass MSG_DONTWAIT
        else:
            os.set_blocking(read_fd, blocking_reads)
            os.set_blocking(write_fd, False)
        # A socket whose fd blocks (for reads) is written with MSG_DONTWAIT; any other fd is
        # non-blocking, and plain os.write / os.writev are the cheapest calls.
        self._dontwait = sock is not None and blocking_reads
        #: A socket: `interrupt()` wakes a read blocked on it by shutting it down.
        self.is_socket = sock is not None
        #: File descriptors can travel with the bytes (an AF_UNIX socket).
        self.passes_fds = sock is not None and sock.family == socket.AF_UNIX
        # recvmsg, not read: a plain read() of an AF_UNIX socket makes the kernel discard the
        # fds that came with the bytes (Node's handles). It costs ~0.25 µs more per read.
        self._recvmsg = sock.recvmsg if self.passes_fds else None  # type: ignore[union-attr]
        #: The fds the last read brought, until `take_fds()`; `fds_cut`: some did not fit.
        self.received_fds: list[int] = []
        self.fds_cut = False
        # Guards `closed` against `interrupt()` from another thread: shutdown() on a socket
        # another thread just closed raised EBADF (or hit a reused fd number).
        self._lock = threading.Lock()
        self._wake_r = self._wake_w = -1  # made by the first wait_readable()
        self._poller: select.poll | None = None
        self._write_poller: select.poll | None = None
        self.interrupted = False
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise ChannelClosedError("the channel is closed")

    def fileno(self) -> int:
        """The fd to watch for reading."""
        self._check()
        return self._read_fd

    def write_fileno(self) -> int:
        """The fd to watch for writing."""
        self._check()
        return self._write_fd

    def send_bytes(self, data: bytes | memoryview) -> int:
        """Write as much of `data` as the kernel takes now; return how many bytes that was.

        :raises BrokenChannelError: the peer has gone.
        :raises ChannelClosedError: `close()` was called.
        """
        if self.closed:
            self._check()
        try:
            if self._dontwait:
                return self._sock.send(data, _DONTWAIT)  # type: ignore[union-attr]
            return os.write(self._write_fd, data)
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BrokenChannelError(f"the peer closed the channel: {exc}") from exc

    def send_many(self, buffers: list[memoryview]) -> int:
        """As `send_bytes` for several buffers in order, in one system call.

        :raises BrokenChannelError: the peer has gone.
        :raises ChannelClosedError: `close()` was called.
        """
        if self.closed:
            self._check()
        try:
            if self._dontwait:
                return self._sock.sendmsg(buffers, (), _DONTWAIT)  # type: ignore[union-attr]
            return os.writev(self._write_fd, buffers)
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BrokenChannelError(f"the peer closed the channel: {exc}") from exc

    def send_with_fds(self, data: bytes | memoryview, fds: list[int]) -> int:
        """As `send_bytes`, with `fds` riding on the first byte written (``SCM_RIGHTS``). When
        this returns 0 nothing was sent, the fds neither.

        :raises InvalidArgumentError: this channel cannot carry fds (not an AF_UNIX socket).
        :raises BrokenChannelError: the peer has gone.
        """
        self._check()
        if not self.passes_fds or self._sock is None:
            raise InvalidArgumentError(
                "only an AF_UNIX channel carries handles (transport 'socketpair', 'unix' or "
                "'auto'), not this one"
            )
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        try:
            return self._sock.sendmsg([data], rights, _DONTWAIT)
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BrokenChannelError(f"the peer closed the channel: {exc}") from exc

    def recv_bytes(self) -> bytes | None:
        """Bytes available now (waiting for them with `blocking_reads`); ``b""`` at end of
        stream (or after `interrupt()`); None when nothing is there yet.

        :raises ChannelClosedError: `close()` was called.
        """
        if self.closed:
            self._check()
        try:
            if self._recvmsg is not None:
                data, ancillary, flags, _ = self._recvmsg(READ_SIZE, _FD_SPACE, _CMSG_CLOEXEC)
                if ancillary:
                    self._keep_fds(ancillary, flags)
                return data
            return os.read(self._read_fd, READ_SIZE)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return b""
        except OSError:
            if self.interrupted or self.closed:
                return b""  # interrupt() shut the socket down under a blocked read
            raise

    def _keep_fds(self, ancillary: list[tuple[int, int, bytes]], flags: int) -> None:
        fds: list[int] = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", data[: len(data) - len(data) % 4]))
        with self._lock:
            self.received_fds.extend(fds)
            if flags & socket.MSG_CTRUNC:
                # More than Node ever sends: the kernel closed the ones that did not fit.
                self.fds_cut = True

    def take_fds(self) -> tuple[list[int], bool]:
        """The fds the last read brought (now the caller's to use or close), and whether some
        of them were cut off (more than fit in one read's room)."""
        with self._lock:
            fds, cut = self.received_fds, self.fds_cut
            self.received_fds, self.fds_cut = [], False
        return fds, cut

    def wait_readable(self, timeout: float | None) -> bool:
        """Block until bytes (or the end) can be read, `timeout` passes (False), or
        `interrupt()` is called (True: the read that follows sees the end)."""
        self._check()
        if self._poller is None:
            self._poller = self._new_poller(self._read_fd, select.POLLIN)
        if self.interrupted:
            return True
        return bool(self._poller.poll(None if timeout is None else timeout * 1000))

    def wait_writable(self, timeout: float | None) -> bool:
        """Block until the kernel takes bytes again (or the peer is gone), `timeout` passes
        (False), or `interrupt()` is called."""
        self._check()
        if self._write_poller is None:
            self._write_poller = self._new_poller(self._write_fd, select.POLLOUT)
        if self.interrupted:
            return True
        return bool(self._write_poller.poll(None if timeout is None else timeout * 1000))

    def _new_poller(self, fd: int, events: int) -> select.poll:
        with self._lock:
            if self._wake_r < 0:
                self._wake_r, self._wake_w = os.pipe()
        poller = select.poll()
        poller.register(fd, events)
        poller.register(self._wake_r, select.POLLIN)
        return poller

    def interrupt(self) -> None:
        """Wake a thread blocked in `recv_bytes()` or `wait_readable()` (from another thread);
        from now on reads see the end of stream. A no-op once closed."""
        with self._lock:
            if self.closed or self.interrupted:
                return
            self.interrupted = True
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # not connected (the peer reset it): nothing to wake
            if self._wake_w >= 0:
                os.write(self._wake_w, b"\0")

    def close(self) -> None:
        """Close the fds (and any received fd nobody took). Call it from the thread that reads,
        or when no thread does: `interrupt()` first wakes a blocked reader."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        if self._sock is not None:
            self._sock.close()
        else:
            os.close(self._read_fd)
            if self._write_fd != self._read_fd:
                os.close(self._write_fd)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        for fd in self.take_fds()[0]:
            os.close(fd)


class TransportSetup:
    """What opening a transport produced: the parent's side and what the child inherits.

    `channel` is ready at once for pipe/socketpair (and for a Node child on unix/tcp);
    otherwise `listener` waits for the child to connect and prove `secret`.
    (A plain class, not a dataclass: this module is imported by every Python child, and
    `dataclasses` costs milliseconds of start-up.)
    """

    def __init__(
        self,
        name: str,
        *,
        channel: Channel | None = None,
        listener: socket.socket | None = None,
        child_fds: list[int] | None = None,
        child_env: dict[str, str] | None = None,
        private_dir: str | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self.listener = listener
        self.secret = b""
        self.child_fds = child_fds or []
        self.child_env = child_env or {}
        self._private_dir = private_dir

    def close_child_ends(self) -> None:
        """Close the fds the child inherited: only the child may hold them now (or EOF never
        comes)."""
        for fd in self.child_fds:
            try:
                os.close(fd)
            except OSError as exc:  # pragma: no cover - already closed
                if exc.errno != errno.EBADF:
                    raise
        self.child_fds = []

    def close_listener(self) -> None:
        """Stop accepting connections and remove the unix socket's private directory."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self._private_dir is not None:
            import shutil

            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    def close(self) -> None:
        self.close_child_ends()
        self.close_listener()
        if self.channel is not None:
            self.channel.close()


def _socket_channel(sock: socket.socket) -> Channel:
    fd = sock.fileno()
    return Channel(fd, fd, sock=sock)


def _open_listener(name: str) -> tuple[socket.socket, str, str | None]:
    """A listening socket for `name` ("unix" or "tcp"), its address text and private dir."""
    import shutil
    import tempfile

    if name == "unix":
        private_dir = tempfile.mkdtemp(prefix="ipc-")  # mkdtemp makes it 0700
        path = os.path.join(private_dir, "channel.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(4)
        except OSError:
            listener.close()
            shutil.rmtree(private_dir, ignore_errors=True)
            raise
        return listener, f"unix:{path}", private_dir
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
    except OSError:
        listener.close()
        raise
    host, port = listener.getsockname()
    return listener, f"tcp:{host}:{port}", None


def _connect_for_node(setup: TransportSetup, address: str) -> None:
    """Connect to our own listener on the Node child's behalf and keep the accepted side."""
    assert setup.listener is not None
    if address.startswith("unix:"):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = address[len("unix:") :]
    else:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host, port = address[len("tcp:") :].rsplit(":", 1)
        target = (host, int(port))
    try:
        client.connect(target)  # loopback: completes at once against our own backlog
        setup.listener.settimeout(5.0)
        server_side, _ = setup.listener.accept()
    except OSError:
        client.close()
        raise
    if client.family == socket.AF_INET and server_side.getpeername() != client.getsockname():
        server_side.close()
        client.close()
        raise SpawnError("another peer connected to the child's channel first", code="EACCES")
    server_side.setblocking(False)
    setup.close_listener()
    setup.channel = _socket_channel(server_side)
    client_fd = client.detach()
    setup.child_fds = [client_fd]
    setup.child_env = {NODE_CHANNEL_FD: str(client_fd)}


def open_transport(name: str, *, node_child: bool) -> TransportSetup:
    """Create both ends of transport `name` (already resolved by `choose_transport`).

    The child's fds are inheritable (they go to `pass_fds`); the parent's are close-on-exec.
    """
    if name == "pipe":
        to_parent_r, to_parent_w = os.pipe()
        to_child_r, to_child_w = os.pipe()
        return TransportSetup(
            name,
            channel=Channel(to_parent_r, to_child_w),
            child_fds=[to_child_r, to_parent_w],
            child_env={ENV_CHANNEL: f"pipe:{to_child_r},{to_parent_w}"},
        )
    if name == "socketpair":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = theirs.detach()
        return TransportSetup(
            name,
            channel=_socket_channel(ours),
            child_fds=[fd],
            child_env={NODE_CHANNEL_FD: str(fd)},
        )
    listener, address, private_dir = _open_listener(name)
    setup = TransportSetup(name, listener=listener, private_dir=private_dir)
    try:
        if node_child:
            _connect_for_node(setup, address)
        else:
            import secrets

            listener.setblocking(False)
            setup.secret = secrets.token_hex(32).encode()
            setup.child_env = {ENV_CHANNEL: address, ENV_SECRET: setup.secret.decode()}
    except BaseException:
        setup.close()
        raise
    return setup


def connect_from_child(address: str, secret: str) -> socket.socket:
    """Child side of unix/tcp: connect to `address` and send the secret line (blocking)."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = address[len("unix:") :]
    elif address.startswith("tcp:"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host, port = address[len("tcp:") :].rsplit(":", 1)
        target = (host, int(port))
    else:
        raise InvalidArgumentError(f"unknown channel address {address!r}")
    try:
        sock.connect(target)
        if sock.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(secret.encode() + b"\n")
    except OSError:
        sock.close()
        raise
    return sock
