"""The HTTP side of opening a WebSocket: check the handshake, answer 101, take the socket.

A feed must not hold a request thread for as long as it is open (issue 11: 33 open tabs took
all 32 of gunicorn's threads and the API stopped answering), so the request thread only does
the handshake here and hands the connection to the feed hub (``feedhub.py``), which serves
every feed from one thread. Everything that can refuse a client happens *before* the 101, as
a plain HTTP answer with a JSON error: the token and Origin (``security.py``), a malformed
handshake (here), a full server (``feed.py``).

Taking the socket from the WSGI server: we keep a duplicate of its file descriptor, and the
server's own descriptor number is pointed (``dup2``) at one end of a closed socketpair. The
server then finishes the request as usual, writes its response into nothing, and closes
"its" socket (gunicorn's graceful close shuts it down and reads it first: on the real one
that would end the feed and eat its first frames), while the connection stays open with us.
This works for gunicorn's gthread worker and Werkzeug's server alike, with no private API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import socket
import ssl
from collections.abc import Mapping
from typing import Any

#: RFC 6455, section 1.3: the GUID every server appends to the client's key.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(Exception):
    """A request that cannot become a WebSocket: `status` and a message saying how to fix it."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _tokens(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",")}


def asks_for_websocket(headers: Mapping[str, str]) -> bool:
    """Whether the request asks to become a WebSocket: ``websocket`` among the tokens of its
    ``Upgrade`` header (a list, RFC 9110 7.8), in any case.

    The one definition: the handshake below accepts what this accepts, and security.py checks
    the Origin of what this accepts, so no request can open a feed without that check.
    """
    return "websocket" in _tokens(headers.get("Upgrade", ""))


def check_handshake(method: str, headers: Mapping[str, str]) -> str:
    """The client's ``Sec-WebSocket-Key`` if this is a valid RFC 6455 opening handshake.

    :raises HandshakeError: 426 for a plain HTTP request, 400 for a broken handshake.
    """
    if not asks_for_websocket(headers):
        raise HandshakeError(
            426,
            "this URL is the live feed: connect with a WebSocket client "
            "(new WebSocket('ws://HOST:PORT/ws')), not a plain HTTP request",
            {"Upgrade": "websocket"},
        )
    if method != "GET":
        raise HandshakeError(400, f"a WebSocket handshake is a GET request, not {method}")
    if "upgrade" not in _tokens(headers.get("Connection", "")):
        raise HandshakeError(400, "a WebSocket handshake needs 'Connection: Upgrade'")
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        raise HandshakeError(
            426,
            "only WebSocket version 13 (RFC 6455) is spoken here; send 'Sec-WebSocket-Version: 13'",
            {"Sec-WebSocket-Version": "13"},
        )
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise HandshakeError(
            400, "'Sec-WebSocket-Key' must be 16 random bytes in base64 (RFC 6455, 4.1)"
        )
    return key


def accept_value(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's key (RFC 6455, section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def switching_protocols(key: str) -> bytes:
    """The 101 answer; no subprotocol and no extension (so frames are sent as encoded)."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_value(key)}\r\n"
        "\r\n"
    ).encode()


def server_socket(environ: Mapping[str, Any]) -> socket.socket:
    """The client connection under this request (gunicorn's or Werkzeug's).

    :raises HandshakeError: 500 under a server that does not expose it.
    """
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        raise HandshakeError(
            500, "this WSGI server does not expose its sockets; run the app with ipc-explorer"
        )
    if isinstance(sock, ssl.SSLSocket):  # its fd carries TLS records, not WebSocket frames
        raise HandshakeError(
            500, "the feed does not speak TLS itself; put a TLS proxy in front of the server"
        )
    return sock


def take_socket(sock: socket.socket) -> socket.socket:
    """Our own socket for `sock`'s connection; `sock` is left pointing at a closed dummy, so
    whatever the WSGI server still does with it cannot touch the connection (module doc).

    The returned socket is non-blocking and not inherited by children.
    """
    ours = socket.socket(fileno=os.dup(sock.fileno()))
    dummy, peer = socket.socketpair()
    try:
        os.dup2(dummy.fileno(), sock.fileno(), inheritable=False)
    finally:
        dummy.close()
        peer.close()
    ours.setblocking(False)
    return ours
