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

Both enforce ``max_size``: an encoder refuses a larger message; a decoder reports
`MessageTooLargeError` as soon as a frame is known to be too large, and skips the rest of that
frame without buffering it (to its newline; by its length).

A bad frame costs only itself. Where its end is known (a JSON line; a binary frame, by its
length) `Decoder.feed` returns a `ProtocolError` in its place and goes on with the next frame,
so the frames before and after it in the same read are delivered. Only a binary header with an
unknown type byte loses the framing: that one is raised, and the owner closes the channel.
(Node has no such rule: `JSON.parse` throws inside its channel's read callback and the process
dies of an uncaught exception.)

Node-exact details:

* Internal messages. Node reserves ``{"cmd": "NODE_<name>"}`` (a *string* cmd longer than the
  prefix: ``{"cmd": "NODE_"}`` is an ordinary message) for itself (handles, cluster). The
  decoder returns them wrapped in `Internal`, so the channel can consume or re-emit them.
* Depth. V8's `JSON.parse` has no depth limit and `JSON.stringify` gives up at about 4,000
  levels; CPython's C codec stops at the recursion limit (1,000). Deeper documents go through an
  iterative codec here, up to `MAX_DEPTH` levels; a deeper frame is a `ProtocolError` naming
  the depth, a deeper message a `SerializationError`.
* Lone surrogates. ``"\ud800"`` is not encodable as UTF-8; like `JSON.stringify` we write it
  as the escape ``\ud800`` (and a surrogate pair as the character it stands for), so any str
  can be sent. Only messages that contain one pay for this.
"""

from __future__ import annotations

import json
import struct
import threading
from json.decoder import scanstring
from json.encoder import c_make_encoder, encode_basestring

from .errors import InvalidArgumentError, MessageTooLargeError, ProtocolError, SerializationError

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024
SERIALIZATIONS: Final = ("json", "binary")
#: The deepest nesting of arrays and objects a message may have, both ways. Node decodes any
#: depth and encodes about 4,000 levels; this is well past what Node can send.
MAX_DEPTH: Final = 100_000
#: Node's prefix of internal messages (`lib/internal/child_process.js`, `isInternal`).
INTERNAL_PREFIX: Final = "NODE_"

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


class Internal:
    """One of Node's internal messages (``{"cmd": "NODE_..."}``), as `Decoder.feed` returns it."""

    __slots__ = ("message",)

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message

    @property
    def cmd(self) -> str:
        return self.message["cmd"]

    def __repr__(self) -> str:
        return f"Internal({self.message!r})"


def is_internal(msg: Any) -> bool:
    """Node's `isInternal`: a dict whose ``cmd`` is a str longer than ``"NODE_"`` and starts
    with it."""
    if type(msg) is not dict:
        return False
    cmd = msg.get("cmd")
    return type(cmd) is str and len(cmd) > 5 and cmd.startswith(INTERNAL_PREFIX)


def check_serialization(serialization: str) -> str:
    if serialization not in SERIALIZATIONS:
        raise InvalidArgumentError(
            f"serialization must be one of {', '.join(map(repr, SERIALIZATIONS))}, "
            f"not {serialization!r} (Node's 'advanced' V8 format is not supported)"
        )
    return serialization


# ---- encoding -------------------------------------------------------------------------------


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


def dumps(msg: Any) -> str:
    """`msg` as the JSON text we send for it (what Node's `JSON.stringify` writes), without the
    newline: any depth up to `MAX_DEPTH`, lone surrogates escaped. For code that shows or stores
    messages (`json.dumps` stops near 1,000 levels and leaves surrogates unencodable).

    :raises SerializationError: not JSON-serialisable, NaN, circular, or deeper than MAX_DEPTH.
    """
    return _dump_json(msg).decode("utf-8")


def _dumps_text(msg: Any) -> str:
    """`msg` as JSON text, lone surrogates left in it; the C encoder, or the iterative one when
    the message is nested deeper than the recursion limit."""
    try:
        encoder = _local.encoder
    except AttributeError:
        encoder = _local.encoder = _new_encoder()
    try:
        return "".join(encoder(msg, 0))
    except RecursionError:
        _local.encoder = _new_encoder()
        return _dumps_deep(msg)
    except BaseException as exc:
        _local.encoder = _new_encoder()
        if isinstance(exc, TypeError | ValueError):
            raise SerializationError(f"message is not JSON-serialisable: {exc}") from exc
        raise


