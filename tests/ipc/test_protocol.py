"""A child that breaks the protocol, and peers that are not our child.

A bad frame costs only itself (docs/ipc.md, "Wire format"): the parent reports it (with its
first bytes) as an `error` event, delivers the frames before and after it, and keeps the
channel open, since the framing is intact. Only a lost framing (a binary frame of unknown
type) closes that one channel, cleanly; the parent carries on either way.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from ipctest import FIXTURES, TIMEOUT, TRANSPORTS, Recorder, fixture

import ipc
from ipc import wire

SOCKET_TRANSPORTS = ["unix", "tcp"]


def raw_child(
    data: bytes, transport: str, reap: list, tmp_path: Path, **options: Any
) -> tuple[ipc.ChildProcess, Recorder]:
    """Fork raw_writer.py to write `data` (passed in a file: argv is limited) on its channel,
    then echo back whatever it reads."""
    payload = tmp_path / "payload.bin"
    payload.write_bytes(data)
    child = ipc.fork(
        fixture("raw_writer.py"), args=[str(payload)], transport=transport, silent=True, **options
    )
    reap.append(child)
    return child, Recorder(child)


def assert_channel_still_open(child: ipc.ChildProcess, rec: Recorder, *expected: Any) -> None:
    """The bad frame cost only itself: what we send now comes back through the same channel,
    and the child ends normally once we disconnect."""
    assert child.connected
    before = len(rec.messages())
    child.send("still open")
    assert rec.wait_messages(before + 1)[before:] == ["still open"]
    assert rec.messages()[:before] == list(expected)
    child.disconnect()
    rec.wait_for("close")
    assert b"channel closed by parent" in rec.output("stdout"), rec.output("stderr")
    assert child.exit_code == 0
    assert len(rec.args("error")) == 1, rec.args("error")


def assert_channel_closed_and_child_done(child: ipc.ChildProcess, rec: Recorder) -> None:
    """The parent closed the channel: the child saw EOF, exited normally, and `close` came."""
    rec.wait_for("close")
    assert not child.connected
    assert "disconnect" in rec.names()
    assert b"channel closed by parent" in rec.output("stdout"), rec.output("stderr")
    assert child.exit_code == 0


def assert_parent_still_works(reap: list, transport: str = "auto") -> None:
    child = ipc.fork(fixture("echo.py"), args=["hello"], transport=transport)
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_messages(1)[0]["hello"] == "from python"
    child.send({"after": "the bad child"})
    assert rec.wait_messages(2)[1] == {"after": "the bad child"}
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_garbage_frame(transport: str, reap: list, tmp_path: Path) -> None:
    child, rec = raw_child(b"this is not json, it is garbage\n", transport, reap, tmp_path)
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.ProtocolError)
    assert not isinstance(err, ipc.MessageTooLargeError)
    assert err.data.startswith(b"this is not json")
    assert err.to_dict()["data"].startswith("this is not json")
    assert_channel_still_open(child, rec)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_oversize_frame(transport: str, reap: list, tmp_path: Path) -> None:
    frame = b'"' + b"x" * 5000 + b'"\n'
    child, rec = raw_child(frame + b'"next"\n', transport, reap, tmp_path, max_message_size=1024)
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.MessageTooLargeError)
    assert err.limit == 1024
    assert err.data.startswith(b'"xxxx')
    assert_channel_still_open(child, rec, "next")


def test_oversize_line_without_newline_is_refused_early(reap: list, tmp_path: Path) -> None:
    """A peer that never ends its line cannot make the parent buffer without bound: the line
    is reported once it passes the limit, and dropped up to its newline as it comes."""
    child, rec = raw_child(b"y" * 200_000, "auto", reap, tmp_path, max_message_size=1000)
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.MessageTooLargeError)
    assert err.data.startswith(b"yyyy")
    child.send("ends the long line")  # echoed: its newline ends the refused line
    child.send("next")
    assert rec.wait_messages(1) == ["next"]
    child.disconnect()
    rec.wait_for("close")
    assert len(rec.args("error")) == 1


@pytest.mark.parametrize("transport", ["socketpair", "pipe"])
def test_frames_around_a_bad_one_in_one_write_are_delivered(
    transport: str, reap: list, tmp_path: Path
) -> None:
    """Nothing is dropped silently: the valid messages ahead of and after the bad frame, in the
    same write, arrive in order around the error."""
    child, rec = raw_child(b'{"good": 1}\nnot json\n{"after": 2}\n', transport, reap, tmp_path)
    rec.wait_messages(2)
    assert isinstance(rec.args("error")[0][0], ipc.ProtocolError)
    assert rec.names()[rec.names().index("message") :][:3] == ["message", "error", "message"]
    assert_channel_still_open(child, rec, {"good": 1}, {"after": 2})


@pytest.mark.parametrize("transport", ["socketpair", "tcp"])
def test_a_frame_nested_past_max_depth_is_refused_by_name(
    transport: str, reap: list, tmp_path: Path
) -> None:
    depth = wire.MAX_DEPTH + 1
    frame = b"[" * depth + b"]" * depth + b"\n"
    child, rec = raw_child(b'"before"\n' + frame + b'"after"\n', transport, reap, tmp_path)
    rec.wait_messages(2)
    err = rec.args("error")[0][0]
    assert isinstance(err, ipc.ProtocolError)
    assert f"more than {wire.MAX_DEPTH} levels" in str(err)
    assert_channel_still_open(child, rec, "before", "after")


def test_binary_frame_with_unknown_type_loses_the_framing(reap: list, tmp_path: Path) -> None:
    """The one bad frame whose end is unknown: the channel is closed, what came before stays."""
    frame = wire.encode("first", "binary") + struct.pack(">IB", 5, ord("X")) + b"hello"
    child, rec = raw_child(frame, "socketpair", reap, tmp_path, serialization="binary")
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.ProtocolError)
    assert err.data.startswith(b"\x00\x00\x00\x05X")
    assert_channel_closed_and_child_done(child, rec)
    assert rec.messages() == ["first"]
    child.send("after")  # refused: we closed it
    err = rec.wait_for("error", 2)[1][0]
    assert isinstance(err, ipc.ChannelClosedError)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_binary_frame_claiming_a_gigabyte(transport: str, reap: list, tmp_path: Path) -> None:
    frame = struct.pack(">IB", 1 << 30, ord("B")) + b"tiny"
    child, rec = raw_child(frame, transport, reap, tmp_path, serialization="binary")
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.MessageTooLargeError)
    assert err.size == 1 << 30
    assert err.limit == 64 * 1024 * 1024
    assert child.connected, "its length is known: the frame is skipped, the channel stays"
    child.disconnect()
    rec.wait_for("close")
    assert child.exit_code == 0
    assert_parent_still_works(reap)


def test_child_side_refuses_an_oversize_send(tmp_path, reap: list) -> None:
    """The child knows the limit too: its own send raises instead of breaking the channel."""
    script = tmp_path / "big.py"
    script.write_text(
        "import ipc\n"
        "from ipc import parent\n"
        "try:\n"
        "    parent.send('z' * 5000)\n"
        "except ipc.MessageTooLargeError as exc:\n"
        "    parent.send({'refused': type(exc).__name__})\n"
        "parent.disconnect()\n"
    )
    child = ipc.fork(str(script), max_message_size=1024)
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_messages(1) == [{"refused": "MessageTooLargeError"}]
    assert child.wait(timeout=TIMEOUT) == 0
    assert not rec.args("error")


# --- peers without the secret ----------------------------------------------------------------


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
@pytest.mark.parametrize("mode", ["wrong", "none"])
def test_intruder_is_refused_and_reported(transport: str, mode: str, reap: list) -> None:
    child = ipc.fork(fixture("intruder.py"), args=[mode], transport=transport)
    reap.append(child)
    rec = Recorder(child)
    report = rec.wait_messages(1)[0]
    assert report["intruder"] == mode
    assert report["hung_up"], f"the parent answered the intruder: {report['reply']!r}"
    errors = [args[0] for args in rec.wait_for("error")]
    assert any(isinstance(e, ipc.AuthenticationError) for e in errors), errors
    assert {"evil": True} not in rec.messages()
    # the real child still got through and the channel works
    child.send("still here")
    assert rec.wait_messages(2)[1] == "still here"
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
def test_silent_intruder_does_not_break_the_channel(transport: str, reap: list) -> None:
    child = ipc.fork(fixture("intruder.py"), args=["silent"], transport=transport)
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_messages(1)[0]["intruder"] == "silent"
    child.send(1)
    assert rec.wait_messages(2)[1] == 1
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
def test_outside_intruder_with_the_address_from_the_childs_env(
    transport: str, tmp_path, reap: list
) -> None:
    """The test process itself connects to the address the child was given, before the child."""
    go = tmp_path / "go"
    script = tmp_path / "late.py"
    script.write_text(
        "import os, sys, time\n"
        "print(os.environ['IPC_EXPLORER_CHANNEL'], flush=True)\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.01)\n"
        "from ipc import parent\n"
        "parent.send('real child here')\n"
        "for msg in parent.messages():\n"
        "    parent.send(msg)\n"
    )
    child = ipc.fork(str(script), transport=transport, silent=True)
    reap.append(child)
    rec = Recorder(child)
    address = rec.wait_output(b"\n").decode().strip()
    kind, _, rest = address.partition(":")
    assert kind == transport
    if kind == "unix":
        assert (os.stat(os.path.dirname(rest)).st_mode & 0o777) == 0o700
        intruder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = rest
    else:
        host, port = rest.rsplit(":", 1)
        assert host == "127.0.0.1"
        intruder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    with intruder:
        intruder.settimeout(TIMEOUT)
        intruder.connect(target)
        intruder.sendall(b"not-the-secret\n" + b'{"evil": true}\n')
        try:
            reply = intruder.recv(100)
        except ConnectionResetError:
            reply = b""
        assert reply == b""
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.AuthenticationError)
    json_dict = err.to_dict()
    assert json_dict["type"] == "AuthenticationError"
    go.touch()
    assert rec.wait_messages(1) == ["real child here"]
    child.send({"n": 1})
    assert rec.wait_messages(2)[1] == {"n": 1}
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
def test_no_one_can_connect_after_the_child(transport: str, tmp_path, reap: list) -> None:
    """Once our child is in, the listener is gone: a second peer cannot even connect."""
    script = tmp_path / "second.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(FIXTURES)!r})\n"
        "from rawchannel import address, connect\n"
        "addr, secret = address(), os.environ['IPC_EXPLORER_SECRET']  # ipc.parent hides them\n"
        "from ipc import parent\n"
        "parent.send('connected')\n"
        "try:\n"
        "    s = connect(addr)\n"
        "    s.settimeout(10)\n"
        "    s.sendall(secret.encode() + b'\\n')\n"
        "    reply = s.recv(10)\n"
        "    s.close()\n"
        "    parent.send({'second': 'hung up' if reply == b'' else 'answered'})\n"
        "except OSError as exc:\n"
        "    parent.send({'second': 'refused', 'why': type(exc).__name__})\n"
        "parent.disconnect()\n"
    )
    child = ipc.fork(str(script), transport=transport)
    reap.append(child)
    rec = Recorder(child)
    msgs = rec.wait_messages(2)
    assert msgs[0] == "connected"
    assert msgs[1]["second"] in ("refused", "hung up"), msgs[1]
    assert child.wait(timeout=TIMEOUT) == 0


def test_parent_side_refuses_an_oversize_send(reap: list) -> None:
    """Our own outgoing message over the limit is refused at once, the channel stays usable."""
    child = ipc.fork(fixture("echo.py"), args=["hello"], max_message_size=1024)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_messages(1)
    with pytest.raises(ipc.MessageTooLargeError):
        child.send("z" * 5000)
    assert child.connected
    child.send("small")
    assert rec.wait_messages(2)[1] == "small"
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


def test_binary_serialization_with_a_node_child_is_refused() -> None:
    with pytest.raises(ipc.InvalidArgumentError):
        ipc.fork(fixture("compute.js"), serialization="binary")


def test_unknown_serialization_is_refused() -> None:
    with pytest.raises(ipc.InvalidArgumentError):
        ipc.fork(fixture("echo.py"), serialization="advanced")
