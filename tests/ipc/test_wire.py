"""The wire format without processes: framing, splitting, limits, malformed input.

These pin the byte layout documented in docs/ipc.md, because a Node peer depends on the JSON
framing being exactly `JSON + "\\n"` and Python peers on the binary header being exactly
`uint32 BE length + type byte`.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ipctest import NODE, depth_of, needs_node, nested

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


def refused(entries: list[Any]) -> list[ipc.ProtocolError]:
    return [e for e in entries if isinstance(e, ipc.ProtocolError)]


def test_json_decoder_refuses_an_oversize_line_before_its_newline() -> None:
    """A peer that never sends a newline must not make us buffer without bound; the rest of
    that line is dropped as it comes, and the next line is a message again."""
    decoder = wire.Decoder("json", max_size=1000)
    entries: list[Any] = []
    for _ in range(100):
        entries += decoder.feed(b"x" * 100)
        assert decoder.pending <= 1000
    (error,) = refused(entries)
    assert isinstance(error, ipc.MessageTooLargeError)
    assert error.data.startswith(b"xxxx")
    assert decoder.feed(b"xxx\n" + b'"next"\n') == ["next"]


def test_json_decoder_refuses_an_oversize_complete_line() -> None:
    decoder = wire.Decoder("json", max_size=10)
    entries = decoder.feed(b'1\n"0123456789abcdef"\n2\n')
    assert entries[0] == 1 and entries[2] == 2
    assert isinstance(entries[1], ipc.MessageTooLargeError)
    assert entries[1].data.startswith(b'"0123456789')
    assert decoder.specials == 1


def test_binary_decoder_refuses_oversize_from_the_header_alone_and_skips_the_frame() -> None:
    decoder = wire.Decoder("binary", max_size=1024)
    entries = decoder.feed(struct.pack(">IB", 2000, ord("B")) + b"abc")
    (error,) = entries
    assert isinstance(error, ipc.MessageTooLargeError)
    assert error.size == 2000
    assert error.data.startswith(struct.pack(">I", 2000))
    assert decoder.pending == 2000 - 3, "the frame's body is dropped as it arrives, not kept"
    assert decoder.feed(b"z" * 1997 + wire.encode("next", "binary")) == ["next"]


def test_bad_json_carries_the_first_bytes_and_costs_only_itself() -> None:
    decoder = wire.Decoder("json")
    entries = decoder.feed(b'"before"\nthis is not json at all\n"after"\n')
    assert entries[0] == "before" and entries[2] == "after"
    error = entries[1]
    assert isinstance(error, ipc.ProtocolError)
    assert not isinstance(error, ipc.MessageTooLargeError)
    assert error.data.startswith(b"this is not json")


def test_invalid_utf8_is_a_protocol_error() -> None:
    (error,) = wire.Decoder("json").feed(b'"\xff\xfe"\n')
    assert isinstance(error, ipc.ProtocolError)


def test_first_bytes_are_bounded() -> None:
    (error,) = wire.Decoder("json").feed(b"garbage" * 10_000 + b"\n")
    assert 0 < len(error.data) <= 1024


def test_binary_unknown_type_byte_loses_the_framing() -> None:
    """The one bad frame that cannot be skipped: raised, with the frames before it."""
    good = wire.encode("good", "binary")
    with pytest.raises(ipc.ProtocolError) as info:
        wire.Decoder("binary").feed(good + struct.pack(">IB", 2, ord("X")) + b"hi")
    assert info.value.data.startswith(b"\x00\x00\x00\x02X")
    assert info.value.messages == ["good"]


def test_binary_bad_json_payload() -> None:
    frame = struct.pack(">IB", 3, ord("J")) + b"{{{"
    entries = wire.Decoder("binary").feed(frame + wire.encode(1, "binary"))
    assert isinstance(entries[0], ipc.ProtocolError)
    assert entries[1] == 1


def test_node_internal_messages_are_marked() -> None:
    """Node sends {"cmd": "NODE_..."} on the same channel (handles, cluster): the decoder marks
    them `Internal`, by Node's own rule: a *string* cmd *longer* than "NODE_"."""
    decoder = wire.Decoder("json")
    entries = decoder.feed(
        b'{"cmd":"NODE_HANDLE_ACK"}\n{"cmd":"user"}\n{"cmd":"NODE_"}\n{"cmd":5}\n'
        b'["NODE_X"]\n{"cmd":"NODE_CLUSTER","x":1}\n'
    )
    assert decoder.specials == 2
    internal = [e.message for e in entries if isinstance(e, wire.Internal)]
    assert internal == [{"cmd": "NODE_HANDLE_ACK"}, {"cmd": "NODE_CLUSTER", "x": 1}]
    plain = [e for e in entries if not isinstance(e, wire.Internal)]
    assert plain == [{"cmd": "user"}, {"cmd": "NODE_"}, {"cmd": 5}, ["NODE_X"]]