def _dump_json(msg: Any) -> bytes:
    """`msg` as UTF-8 JSON, lone surrogates escaped. (The C encoder is called here, not through
    `_dumps_text`: this is every message's path, and a Python call costs more than the C
    encoder for a small message.)"""
    try:
        encoder = _local.encoder
    except AttributeError:
        encoder = _local.encoder = _new_encoder()
    try:
        text = "".join(encoder(msg, 0))
    except BaseException:
        # A failed encode may leave ids in the encoder's `markers`: a fresh one, then the rare
        # cases (too deep for C recursion, errors) in one place.
        _local.encoder = _new_encoder()
        text = _dumps_text(msg)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only such messages get here
        return _escape_surrogates(text).encode("utf-8")


_surrogates: Any = None


def _escape_surrogates(text: str) -> str:
    """A surrogate pair becomes its character, a lone surrogate the escape ``\\udXXX``: what
    `JSON.stringify` writes for the same UTF-16 string (lowercase hex, as ECMAScript says)."""
    global _surrogates
    if _surrogates is None:
        import re

        _surrogates = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")

    def replace(match: Any) -> str:
        found = match.group()
        if len(found) == 2:
            return found.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        return f"\\u{ord(found):04x}"

    return _surrogates.sub(replace, text)


def _encode_key(key: Any) -> str:
    """A dict key as the C encoder writes it (str, float, bool, None and int keys only)."""
    if isinstance(key, str):
        return encode_basestring(key)
    if isinstance(key, float):
        return encode_basestring(_encode_float(key))
    if key is True or key is False or key is None:
        return '"' + ("true" if key else "false" if key is False else "null") + '"'
    if isinstance(key, int):
        return '"' + int.__repr__(key) + '"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _encode_float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("Out of range float values are not JSON compliant: " + repr(value))
    return float.__repr__(value)


def _encode_scalar(value: Any) -> str:
    """Everything but a list, tuple or dict, exactly as the C encoder writes it."""
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _encode_float(value)
    return _json_encoder.default(value)  # raises TypeError, as the C encoder's default does


def _dumps_deep(msg: Any) -> str:
    """The C encoder's output, made without recursion: for messages nested deeper than the
    interpreter's recursion limit (up to `MAX_DEPTH`)."""
    out: list[str] = []
    # Each frame: (iterator over the container's items, is_dict, container id); the ids on
    # the stack are the containers being written, for the circular-reference check.
    stack: list[tuple[Any, bool, int]] = []
    open_ids: set[int] = set()
    try:
        value: Any = msg
        while True:
            if isinstance(value, list | tuple | dict):
                if len(stack) >= MAX_DEPTH:
                    raise SerializationError(
                        f"message is nested more than {MAX_DEPTH} levels deep "
                        "(ipc.wire.MAX_DEPTH); Node could not encode it either"
                    )
                ident = id(value)
                if ident in open_ids:
                    raise ValueError("Circular reference detected")
                is_dict = isinstance(value, dict)
                items = iter(value.items() if is_dict else value)
                out.append("{" if is_dict else "[")
                stack.append((items, is_dict, ident))
                open_ids.add(ident)
                first = True
            else:
                out.append(_encode_scalar(value))
                first = False
            # find the next value to write, closing every container that has none left
            while stack:
                items, is_dict, ident = stack[-1]
                try:
                    item = next(items)
                except StopIteration:
                    stack.pop()
                    open_ids.discard(ident)
                    out.append("}" if is_dict else "]")
                    first = False
                    continue
                if not first:
                    out.append(",")
                if is_dict:
                    out.append(_encode_key(item[0]) + ":")
                    value = item[1]
                else:
                    value = item
                break
            else:
                return "".join(out)
    except SerializationError:
        raise
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


# ---- decoding -------------------------------------------------------------------------------


class _TooDeep(ValueError):
    pass


def _skip_space(text: str, idx: int) -> int:
    while idx < len(text) and text[idx] in " \t\n\r":
        idx += 1
    return idx


def _loads_deep(text: str) -> Any:
    """`json.loads(text)` without recursion, for documents nested deeper than the recursion
    limit lets the C scanner go; refuses more than `MAX_DEPTH` levels.

    Containers are walked here; every other value (string, number, literal) is read by the C
    scanner, so values come out exactly as `json.loads` makes them.

    :raises ValueError: not one valid JSON document (`_TooDeep` when nested too deep).
    """
    # Each open container: [the container, the key its next value goes under (objects)]
    stack: list[list[Any]] = []
    idx = _skip_space(text, 0)
    while True:
        char = text[idx : idx + 1]
        if char == "[" or char == "{":
            if len(stack) >= MAX_DEPTH:
                raise _TooDeep(f"nested more than {MAX_DEPTH} levels deep at char {idx}")
            closer = "]" if char == "[" else "}"
            idx = _skip_space(text, idx + 1)
            if text[idx : idx + 1] == closer:
                value: Any = [] if char == "[" else {}
                idx += 1
            else:
                frame: list[Any] = [[] if char == "[" else {}, None]
                stack.append(frame)
                if char == "{":
                    frame[1], idx = _read_key(text, idx)
                continue  # read the container's first value
        else:
            try:
                value, idx = _scan_once(text, idx)
            except StopIteration:
                raise ValueError(f"Expecting value: char {idx}") from None
        # `value` is complete: put it in its container; close the containers that end here
        while True:
            if not stack:
                if _skip_space(text, idx) != len(text):
                    raise ValueError(f"Extra data: char {idx}")
                return value
            frame = stack[-1]
            container = frame[0]
            if type(container) is list:
                container.append(value)
            else:
                container[frame[1]] = value
            idx = _skip_space(text, idx)
            char = text[idx : idx + 1]
            if char == ",":
                idx = _skip_space(text, idx + 1)
                if type(container) is dict:
                    frame[1], idx = _read_key(text, idx)
                break  # read the next value
            if char != ("]" if type(container) is list else "}"):
                raise ValueError(f"Expecting ',' delimiter: char {idx}")
            idx += 1
            stack.pop()
            value = container


