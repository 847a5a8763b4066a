"""The channel tap (ipc/tap.py, `ChildProcess.set_channel_tap`): every read() and write() of the
parent's end, exactly the bytes that crossed, off by default and gone when turned off."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from ipctest import TIMEOUT, TRANSPORTS, python_child

import ipc
from ipc import wire

ECHO = """
from ipc import parent
for msg in parent.messages():
    parent.send(msg)
"""


class Capture:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chunks: list[tuple[str, bytes]] = []

    def __call__(self, direction: str, data: bytes) -> None:
        with self.lock:
            self.chunks.append((direction, bytes(data)))

    def joined(self, direction: str) -> bytes:
        with self.lock:
            return b"".join(d for kind, d in self.chunks if kind == direction)


def echo_child(tmp_path: Any, transport: str, reap: list) -> tuple[ipc.ChildProcess, list]:
    got: list[Any] = []
    arrived = threading.Condition()

    def on_message(msg: Any) -> None:
        with arrived:
            got.append(msg)
            arrived.notify_all()

    child = ipc.fork(
        python_child(tmp_path, ECHO), transport=transport, listeners={"message": on_message}
    )
    reap.append(child)
    child.arrived = arrived  # type: ignore[attr-defined]
    return child, got


def round_trip(child: ipc.ChildProcess, got: list, message: Any) -> None:
    before = len(got)
    child.send(message)
    with child.arrived:  # type: ignore[attr-defined]
        assert child.arrived.wait_for(lambda: len(got) > before, TIMEOUT)  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_tap_sees_exactly_the_bytes_that_crossed(
    tmp_path: Any, reap: list, transport: str
) -> None:
    child, got = echo_child(tmp_path, transport, reap)
    capture = Capture()
    # At once: the channel may not be attached yet (a unix/tcp child is still connecting, and
    # even a socketpair is attached by the reactor a moment later); it is tapped when it is.
    assert child.set_channel_tap(capture) is True
    messages = ["first", {"n": 1, "text": "你好"}, [1, 2, 3], "x" * 200_000]
    for message in messages:
        round_trip(child, got, message)
    frames = b"".join(wire.encode(m) for m in messages)
    assert capture.joined("write") == frames
    assert capture.joined("read") == frames  # the echo, byte for byte
    # A 200 000-byte frame cannot come back in one read (64 KiB at most): the reads are there.
    reads = [d for kind, d in capture.chunks if kind == "read"]
    assert len(reads) >= 4 and max(map(len, reads)) <= 64 * 1024

    assert child.set_channel_tap(None) is True
    round_trip(child, got, "after")
    assert capture.joined("write") == frames  # off: nothing more reported
    child.disconnect()
    child.wait(timeout=TIMEOUT)


def test_no_channel_no_tap(reap: list) -> None:
    child = ipc.spawn("true")
    reap.append(child)
    assert child.set_channel_tap(lambda d, b: None) is False


def test_a_failing_tap_does_not_break_the_channel(tmp_path: Any, reap: list) -> None:
    child, got = echo_child(tmp_path, "socketpair", reap)

    def broken(direction: str, data: bytes) -> None:
        raise RuntimeError("observer bug")

    assert child.set_channel_tap(broken)
    round_trip(child, got, {"still": "works"})
    assert got[-1] == {"still": "works"}
    child.disconnect()
    child.wait(timeout=TIMEOUT)


def test_the_tap_sees_end_of_stream(tmp_path: Any, reap: list) -> None:
    source = "from ipc import parent\nparent.recv()\n"  # ends after one message
    child = ipc.fork(python_child(tmp_path, source), transport="socketpair")
    reap.append(child)
    capture = Capture()
    assert child.set_channel_tap(capture)
    child.send("bye")
    child.wait(timeout=TIMEOUT)
    child.wait_closed(timeout=TIMEOUT)
    assert ("eof", b"") in capture.chunks