def test_blank_lines_are_ignored() -> None:
    assert wire.Decoder("json").feed(b"\n1\n\n2\n") == [1, 2]


def test_unknown_serialization_is_an_invalid_argument() -> None:
    with pytest.raises(ipc.InvalidArgumentError) as info:
        wire.Decoder("advanced")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ipc.InvalidArgumentError):
        wire.encode(1, "pickle")


# --- depth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serialization", "depth"),
    [("json", 1500), ("binary", 1500), ("json", 5000), ("binary", 5000), ("json", wire.MAX_DEPTH)],
)
def test_deep_nesting_round_trips_with_the_frames_around_it(serialization: str, depth: int) -> None:
    """CPython's C codec stops near 1,000 levels; Node decodes any depth and encodes ~4,000."""
    stream = b"".join(
        wire.encode(m, serialization) for m in ("before", nested(depth), {"o": nested(depth - 1)})
    )
    decoder = wire.Decoder(serialization)
    entries = decoder.feed(stream + wire.encode("after", serialization))
    assert decoder.specials == 0
    assert entries[0] == "before" and entries[3] == "after"
    assert depth_of(entries[1]) == depth
    assert depth_of(entries[2]["o"]) == depth - 1  # and the object around it: `depth` levels


def test_deep_encoding_is_byte_identical_to_the_c_encoder() -> None:
    value = {"a": [1, 2.5, None, True, "x\n\u2028", {"k": []}], 3: {}, "deep": nested(50)}
    assert wire._dumps_deep(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_past_max_depth_a_frame_is_refused_by_name_and_the_stream_goes_on(
    serialization: str,
) -> None:
    too_deep = b"[" * (wire.MAX_DEPTH + 1) + b"]" * (wire.MAX_DEPTH + 1)
    frame = too_deep + b"\n" if serialization == "json" else _binary_json(too_deep)
    decoder = wire.Decoder(serialization)
    entries = decoder.feed(
        wire.encode("before", serialization) + frame + wire.encode("after", serialization)
    )
    assert entries[0] == "before" and entries[2] == "after"
    error = entries[1]
    assert isinstance(error, ipc.ProtocolError)
    assert f"more than {wire.MAX_DEPTH} levels" in str(error)
    assert error.data.startswith(b"[[[[")


def _binary_json(body: bytes) -> bytes:
    return struct.pack(">IB", len(body), ord("J")) + body


def test_past_max_depth_a_message_is_not_encoded() -> None:
    with pytest.raises(ipc.SerializationError) as info:
        wire.encode(nested(wire.MAX_DEPTH + 1))
    assert f"more than {wire.MAX_DEPTH} levels" in str(info.value)


def test_deep_circular_message_is_a_serialization_error() -> None:
    inner = nested(3000)
    outer = [inner]
    probe = inner
    while probe:
        probe = probe[0]
    probe.append(outer)
    with pytest.raises(ipc.SerializationError, match="Circular"):
        wire.encode(outer)


# --- lone surrogates -------------------------------------------------------------------------

SURROGATE_SAMPLES: list[Any] = [
    "\ud800",
    "a\udc00b",
    "\ud83d\ude00",  # a pair, as two code points: the character it stands for
    "\ude00\ud83d",  # the wrong order: two lone surrogates
    {"\udbffkey": ["x\udfff", "ok"]},
    "\x1b\u2028 plain",
]


def test_lone_surrogates_are_escaped_as_json_stringify_does() -> None:
    assert wire.encode("\ud800") == b'"\\ud800"\n'
    assert wire.encode({"k\udc00": 1}) == b'{"k\\udc00":1}\n'
    assert wire.encode("\ud83d\ude00") == '"😀"\n'.encode()
    assert wire.Decoder().feed(wire.encode("a\ud800b")) == ["a\ud800b"]


@needs_node
def test_encoding_is_byte_identical_to_node_json_stringify(tmp_path: Path) -> None:
    """The same strings, built from UTF-16 code units in Node, stringified there."""
    script = tmp_path / "stringify.js"
    script.write_text(
        "const samples = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "for (const s of samples) process.stdout.write(JSON.stringify(s) + '\\n');\n"
    )
    source = json.dumps(SURROGATE_SAMPLES)  # ASCII escapes: Node reads the same code units
    node = subprocess.run(
        [str(NODE), str(script)], input=source.encode(), capture_output=True, check=True
    )
    ours = b"".join(wire.encode(sample) for sample in SURROGATE_SAMPLES)
    assert ours == node.stdout


def test_dumps_and_loads_are_the_wire_codec_as_text() -> None:
    """For code that shows or stores messages: any depth, surrogates escaped, as sent."""
    value = {"deep": nested(3000), "lone": "\ud800"}
    text = wire.dumps(value)
    assert text.encode() + b"\n" == wire.encode(value)
    back = wire.loads(text)  # (== on it would recurse too deep: compared by parts)
    assert back["lone"] == "\ud800" and depth_of(back["deep"]) == 3000


# --- feed_split: which frames began in this read (pairing fds with their frame) ---------


def plain(entries: list[Any]) -> list[Any]:
    return [e.message if isinstance(e, wire.Internal) else e for e in entries]


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_feed_split_tells_frames_begun_earlier_from_those_begun_here(serialization: str) -> None:
    one, two, three = (wire.encode(m, serialization) for m in ({"a": 1}, "two", [3] * 50))
    decoder = wire.Decoder(serialization)
    assert decoder.feed_split(one + two[:3]) == ([], [{"a": 1}], "new")
    assert decoder.feed_split(two[3:5]) == ([], [], "old")  # still inside "two"
    assert decoder.feed_split(two[5:] + three[:2]) == (["two"], [], "new")
    assert decoder.feed_split(three[2:]) == ([[3] * 50], [], "")
    assert decoder.feed_split(one) == ([], [{"a": 1}], "")


def test_feed_split_binary_with_a_header_cut_in_two() -> None:
    frame = wire.encode("x" * 1000, "binary")
    decoder = wire.Decoder("binary")
    assert decoder.feed_split(frame[:2]) == ([], [], "new")
    assert decoder.feed_split(frame[2:600]) == ([], [], "old")
    assert decoder.feed_split(frame[600:] + frame) == (["x" * 1000], ["x" * 1000], "")


def test_feed_split_a_blank_line_begun_earlier_makes_no_entry() -> None:
    decoder = wire.Decoder("json")
    assert decoder.feed_split(b"  ") == ([], [], "new")
    assert decoder.feed_split(b" \n" + wire.encode("next")) == ([], ["next"], "")


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_feed_split_past_a_refused_frame(serialization: str) -> None:
    big = wire.encode("y" * 200, serialization)
    decoder = wire.Decoder(serialization, max_size=100)
    earlier, here, tail = decoder.feed_split(big[:120])
    # refused as it came: its entry is here, and nothing waits to be completed
    assert earlier == [] and tail == ""
    assert [type(e) for e in here] == [ipc.MessageTooLargeError]
    assert decoder.feed_split(big[120:150]) == ([], [], "old")  # the rest is being skipped
    assert decoder.feed_split(big[150:] + wire.encode("ok", serialization)) == ([], ["ok"], "")


def test_feed_split_counts_specials_of_both_parts() -> None:
    handle = wire.encode({"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": 1})
    decoder = wire.Decoder("json")
    decoder.feed_split(handle[:5])
    earlier, here, tail = decoder.feed_split(handle[5:] + handle)
    assert plain(earlier) == plain(here) == [{"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": 1}]
    assert decoder.specials == 2 and tail == ""
