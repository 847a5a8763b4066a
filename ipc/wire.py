"""The wire format: encoding and decoding only, no I/O.

Two framings, chosen per channel:

``json`` (default, Node's own ``NODE_CHANNEL_SERIALIZATION_MODE=json``)::

    <one JSON document, UTF-8, no raw newline inside> 0x0A

  Exactly what Node writes for ``process.send()`` (``JSON.stringify(msg) + '\\n'``), so a Node
  child or parent reads us unchanged. JSON never contains a raw newline, so the newline is an
  unambiguous frame end. Node's internal messages (``{"cmd": "NODE_..."}``) are not user
  messages; the decoder drops them, as Node does.

``binary`` (Python to Python, for large or binary payloads)::

    +-----------------------+-----------+-------------------+
    | length: uint32 BE     | type: 1 B | payload (length)  |
    +-----------------------+-----------+-------------------+
    type b"J": payload is a UTF-8 JSON document;  type b"B": payload is raw bytes

  No scanning for a delimiter and no escaping: a 64 MiB bytes payload costs one copy.

Both enforce ``max_size``: an encoder refuses a larger message, a decoder raises
`MessageTooLargeError` as soon as a frame is known to be too large (before buffering it).
"""

from __future__ import annotations

import json
import struct
import threading
from json.encoder import c_make_encoder, encode_basestring

from .errors import InvalidArgumentError, MessageTooLargeError, ProtocolError, SerializationError

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024
SERIALIZATIONS: Final = ("json", "binary")

_HEADER = struct.Struct(">IB")
_TYPE_JSON = ord("J")
_TYPE_BYTES = ord("B")
# A tuple, not `bytes | bytearray | memoryview`: that expression builds a union object on
# every call (~0.1 µs of every send).
_BYTES_TYPES = (bytes, bytearray, memoryview)
_json_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_json_decoder = json.JSONDecoder()
# The C scanner behind _json_decoder: one call decodes a whole document. `JSONDecoder.decode`
# adds two regex whitespace matches and a Python frame per message; we call the scanner
# directly and fall back to `decode` (for its exact errors) when the line is not plain JSON.
_scan_once = _json_decoder.scan_once
# What `bytes.strip()` strips (a line of only these is blank); `str.strip()` would also strip
# Unicode spaces, which are not JSON white space.
_JSON_SPACE = " \t\n\r\x0b\x0c"


def check_serialization(serialization: str) -> str:
    if serialization not in SERIALIZATIONS:
        raise InvalidArgumentError(
            f"serialization must be one of {', '.join(map(repr, SERIALIZATIONS))}, "
            f"not {serialization!r} (Node's 'advanced' V8 format is not supported)"
        )
    return serialization


def _new_encoder() -> Callable[[Any, int], tuple[str, ...]]:
    """The C encoder behind `_json_encoder`, with its own circular-reference `markers` dict."""
    return c_make_encoder(
        {}, _json_encoder.default, encode_basestring, None, ":", ",", False, False, False
    )


# One C encoder per thread, made on its first send. `JSONEncoder.encode` builds a new one for
# every message (~0.5 µs of the ~1.2 µs a small message costs). Per thread because its
# `markers` dict holds the ids of the containers being encoded: shared between threads it
# could report a false "Circular reference detected". A failed encode may leave ids behind,
# so that thread's encoder is replaced.
_local = threading.local()


def _dump_json(msg: Any) -> bytes:
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C encoder
        try:
            return _json_encoder.encode(msg).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"message is not JSON-serialisable: {exc}") from exc
    try:
        encoder = _local.encoder
    except AttributeError:
        encoder = _local.encoder = _new_encoder()
    try:
        return "".join(encoder(msg, 0)).encode("utf-8")
    except BaseException as exc:
        _local.encoder = _new_encoder()
        if isinstance(exc, TypeError | ValueError):
            raise SerializationError(f"message is not JSON-serialisable: {exc}") from exc
        raise


def _too_large(size: int, limit: int, data: bytes) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"message of {size} bytes is larger than max_message_size={limit}",
        data,
        size=size,
        limit=limit,
    )


