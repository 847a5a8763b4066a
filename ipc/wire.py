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

from .errors import InvalidArgumentError, MessageTooLargeError, ProtocolError, SerializationError

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from typing import Any, Final

DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024
SERIALIZATIONS: Final = ("json", "binary")

_HEADER = struct.Struct(">IB")
_TYPE_JSON = ord("J")
_TYPE_BYTES = ord("B")
_json_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_json_decoder = json.JSONDecoder()


def check_serialization(serialization: str) -> str:
    if serialization not in SERIALIZATIONS:
        raise InvalidArgumentError(
            f"serialization must be one of {', '.join(map(repr, SERIALIZATIONS))}, "
            f"not {serialization!r} (Node's 'advanced' V8 format is not supported)"
        )
    return serialization


def _dump_json(msg: Any) -> bytes:
    try:
        return _json_encoder.encode(msg).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"message is not JSON-serialisable: {exc}") from exc


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
        if isinstance(msg, bytes | bytearray | memoryview):
            raise SerializationError(
                "bytes cannot travel over a JSON channel; use serialization='binary' or send a str"
            )
        body = _dump_json(msg)
        if len(body) > max_size:
            raise _too_large(len(body), max_size, body)
        return body + b"\n"
    if serialization == "binary":
        if isinstance(msg, bytes | bytearray | memoryview):
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
        self._scanned = 0  # json: bytes of _buffer already known to hold no newline

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
        self._buffer += data
        messages: list[Any] = []
        try:
            if self.serialization == "json":
                self._feed_json(messages)
            else:
                self._feed_binary(messages)
        except ProtocolError as exc:
            exc.messages = messages  # complete frames ahead of the bad one still count
            raise
        return messages

    def _feed_json(self, messages: list[Any]) -> None:
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", max(start, self._scanned))
            if end < 0:
                break
            self._scanned = 0
            line = bytes(buffer[start:end])
            start = end + 1
            if len(line) > self.max_size:
                raise _too_large(len(line), self.max_size, line)
            if not line.strip():
                continue
            try:
                msg = _json_decoder.decode(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ProtocolError(f"frame is not valid JSON: {exc}", line) from exc
            if isinstance(msg, dict) and str(msg.get("cmd", "")).startswith("NODE_"):
                continue  # Node's internal message (handles, cluster): not for the user
            messages.append(msg)
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        if len(buffer) > self.max_size:
            raise _too_large(len(buffer), self.max_size, bytes(buffer))

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