def _read_key(text: str, idx: int) -> tuple[str, int]:
    """An object's key and its colon at `idx`; returns the key and where its value starts."""
    if text[idx : idx + 1] != '"':
        raise ValueError(f"Expecting property name enclosed in double quotes: char {idx}")
    key, idx = scanstring(text, idx + 1)
    idx = _skip_space(text, idx)
    if text[idx : idx + 1] != ":":
        raise ValueError(f"Expecting ':' delimiter: char {idx}")
    return key, _skip_space(text, idx + 1)


def _bad_json(exc: Exception, line: bytes) -> ProtocolError:
    if isinstance(exc, _TooDeep):
        return ProtocolError(
            f"frame is {exc} (ipc.wire.MAX_DEPTH = {MAX_DEPTH}); the frame was skipped", line
        )
    return ProtocolError(f"frame is not valid JSON: {exc}", line)


def loads(text: str) -> Any:
    """One JSON document, any depth up to `MAX_DEPTH` (`json.loads` stops near 1,000).

    :raises ValueError: not one valid JSON document, or nested deeper than MAX_DEPTH.
    """
    try:
        return _json_decoder.decode(text)
    except RecursionError:
        return _loads_deep(text)


class Decoder:
    """Incremental decoder: `feed()` any chunk, get back every frame it completed.

    A bad frame whose end is known is returned in its place as a `ProtocolError` and the
    stream goes on (see the module docstring); only a lost framing is raised, after which the
    decoder is unusable and the owner closes the channel.
    """

    def __init__(
        self, serialization: str = "json", max_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        self.serialization = check_serialization(serialization)
        self.max_size = max_size
        self._buffer = bytearray()
        #: How many entries of the last `feed()` result are not plain messages (`Internal` or
        #: `ProtocolError`): 0 on the common path, so the owner looks at each entry only then.
        self.specials = 0
        self._skip = 0  # binary: bytes of a refused frame still to drop
        self._skipping_line = False  # json: dropping a refused line up to its newline

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete frame (or are being skipped)."""
        return len(self._buffer) + self._skip

    def feed(self, data: bytes) -> list[Any]:
        """Add `data`; return the frames it completes, in order.

        Each entry is a message, except that Node's internal messages are `Internal`s and bad
        frames `ProtocolError`s (`MessageTooLargeError` for an oversize one), counted in
        `specials`.

        :raises ProtocolError: the framing is lost (a binary frame of unknown type); its
            `messages` attribute holds the entries that came before it.
        """
        messages: list[Any] = []
        self.specials = 0
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

    def feed_split(self, data: bytes) -> tuple[list[Any], list[Any], str]:
        """As `feed`, with the entries split by where their frame began, to pair the file
        descriptors that came with one read (``SCM_RIGHTS``) with the frame they came with.

        Returns ``(earlier, here, tail)``: `earlier`, the entries of the frame that was
        incomplete before `data` if it ended in `data` (none or one: a blank JSON line or the
        rest of a refused frame makes none); `here`, the entries of frames that began in
        `data`; `tail`, what is incomplete now: ``"old"`` (the frame begun earlier goes on, or
        the rest of it is being skipped), ``"new"`` (a frame begun in `data`, whose entry is
        still to come) or ``""`` (nothing; a frame begun and refused in `data` has its entry
        in `here`). `specials` counts both lists.
        Only reads that carry fds come here: the common path is `feed`.

        :raises ProtocolError: as `feed`; its `messages` hold `earlier` and `here` before it.
        """
        end = self._continued_end(data)
        if end < 0:
            return [], self.feed(data), "new" if self._buffer else ""
        if end >= len(data):
            return self.feed(data), [], "old" if self.pending or self._skipping_line else ""
        earlier = self.feed(data[:end])
        specials = self.specials
        try:
            here = self.feed(data[end:])
        except ProtocolError as exc:
            exc.messages = earlier + exc.messages
            raise
        self.specials += specials
        return earlier, here, "new" if self._buffer else ""

    def _continued_end(self, data: bytes) -> int:
        """Where in `data` the frame begun before it ends: -1 when none was under way, past
        the end of `data` when it goes on after it."""
        if self.serialization == "json":
            if not self._buffer and not self._skipping_line:
                return -1
            newline = data.find(b"\n")
            return newline + 1 if newline >= 0 else len(data) + 1
        if self._skip:
            return self._skip
        buffer = self._buffer
        if not buffer:
            return -1
        header = bytes(buffer[: _HEADER.size]) + data[: max(0, _HEADER.size - len(buffer))]
        if len(header) < _HEADER.size:
            return len(data) + 1
        size, _ = _HEADER.unpack(header)
        return _HEADER.size + size - len(buffer)

    def _internal(self, message: dict[str, Any]) -> Internal:
        self.specials += 1
        return Internal(message)

    def _refuse(self, messages: list[Any], error: ProtocolError) -> None:
        messages.append(error)
        self.specials += 1

    def _feed_json(self, data: bytes, messages: list[Any]) -> None:
        """Split on newlines and decode each line.

        The common case (the chunk holds whole frames and nothing is pending) splits `data`
        itself: no copy into the buffer and out again. Only a partial frame is buffered; while
        one is, each new chunk is searched for its end once (never the buffer again), so a
        large frame arriving in many reads costs linear time.
        """
        if self._skipping_line:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._skipping_line = False
            data = data[newline + 1 :]
        buffer = self._buffer
        max_size = self.max_size
        if buffer:
            if data.find(b"\n") < 0:
                buffer += data
                if len(buffer) > max_size:
                    self._refuse_partial_line(messages)
                return
            buffer += data
            data = buffer
            self._buffer = bytearray()
        lines = data.split(b"\n")
        tail = lines.pop()
        for line in lines:
            if len(line) > max_size:
                self._refuse(messages, _too_large(len(line), max_size, bytes(line[:64])))
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._refuse(messages, ProtocolError(f"frame is not valid JSON: {exc}", line))
                continue
            try:
                msg, end = _scan_once(text, 0)
            except (StopIteration, ValueError):
                end = -1
            except RecursionError:
                end = -1  # deeper than the C scanner goes: the iterative decoder below
            if end != len(text):  # blank, surrounding white space, trailing data, bad, deep
                if not text.strip(_JSON_SPACE):
                    continue
                try:
                    msg = loads(text)
                except ValueError as exc:
                    self._refuse(messages, _bad_json(exc, line))
                    continue
            if type(msg) is dict and "cmd" in msg and is_internal(msg):
                msg = self._internal(msg)
            messages.append(msg)
        if tail:
            self._buffer += tail
            if len(tail) > max_size:
                self._refuse_partial_line(messages)

    def _refuse_partial_line(self, messages: list[Any]) -> None:
        """The line being buffered is already over the limit: report it, drop what we have,
        and drop the rest of it as it arrives (up to its newline)."""
        buffer = self._buffer
        self._refuse(messages, _too_large(len(buffer), self.max_size, bytes(buffer[:64])))
        self._buffer = bytearray()
        self._skipping_line = True

    def _feed_binary(self, messages: list[Any]) -> None:
        buffer = self._buffer
        start = 0
        if self._skip:
            dropped = min(self._skip, len(buffer))
            self._skip -= dropped
            start = dropped
        while len(buffer) - start >= _HEADER.size:
            size, kind = _HEADER.unpack_from(buffer, start)
            if kind not in (_TYPE_JSON, _TYPE_BYTES):
                raise ProtocolError(
                    f"unknown frame type byte {kind:#04x} (expected 'J' or 'B'); the framing "
                    "is lost, so the channel is closed",
                    bytes(buffer[start : start + 64]),
                )
            if size > self.max_size:
                self._refuse(
                    messages, _too_large(size, self.max_size, bytes(buffer[start : start + 64]))
                )
                available = len(buffer) - start - _HEADER.size
                dropped = min(size, available)
                self._skip = size - dropped
                start += _HEADER.size + dropped
                continue
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            body = bytes(buffer[start + _HEADER.size : end])
            start = end
            if kind == _TYPE_BYTES:
                messages.append(body)
                continue
            try:
                msg = loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                self._refuse(messages, _bad_json(exc, body))
                continue
            if type(msg) is dict and "cmd" in msg and is_internal(msg):
                msg = self._internal(msg)
            messages.append(msg)
        if start:
            del buffer[:start]