def encode(
    msg: Any, serialization: str = "json", max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes:
    """One message as one frame.

    :raises SerializationError: the message cannot be encoded in this framing.
    :raises MessageTooLargeError: the encoded message is larger than `max_size`.
    """
    if serialization == "json":
        if isinstance(msg, _BYTES_TYPES):
            raise SerializationError(
                "bytes cannot travel over a JSON channel; use serialization='binary' or send a str"
            )
        body = _dump_json(msg)
        if len(body) > max_size:
            raise _too_large(len(body), max_size, body)
        return body + b"\n"
    if serialization == "binary":
        if isinstance(msg, _BYTES_TYPES):
            body, kind = bytes(msg), _TYPE_BYTES
        else:
            body, kind = _dump_json(msg), _TYPE_JSON
        if len(body) > max_size:
            raise _too_large(len(body), max_size, body)
        return _HEADER.pack(len(body), kind) + body
    check_serialization(serialization)
    raise AssertionError("unreachable")


class Decoder:
    """Incremental decoder: `feed()` any chunk, get back every message it completed.

    After an error the decoder is unusable (the stream position is lost); the owner closes
    the channel.
    """

    def __init__(
        self, serialization: str = "json", max_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        self.serialization = check_serialization(serialization)
        self.max_size = max_size
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Any]:
        """Add `data`; return the messages it completes, in order.

        :raises ProtocolError: a frame is malformed (with its first bytes); its `messages`
            attribute holds the complete messages that came before the bad frame.
        :raises MessageTooLargeError: a frame is larger than `max_size`.
        """
        messages: list[Any] = []
        try:
            if self.serialization == "json":
                self._feed_json(data, messages)
            else:
                self._buffer += data
                self._feed_binary(messages)
        except ProtocolError as exc:
            exc.messages = messages  # complete frames ahead of the bad one still count
            raise
        return messages

    def _feed_json(self, data: bytes, messages: list[Any]) -> None:
        """Split on newlines and decode each line.

        The common case (the chunk holds whole frames and nothing is pending) splits `data`
        itself: no copy into the buffer and out again. Only a partial frame is buffered; while
        one is, each new chunk is searched for its end once (never the buffer again), so a
        large frame arriving in many reads costs linear time.
        """
        buffer = self._buffer
        if buffer:
            if data.find(b"\n") < 0:
                buffer += data
                if len(buffer) > self.max_size:
                    raise _too_large(len(buffer), self.max_size, bytes(buffer))
                return
            buffer += data
            data = buffer
            self._buffer = bytearray()
        lines = data.split(b"\n")
        tail = lines.pop()
        max_size = self.max_size
        for line in lines:
            if len(line) > max_size:
                raise _too_large(len(line), max_size, bytes(line))
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"frame is not valid JSON: {exc}", bytes(line)) from exc
            try:
                msg, end = _scan_once(text, 0)
            except (StopIteration, ValueError):
                end = -1
            if end != len(text):  # blank, surrounding white space, trailing data or bad JSON
                if not text.strip(_JSON_SPACE):
                    continue
                try:
                    msg = _json_decoder.decode(text)
                except ValueError as exc:
                    raise ProtocolError(f"frame is not valid JSON: {exc}", bytes(line)) from exc
            if type(msg) is dict and "cmd" in msg and str(msg["cmd"]).startswith("NODE_"):
                continue  # Node's internal message (handles, cluster): not for the user
            messages.append(msg)
        if tail:
            self._buffer += tail
            if len(tail) > max_size:
                raise _too_large(len(tail), max_size, bytes(tail))

    def _feed_binary(self, messages: list[Any]) -> None:
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= _HEADER.size:
            size, kind = _HEADER.unpack_from(buffer, start)
            if size > self.max_size:
                raise _too_large(size, self.max_size, bytes(buffer[start : start + 64]))
            if kind not in (_TYPE_JSON, _TYPE_BYTES):
                raise ProtocolError(
                    f"unknown frame type byte {kind:#04x} (expected 'J' or 'B')",
                    bytes(buffer[start : start + 64]),
                )
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            body = bytes(buffer[start + _HEADER.size : end])
            start = end
            if kind == _TYPE_BYTES:
                messages.append(body)
                continue
            try:
                messages.append(_json_decoder.decode(body.decode("utf-8")))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ProtocolError(f"frame is not valid JSON: {exc}", body) from exc
        if start:
            del buffer[:start]
