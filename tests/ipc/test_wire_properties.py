"""Properties of the wire decoder, for any input hypothesis can make up.

* Valid frames decode to the same messages however the stream is cut into reads: a read may
  end anywhere, inside a frame, a UTF-8 character or the binary header.
* Arbitrary bytes either decode or raise `ProtocolError` (`MessageTooLargeError` is one),
  never another exception: a peer that sends garbage must not take the reader down.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ipc import ProtocolError, wire

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
#: Any JSON value but Node's internal messages ({"cmd": "NODE_..."}), which the decoder drops.
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10).filter(lambda k: k != "cmd"), inner, max_size=5)
    ),
    max_leaves=20,
)


def messages_for(serialization: str) -> st.SearchStrategy[list[Any]]:
    one = json_values | st.binary(max_size=64) if serialization == "binary" else json_values
    return st.lists(one, min_size=1, max_size=8)


def decode_in_pieces(stream: bytes, cuts: list[int], serialization: str) -> list[Any]:
    decoder = wire.Decoder(serialization)
    got: list[Any] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        got += decoder.feed(stream[start:cut])
        start = cut
    assert decoder.pending == 0
    return got


@pytest.mark.parametrize("serialization", ["json", "binary"])
@SETTINGS
@given(data=st.data())
def test_any_split_of_valid_frames_decodes_the_same(serialization: str, data: Any) -> None:
    messages = data.draw(messages_for(serialization))
    stream = b"".join(wire.encode(m, serialization) for m in messages)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert decode_in_pieces(stream, cuts, serialization) == messages
    assert decode_in_pieces(stream, list(range(len(stream))), serialization) == messages


@pytest.mark.parametrize("serialization", ["json", "binary"])
@SETTINGS
@given(chunks=st.lists(st.binary(max_size=64), max_size=8))
@example(chunks=[b"\xff\xfe\n"])
@example(chunks=[b'{"a": 1', b"}}\n"])
@example(chunks=[b"\x00\x00\x00\x02Zxx"])
@example(chunks=[b"\x00\x00\x00\x02J\xc3("])
@example(chunks=[b"\xff\xff\xff\xffJ"])
def test_arbitrary_bytes_give_protocol_error_or_messages(
    serialization: str, chunks: list[bytes]
) -> None:
    decoder = wire.Decoder(serialization)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except ProtocolError:
        pass


@pytest.mark.parametrize("serialization", ["json", "binary"])
@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b"[" * (wire.MAX_DEPTH + 1) + b"]" * (wire.MAX_DEPTH + 1)],
    ids=["unclosed", "over-max-depth"],
)
def test_a_deeply_nested_frame_is_a_protocol_error_in_its_place(
    serialization: str, body: bytes
) -> None:
    """Deeper than the interpreter's recursion limit, and deeper than MAX_DEPTH: the bad frame
    becomes a ProtocolError in its place (never a RecursionError), and the frames around it
    still decode."""
    before, after = wire.encode("before", serialization), wire.encode("after", serialization)
    frame = body + b"\n" if serialization == "json" else wire._HEADER.pack(len(body), 74) + body
    decoded = wire.Decoder(serialization).feed(before + frame + after)
    assert decoded[0] == "before" and decoded[2] == "after", decoded[:1] + decoded[2:]
    assert isinstance(decoded[1], ProtocolError), type(decoded[1])
