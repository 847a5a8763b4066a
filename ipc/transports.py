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

import errno
import os
import socket

from .errors import BrokenChannelError, InvalidArgumentError, SpawnError

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
    """Non-blocking byte I/O over a read fd and a write fd (the same fd for sockets).

    `send_bytes` / `recv_bytes` never block: they move what the kernel takes or has now.
    """

    def __init__(self, read_fd: int, write_fd: int, *, sock: socket.socket | None = None) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._sock = sock  # kept so the socket object, not a bare fd, is what gets closed
        os.set_blocking(read_fd, False)
        if write_fd != read_fd:
            os.set_blocking(write_fd, False)
        self.closed = False

    def fileno(self) -> int:
        """The fd to watch for reading."""
        return self._read_fd

    def write_fileno(self) -> int:
        """The fd to watch for writing."""
        return self._write_fd

    def send_bytes(self, data: bytes | memoryview) -> int:
        """Write as much of `data` as the kernel takes now; return how many bytes that was.

        :raises BrokenChannelError: the peer has gone.
        """
        try:
            return os.write(self._write_fd, data)
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BrokenChannelError(f"the peer closed the channel: {exc}") from exc

    def send_many(self, buffers: list[memoryview]) -> int:
        """As `send_bytes` for several buffers in order, in one `writev` system call.

        :raises BrokenChannelError: the peer has gone.
        """
        try:
            return os.writev(self._write_fd, buffers)
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BrokenChannelError(f"the peer closed the channel: {exc}") from exc

    def recv_bytes(self) -> bytes | None:
        """Bytes available now; ``b""`` at end of stream; None when nothing is there yet."""
        try:
            return os.read(self._read_fd, READ_SIZE)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return b""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._sock is not None:
            self._sock.close()
        else:
            os.close(self._read_fd)
            if self._write_fd != self._read_fd:
                os.close(self._write_fd)


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
