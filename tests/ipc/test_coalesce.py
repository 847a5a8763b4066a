"""The child's write-behind: replies to a batch of messages that arrived together are written
together, and never held for long.

Most tests drive a `Parent` in this process over a real socketpair (the test holds the
parent's end), so they can look at the socket between two replies: whether a reply is already
readable is a fact of the kernel, not of timing. Where a delay would matter, the flusher's
delay is set far beyond the test's timeout, so only the rule under test can deliver a reply.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
from ipctest import PYTHON, TIMEOUT

from ipc import BrokenChannelError, wire
from ipc.child import ENV_COALESCE, Parent, _coalesce_delay_from_env
from ipc.transports import NODE_CHANNEL_FD

#: A flusher delay no test waits for: a reply that arrives did not come from the flusher.
NEVER = 3600.0


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Parent, socket.socket]]:
    """A child-side `Parent` on one end of a socketpair; the test is the parent at the other."""
    ours, theirs = socket.socketpair()
    monkeypatch.setenv(NODE_CHANNEL_FD, str(theirs.detach()))
    child_side = Parent()
    assert child_side.connected
    ours.settimeout(TIMEOUT)
    yield child_side, ours
    if child_side.connected:
        child_side.disconnect()
    ours.close()
    writer = child_side._writer
    if writer is not None:  # it ends with the channel, even in the middle of its delay
        writer.join(TIMEOUT)
        assert not writer.is_alive()


def frames(*messages: object) -> bytes:
    return b"".join(wire.encode(m) for m in messages)


def readable(sock: socket.socket) -> bool:
    """Bytes are waiting on `sock` now (looked at without taking them)."""
    return bool(select.select([sock], [], [], 0)[0])


def read_messages(sock: socket.socket, count: int) -> list[object]:
    decoder, got = wire.Decoder(), []
    while len(got) < count:
        data = sock.recv(65536)
        assert data, f"channel ended after {got}"
        got += decoder.feed(data)
    return got


def test_replies_to_a_batch_go_out_together_after_its_last_message(channel) -> None:
    child_side, ours = channel
    child_side.coalesce_delay = NEVER
    ours.sendall(frames(1, 2, 3))  # one chunk: the child reads all three at once
    loop = child_side.messages()
    assert next(loop) == 1
    child_side.send({"reply": 1})
    assert not readable(ours), "a reply to a batch with more to come is held"
    assert next(loop) == 2
    child_side.send({"reply": 2})
    assert not readable(ours)
    assert next(loop) == 3
    child_side.send({"reply": 3})  # the batch's last: everything goes, in order
    assert read_messages(ours, 3) == [{"reply": 1}, {"reply": 2}, {"reply": 3}]


@pytest.mark.parametrize(
    ("batch", "delay"), [(["only"], NEVER), ([1, 2], 0)], ids=["lone message", "coalescing off"]
)
def test_a_reply_is_written_at_once(channel, batch: list[object], delay: float) -> None:
    child_side, ours = channel
    child_side.coalesce_delay = delay
    ours.sendall(frames(*batch))
    loop = child_side.messages()
    assert next(loop) == batch[0]
    child_side.send("at once")
    assert readable(ours)
    assert read_messages(ours, 1) == ["at once"]


def test_held_replies_go_out_before_the_loop_waits_for_more(channel) -> None:
    """A loop that answers only some messages: what it held is written before it reads."""
    child_side, ours = channel
    child_side.coalesce_delay = NEVER
    ours.sendall(frames("ask", "note"))
    seen = []
    finished = threading.Event()

    def loop() -> None:
        for msg in child_side.messages():
            seen.append(msg)
            if msg == "ask":
                child_side.send("answer")  # "note" is still to come: held
        finished.set()

    threading.Thread(target=loop, daemon=True).start()
    assert read_messages(ours, 1) == ["answer"]  # written when the loop went back to read
    assert seen == ["ask", "note"]
    ours.shutdown(socket.SHUT_WR)
    assert finished.wait(TIMEOUT)


def test_a_held_reply_is_written_by_the_flusher_when_the_loop_does_not_come_back(
    channel,
) -> None:
    """Replied, then busy for a long time: the reply still arrives (within the delay)."""
    child_side, ours = channel
    child_side.coalesce_delay = 0.001
    ours.sendall(frames("start", "next"))
    loop = child_side.messages()
    assert next(loop) == "start"
    child_side.send("started")  # and this thread now stays away from the loop
    assert read_messages(ours, 1) == ["started"]


def test_listener_replies_to_a_batch_go_out_together(channel) -> None:
    child_side, ours = channel
    child_side.coalesce_delay = NEVER
    ours.sendall(frames(1, 2, 3))  # before the reader starts: it reads all three at once
    out_after_reply: list[bool] = []
    handled = threading.Event()

    def on_message(msg: int) -> None:
        child_side.send(msg * 10)
        out_after_reply.append(readable(ours))
        if msg == 3:
            handled.set()

    child_side.on("message", on_message)
    assert handled.wait(TIMEOUT)  # then read: the listener looked before anything was taken
    assert out_after_reply == [False, False, True]
    assert read_messages(ours, 3) == [10, 20, 30]


def test_a_send_from_another_thread_writes_the_held_replies_first(channel) -> None:
    child_side, ours = channel
    child_side.coalesce_delay = NEVER
    ours.sendall(frames(1, 2))
    loop = child_side.messages()
    assert next(loop) == 1
    child_side.send("held")
    other = threading.Thread(target=child_side.send, args=("from another thread",))
    other.start()
    other.join(TIMEOUT)
    assert read_messages(ours, 2) == ["held", "from another thread"]


def test_flush_and_disconnect_write_held_replies(channel) -> None:
    child_side, ours = channel
    child_side.coalesce_delay = NEVER
    ours.sendall(frames(1, 2, 3))
    loop = child_side.messages()
    next(loop)
    child_side.send("flushed")
    child_side.flush()
    assert readable(ours)
    next(loop)
    child_side.send("before the end")
    child_side.disconnect()
    assert read_messages(ours, 2) == ["flushed", "before the end"]
    assert ours.recv(1) == b"", "then the channel ends"


def test_a_reply_the_parent_could_not_get_is_reported(channel) -> None:
    child_side, ours = channel
    child_side.coalesce_delay = NEVER
    ours.sendall(frames(1, 2))
    loop = child_side.messages()
    next(loop)
    child_side.send("nobody reads this")
    ours.close()
    with pytest.raises(BrokenChannelError):
        child_side.flush()


def test_held_replies_are_written_when_the_child_exits(tmp_path) -> None:
    """sys.exit() in the middle of a batch: the held reply still reaches the parent."""
    script = tmp_path / "exits.py"
    script.write_text(
        "import sys\n"
        "from ipc import parent\n"
        "for msg in parent.messages():\n"
        "    parent.send({'got': msg})\n"
        "    sys.exit(3)\n"
    )
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(frames("first", "second"))  # waiting before the child starts: one batch
        env = {
            **os.environ,
            NODE_CHANNEL_FD: str(theirs.fileno()),
            ENV_COALESCE: str(NEVER * 1e6),
        }
        proc = subprocess.Popen([PYTHON, str(script)], env=env, pass_fds=[theirs.fileno()])
        try:
            theirs.close()
            ours.settimeout(TIMEOUT)
            assert read_messages(ours, 1) == [{"got": "first"}]
            assert proc.wait(TIMEOUT) == 3
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("text", "seconds"), [("", 0.001), ("250", 0.00025), ("0", 0.0), ("-1", 0.001), ("x", 0.001)]
)
def test_coalesce_delay_from_the_environment(
    text: str, seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_COALESCE, text)
    assert _coalesce_delay_from_env() == pytest.approx(seconds)
