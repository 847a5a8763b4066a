"""File descriptors on the channel go only to the ``NODE_HANDLE`` frame they came with.

A peer may attach fds (``SCM_RIGHTS``) to any bytes. The ones that did not come with the first
byte of a ``NODE_HANDLE`` frame are closed at once and reported (one `ProtocolError` per read,
not per fd); before, every one was kept until the channel closed (a child could exhaust the
parent's fds) and a later real handle got the oldest stray fd instead of its own. Both ends,
with real processes: a raw child against the parent's end, and the test as a raw parent
against the child's end (`ipc.child.Parent`, in this process).
"""

from __future__ import annotations

import array
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from ipctest import TIMEOUT, Recorder, python_child

import ipc
from ipc import wire
from ipc.child import Parent
from ipc.transports import NODE_CHANNEL_FD


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def frame(msg: Any) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def handle_frame(payload: Any) -> bytes:
    return frame({"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": payload})


def send_with_fds(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    sent = sock.sendmsg([data], rights)
    if sent < len(data):
        sock.sendall(data[sent:])


#: A child that talks to the parent's end by hand: plain messages with fds riding on them,
#: a large plain message with an fd on its first byte, a NODE_HANDLE without its fd, then a
#: real handle. It then waits for the parent's word through that handle, and reports it.
RAW_CHILD = """
import array, json, os, socket, sys
sock = socket.socket(fileno=int(os.environ["NODE_CHANNEL_FD"]))
null = os.open(os.devnull, os.O_RDONLY)

def frame(msg):
    return json.dumps(msg, separators=(",", ":")).encode() + b"\\n"

def send(data, fds=()):
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sent = sock.sendmsg([data], rights)
    sock.sendall(data[sent:])

def handle_frame(payload):
    return frame({"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": payload})

for i in range(200):
    send(frame({"i": i}), [null] * 10)           # fds on plain messages
send(frame({"big": "x" * 300_000}), [null])       # on a frame that spans many reads
send(handle_frame("no fd"))                       # a handle frame without its fd
ours, theirs = socket.socketpair()
send(handle_frame("real"), [theirs.fileno()])     # the real one
theirs.close()
send(frame("sent"))
ours.settimeout(30)
word = ours.recv(100)
send(frame({"heard": word.decode()}))
while sock.recv(4096):                            # our answers, until the parent disconnects
    pass
"""


def test_stray_fds_are_closed_and_a_real_handle_gets_its_own(tmp_path: Path, reap: list) -> None:
    before = open_fds()
    child = ipc.fork(python_child(tmp_path, RAW_CHILD), transport="socketpair")
    reap.append(child)
    rec = Recorder(child)
    handles: dict[str, socket.socket | None] = {}
    child.on("message", lambda msg, handle: handles.setdefault(json.dumps(msg), handle))
    assert rec.wait_message(lambda m: m == "sent", "the real handle") == "sent"
    # All 2,001 stray fds arrived and the channel is still open: none of them is held.
    assert open_fds() - before < 40, "stray fds are kept while the channel is open"
    errors = [args[0] for args in rec.args("error")]
    strays = [e for e in errors if isinstance(e, ipc.ProtocolError)]
    assert strays and all("file descriptor" in str(e) for e in strays)
    assert len(strays) <= 201, "one report per read, never one per fd"
    (refused,) = [e for e in errors if isinstance(e, ipc.HandleError)]
    assert refused.payload == "no fd", "a handle frame without an fd gets no stray one"
    real = handles[json.dumps("real")]
    assert isinstance(real, socket.socket), handles.get(json.dumps("real"))
    with real:
        real.setblocking(True)
        real.sendall(b"hello")
    assert rec.wait_message(lambda m: isinstance(m, dict) and "heard" in m, "the reply") == {
        "heard": "hello"
    }
    assert len([m for m in rec.messages() if isinstance(m, dict) and "i" in m]) == 200
    assert {"big": "x" * 300_000} in rec.messages()
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_a_handle_whose_frame_spans_many_reads_keeps_its_fd(
    serialization: str, tmp_path: Path, reap: list
) -> None:
    """The fd comes with the first bytes of a large NODE_HANDLE frame: it is held until the
    frame is complete, reads later (both framings, both directions)."""
    script = python_child(
        tmp_path,
        "import socket\n"
        "from ipc import parent\n"
        "for msg, handle in parent.messages(handles=True):\n"
        "    handle.setblocking(True)\n"
        "    handle.sendall(b'child got %d' % len(msg))\n"
        "    handle.close()\n"
        "    break\n"
        "ours, theirs = socket.socketpair()\n"
        "parent.send('y' * 300_000, handle=theirs)\n"
        "ours.settimeout(30)\n"
        "parent.send(ours.recv(100).decode())\n"
        "parent.disconnect()\n",
    )
    child = ipc.fork(script, serialization=serialization)
    reap.append(child)
    rec = Recorder(child)
    got: list[socket.socket | None] = []
    child.on("message", lambda msg, handle: got.append(handle))
    ours, theirs = socket.socketpair()
    with ours:
        child.send("x" * 300_000, handle=theirs)
        ours.settimeout(TIMEOUT)
        assert ours.recv(100) == b"child got 300000"
    rec.wait_messages(1)
    (handle,) = [h for h in got if h is not None]
    with handle:
        handle.setblocking(True)
        handle.sendall(b"parent says hi")
    assert rec.wait_messages(2)[1] == "parent says hi"
    assert child.wait(timeout=TIMEOUT) == 0
    assert not rec.args("error")


def test_the_child_side_closes_stray_fds_and_pairs_the_real_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This process as the raw parent of `ipc.child.Parent`: plain messages with fds, then a
    real handle. The child side keeps none of the strays and yields the real socket."""
    ours, theirs = socket.socketpair()
    monkeypatch.setenv(NODE_CHANNEL_FD, str(theirs.detach()))
    child_side = Parent()
    errors: list[BaseException] = []
    got_error = threading.Event()
    child_side.on("error", lambda e: (errors.append(e), got_error.set()))
    before = open_fds()
    null = os.open(os.devnull, os.O_RDONLY)
    a, b = socket.socketpair()
    try:
        with ours:
            for i in range(50):
                send_with_fds(ours, frame({"i": i}), [null] * 8)
            send_with_fds(ours, handle_frame("real"), [b.fileno()])
            b.close()
            ours.sendall(frame("end"))
            received: list[tuple[Any, socket.socket | None]] = []
            for msg, handle in child_side.messages(handles=True):
                received.append((msg, handle))
                if msg == "end":
                    break
            assert open_fds() - before < 20, "stray fds kept by the child side"
            assert [m for m, _ in received] == [*({"i": i} for i in range(50)), "real", "end"]
            (real,) = [h for m, h in received if m == "real"]
            assert isinstance(real, socket.socket)
            with real:
                real.setblocking(True)
                real.sendall(b"through the handle")
            a.settimeout(TIMEOUT)
            assert a.recv(100) == b"through the handle"
            assert got_error.wait(TIMEOUT)
            assert all(isinstance(e, ipc.ProtocolError) for e in errors)
            ours.settimeout(TIMEOUT)
            (ack,) = wire.Decoder().feed(ours.recv(4096))
            assert ack.message == {"cmd": "NODE_HANDLE_ACK"}
    finally:
        os.close(null)
        a.close()
        child_side.close()


def test_an_fd_held_for_a_frame_not_complete_is_closed_with_the_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fd of a large NODE_HANDLE frame waits for the rest of it; if the channel closes
    first, it is closed with it (a pipe's write end: the read end then sees end of file)."""
    ours, theirs = socket.socketpair()
    monkeypatch.setenv(NODE_CHANNEL_FD, str(theirs.detach()))
    child_side = Parent()
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        with ours:
            big = handle_frame("z" * 300_000)
            send_with_fds(ours, big[:1000], [w])  # the rest of the frame never comes
            os.close(w)
            assert list(child_side.messages(timeout=0.2)) == []  # read, nothing complete
            with pytest.raises(BlockingIOError):
                os.read(r, 1)  # the write end is held, for the frame's end
            child_side.close()
            assert os.read(r, 1) == b"", "the held fd outlived the channel"
    finally:
        os.close(r)
        child_side.close()
