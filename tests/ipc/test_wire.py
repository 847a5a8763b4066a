"""The wire format without processes: framing, splitting, limits, malformed input.

These pin the byte layout documented in docs/ipc.md, because a Node peer depends on the JSON
framing being exactly `JSON + "\\n"` and Python peers on the binary header being exactly
`uint32 BE length + type byte`.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

import ipc
from ipc import wire

SAMPLES: list[Any] = [
    "开始计算",
    50005000,
    -1.5,
    True,
    None,
    [],
    {"min": 0, "max": 10000},
    {"nested": {"list": [1, "two", {"three": [3.0]}], "emoji": "🙂", "nl": "a\nb"}},
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_json_frame_is_node_json_lines(msg: Any) -> None:
    frame = wire.encode(msg)
    assert frame.endswith(b"\n")
    assert frame.count(b"\n") == 1, "a raw newline inside a JSON frame would split it for Node"
    assert json.loads(frame) == msg
    assert wire.Decoder().feed(frame) == [msg]


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_round_trip_every_sample(serialization: str) -> None:
    decoder = wire.Decoder(serialization)
    stream = b"".join(wire.encode(m, serialization) for m in SAMPLES)
    assert decoder.feed(stream) == SAMPLES
    assert decoder.pending == 0


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_split_frames_byte_by_byte(serialization: str) -> None:
    """A frame cut anywhere (even one byte at a time) decodes once, when its last byte arrives."""
    msg = {"text": "ünïcødé 开始计算", "n": list(range(20))}
    frame = wire.encode(msg, serialization)
    decoder = wire.Decoder(serialization)
    out: list[Any] = []
    for i in range(len(frame)):
        got = decoder.feed(frame[i : i + 1])
        if i < len(frame) - 1:
            assert got == [], f"decoded early at byte {i}"
        out.extend(got)
    assert out == [msg]


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_many_frames_in_one_chunk_and_a_partial_tail(serialization: str) -> None:
    msgs = [{"i": i} for i in range(1000)]
    stream = b"".join(wire.encode(m, serialization) for m in msgs)
    tail = wire.encode({"i": "tail"}, serialization)
    decoder = wire.Decoder(serialization)
    assert decoder.feed(stream + tail[:3]) == msgs
    assert decoder.pending == 3
    assert decoder.feed(tail[3:]) == [{"i": "tail"}]
    assert decoder.pending == 0


def test_binary_header_layout_and_bytes_payload() -> None:
    payload = bytes(range(256)) * 4
    frame = wire.encode(payload, "binary")
    assert frame[:5] == struct.pack(">IB", len(payload), ord("B"))
    assert frame[5:] == payload
    decoded = wire.Decoder("binary").feed(frame)
    assert decoded == [payload]
    assert isinstance(decoded[0], bytes)

    frame = wire.encode({"a": 1}, "binary")
    assert frame[4:5] == b"J"
    assert json.loads(frame[5:]) == {"a": 1}


def test_binary_carries_a_1_mib_bytes_payload_with_newlines() -> None:
    payload = (b"\n\x00\xff" * 400_000)[: 1024 * 1024]
    decoder = wire.Decoder("binary")
    frame = wire.encode(payload, "binary")
    out: list[Any] = []
    for i in range(0, len(frame), 65536):
        out.extend(decoder.feed(frame[i : i + 65536]))
    assert out == [payload]


def test_bytes_over_json_is_refused() -> None:
    with pytest.raises(ipc.SerializationError):
        wire.encode(b"raw", "json")


@pytest.mark.parametrize("bad", [{1, 2}, object(), float("nan")], ids=["set", "object", "nan"])
def test_unserialisable_message(bad: Any) -> None:
    with pytest.raises(ipc.SerializationError) as info:
        wire.encode(bad)
    assert isinstance(info.value, TypeError), "SerializationError is documented as a TypeError"


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_encoder_enforces_max_size(serialization: str) -> None:
    assert wire.encode("x" * 98, serialization, max_size=100)  # 100 bytes with the quotes
    with pytest.raises(ipc.MessageTooLargeError) as info:
        wire.encode("x" * 200, serialization, max_size=100)
    assert info.value.limit == 100
    assert info.value.size > 100


def test_json_decoder_refuses_an_oversize_line_before_its_newline() -> None:
    """A peer that never sends a newline must not make us buffer without bound."""
    decoder = wire.Decoder("json", max_size=1000)
    with pytest.raises(ipc.MessageTooLargeError) as info:
        for _ in range(100):
            decoder.feed(b"x" * 100)
    assert info.value.data.startswith(b"xxxx")
    assert isinstance(info.value, ipc.ProtocolError)


def test_json_decoder_refuses_an_oversize_complete_line() -> None:
    decoder = wire.Decoder("json", max_size=10)
    with pytest.raises(ipc.MessageTooLargeError) as info:
        decoder.feed(b'"0123456789abcdef"\n')
    assert info.value.data.startswith(b'"0123456789')


def test_binary_decoder_refuses_oversize_from_the_header_alone() -> None:
    decoder = wire.Decoder("binary", max_size=1024)
    with pytest.raises(ipc.MessageTooLargeError) as info:
        decoder.feed(struct.pack(">IB", 1 << 30, ord("B")) + b"abc")
    assert info.value.size == 1 << 30
    assert info.value.data.startswith(struct.pack(">I", 1 << 30))


def test_bad_json_carries_the_first_bytes() -> None:
    decoder = wire.Decoder("json")
    with pytest.raises(ipc.ProtocolError) as info:
        decoder.feed(b"this is not json at all\n")
    assert not isinstance(info.value, ipc.MessageTooLargeError)
    assert info.value.data.startswith(b"this is not json")


def test_invalid_utf8_is_a_protocol_error() -> None:
    with pytest.raises(ipc.ProtocolError):
        wire.Decoder("json").feed(b'"\xff\xfe"\n')


def test_first_bytes_are_bounded() -> None:
    with pytest.raises(ipc.ProtocolError) as info:
        wire.Decoder("json").feed(b"garbage" * 10_000 + b"\n")
    assert 0 < len(info.value.data) <= 1024


def test_binary_unknown_type_byte() -> None:
    with pytest.raises(ipc.ProtocolError) as info:
        wire.Decoder("binary").feed(struct.pack(">IB", 2, ord("X")) + b"hi")
    assert info.value.data.startswith(b"\x00\x00\x00\x02X")


def test_binary_bad_json_payload() -> None:
    with pytest.raises(ipc.ProtocolError):
        wire.Decoder("binary").feed(struct.pack(">IB", 3, ord("J")) + b"{{{")


def test_node_internal_messages_are_not_user_messages() -> None:
    """Node sends {"cmd": "NODE_..."} on the same channel (handles, cluster); they are dropped."""
    decoder = wire.Decoder("json")
    assert decoder.feed(b'{"cmd":"NODE_HANDLE_ACK"}\n{"cmd":"user"}\n') == [{"cmd": "user"}]


def test_blank_lines_are_ignored() -> None:
    assert wire.Decoder("json").feed(b"\n1\n\n2\n") == [1, 2]


def test_unknown_serialization_is_an_invalid_argument() -> None:
    with pytest.raises(ipc.InvalidArgumentError) as info:
        wire.Decoder("advanced")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ipc.InvalidArgumentError):
        wire.encode(1, "pickle")
