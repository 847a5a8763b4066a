"""Node's handle passing, the parts that do no I/O: what a handle is, its envelope, and who
wants to be given one.

Node sends a socket or server over an IPC channel as one JSON frame with the fd attached to it
by ``SCM_RIGHTS`` (`lib/internal/child_process.js`)::

    {"cmd": "NODE_HANDLE", "type": "net.Server" | "net.Socket" | ..., "msg": <the message>}

The receiver answers ``{"cmd": "NODE_HANDLE_ACK"}`` once it holds the fd, or
``{"cmd": "NODE_HANDLE_NACK"}`` when no fd came with the frame; the sender sends nothing else
until one of them arrives (its ``_handleQueue``) and, on a NACK, sends the handle again.

Here a handle is a `socket.socket`: a listening stream socket travels as Node's
``net.Server``, a connected one as ``net.Socket``. Datagram sockets (``dgram.Socket``) are not
taken: Python gets no use from Node's dgram wrapper state, so the receiver answers NACK and
reports a `HandleError` rather than leave the sender waiting.
"""

from __future__ import annotations

import os
import socket

from .errors import InvalidArgumentError

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

NODE_HANDLE: Final = "NODE_HANDLE"
NODE_HANDLE_ACK: Final = "NODE_HANDLE_ACK"
NODE_HANDLE_NACK: Final = "NODE_HANDLE_NACK"
#: The handle types we take: Node's stream types (`net.Native` is a raw TCP or pipe handle).
STREAM_TYPES: Final = ("net.Server", "net.Socket", "net.Native")
#: How often Node sends a handle again after a NACK before it gives up.
MAX_HANDLE_RETRANSMISSIONS: Final = 3


def handle_type(sock: Any) -> str:
    """Node's type name for `sock`: ``net.Server`` (listening) or ``net.Socket``.

    :raises InvalidArgumentError: not a stream socket we can send.
    """
    if not isinstance(sock, socket.socket):
        raise InvalidArgumentError(
            f"handle must be a socket.socket (a listening or connected stream socket), "
            f"not {type(sock).__name__}"
        )
    if sock.fileno() < 0:
        raise InvalidArgumentError("handle is a closed socket")
    if sock.type != socket.SOCK_STREAM:
        raise InvalidArgumentError(
            "only stream sockets can be sent (Node's net.Server / net.Socket); "
            "a datagram socket is not supported"
        )
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    return "net.Server" if listening else "net.Socket"


def take_handle(sock: socket.socket, kind: str, keep_open: bool) -> int:
    """The fd to send for `sock`, owned by the channel from now on (closed after the ACK).

    As Node: a connected socket (``net.Socket``) is handed over — detached from the caller's
    object, which reads as closed — unless `keep_open`; a server stays open in the sender too.
    """
    if kind == "net.Socket" and not keep_open:
        return sock.detach()
    return os.dup(sock.fileno())


def envelope(message: Any, kind: str) -> dict[str, Any]:
    return {"cmd": NODE_HANDLE, "type": kind, "msg": message}


def socket_from_fd(fd: int) -> socket.socket:
    """The received fd as a `socket.socket`, in the blocking mode the fd has.

    The fd shares its open file description with the sender, whose event loop (Node's
    libuv) needs it non-blocking; so it is left as it came and the Python object is told the
    truth (``timeout 0.0``), rather than switched to blocking under the sender.
    """
    sock = socket.socket(fileno=fd)
    if not os.get_blocking(fd):
        sock.settimeout(0.0)
    return sock


def takes_handle(fn: Callable[..., Any]) -> bool:
    """`fn` names two positional parameters: it is called ``fn(message, handle)``.

    A bare ``*args`` does not count, so ``on("message", print)`` prints just the message.
    Functions and bound methods are read from their code object (no `inspect` import on a
    child's start-up path); other callables through `inspect.signature`.
    """
    code = getattr(fn, "__code__", None)
    if code is not None:
        named = code.co_argcount - (1 if getattr(fn, "__self__", None) is not None else 0)
        return named >= 2
    import inspect

    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in positional) >= 2


class WithHandle:
    """A message listener that takes the handle: called ``fn(message, handle)``, with
    ``handle=None`` for a message without one. Equal to `fn`, so ``off(event, fn)`` finds it."""

    __slots__ = ("fn",)
    takes_extra = True

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, message: Any, handle: socket.socket | None = None) -> Any:
        return self.fn(message, handle)

    def __eq__(self, other: object) -> bool:
        return other is self or other == self.fn

    def __hash__(self) -> int:
        return hash(self.fn)

    def __repr__(self) -> str:
        return f"WithHandle({self.fn!r})"


def message_listener(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` as registered for ``message``: wrapped when it takes the handle, else itself."""
    return WithHandle(fn) if takes_handle(fn) else fn
