"""The child's end behaves as a Node child's does: `send` never blocks, a listener's
`sys.exit(n)` or exception ends the process as Node's `process.exit(n)` / an uncaught
exception would, removing the last listener lets the process end, and closing races nothing.
With a Python parent and, where Node has the other end, with Node's own `fork()`.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from ipctest import (
    TIMEOUT,
    Recorder,
    needs_node,
    node_exit,
    node_messages,
    node_parent,
    python_child,
)

import ipc
from ipc import wire
from ipc.child import Parent
from ipc.transports import NODE_CHANNEL_FD

# ---- 6. send never blocks -------------------------------------------------------------------

FLOOD = """
import threading
from ipc import parent

N, PAD = 2000, "x" * 10_000
done, all_done = [], threading.Event()

def written(error, i):
    done.append((i, error))
    if len(done) == N:
        all_done.set()

returned_false = 0
for i in range(N):
    if not parent.send({"i": i, "pad": PAD}, lambda error, i=i: written(error, i)):
        returned_false += 1
print(f"sent {N}, {returned_false} returned False", flush=True)  # before the parent read any
all_done.wait(60)
parent.send({
    "callbacks": len(done),
    "in order": [i for i, _ in done] == list(range(N)),
    "errors": sum(1 for _, error in done if error is not None),
    "returned False": returned_false,
})
parent.disconnect()
"""


def test_child_send_never_blocks_and_loses_nothing(tmp_path: Path, reap: list) -> None:
    """20 MB to a parent that is not reading: every send returns at once (False past the
    high-water mark), and every message arrives, in order, with its callback."""
    child = ipc.fork(python_child(tmp_path, FLOOD), silent=True)
    reap.append(child)
    # no message listener yet: the parent holds 256 messages, then stops reading
    rec = Recorder(child, ("stdout", "stderr", "error", "exit", "close"))
    rec.wait_output(b"sent 2000")
    got: list[object] = []
    finished = threading.Event()

    def on_message(msg: dict) -> None:
        got.append(msg)
        if "callbacks" in msg:
            finished.set()

    child.on("message", on_message)
    assert finished.wait(TIMEOUT), f"{len(got)} messages so far"
    *flood, report = got
    assert [m["i"] for m in flood] == list(range(2000))  # type: ignore[index]
    assert report["callbacks"] == 2000 and report["in order"] and report["errors"] == 0
    assert report["returned False"] > 0
    assert child.wait(timeout=TIMEOUT) == 0


# ---- 7. exits from a listener ---------------------------------------------------------------

EXITS = """
import sys
from ipc import parent

def on_message(msg):
    parent.send("last words")
    if msg == "exit":
        sys.exit(7)
    if msg == "raise":
        raise ValueError("boom in a listener")
    if msg == "callback":
        parent.send("with a callback", lambda error: sys.exit(3))

parent.on("message", on_message)
parent.send("ready")
"""


@pytest.mark.parametrize(("request_", "status"), [("exit", 7), ("raise", 1), ("callback", 3)])
def test_a_listener_ends_the_process_as_node_would(
    request_: str, status: int, tmp_path: Path, reap: list
) -> None:
    """sys.exit(7) in a listener is Node's process.exit(7); an exception is Node's uncaught
    exception (traceback on stderr, status 1). Messages sent before still arrive."""
    child = ipc.fork(python_child(tmp_path, EXITS), silent=True)
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_messages(1) == ["ready"]
    child.send(request_)
    assert child.wait(timeout=TIMEOUT) == status
    rec.wait_for("close")
    assert rec.messages()[1] == "last words"
    stderr = rec.output("stderr").decode()
    if request_ == "raise":
        assert "Traceback" in stderr and "ValueError: boom in a listener" in stderr
    else:
        assert "Traceback" not in stderr, stderr


@needs_node
@pytest.mark.parametrize(("request_", "status"), [("exit", 7), ("raise", 1)])
def test_a_node_parent_sees_the_exit_status_of_a_listener(
    request_: str, status: int, tmp_path: Path
) -> None:
    events = node_parent(python_child(tmp_path, EXITS), [{"wait": 1}, {"send": request_}])
    assert node_messages(events) == ["ready", "last words"]
    assert node_exit(events) == (status, None)


# ---- 9. the last listener removed -----------------------------------------------------------

LAST_LISTENER = """
from ipc import parent

def on_message(msg):
    if msg == "end":  # what jest-worker's child does on CHILD_MESSAGE_END
        parent.off("message", on_message)
        parent.send("ending")
    else:
        parent.send({"echo": msg})

parent.on("message", on_message)
parent.send("ready")
"""


def test_removing_the_last_listener_lets_the_child_end(tmp_path: Path, reap: list) -> None:
    """As a Node child, whose channel is unref'd: it ends while its channel is still open."""
    child = ipc.fork(python_child(tmp_path, LAST_LISTENER))
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_messages(1) == ["ready"]
    child.send("hi")
    child.send("end")
    assert child.wait(timeout=TIMEOUT) == 0
    assert rec.wait_messages(3)[1:] == [{"echo": "hi"}, "ending"]
    rec.wait_for("close")


@needs_node
def test_removing_the_last_listener_under_a_node_parent(tmp_path: Path) -> None:
    events = node_parent(
        python_child(tmp_path, LAST_LISTENER), [{"wait": 1}, {"send": "hi"}, {"send": "end"}]
    )
    assert node_messages(events) == ["ready", {"echo": "hi"}, "ending"]
    assert node_exit(events) == (0, None)


def test_unref_lets_a_listening_child_end_and_ref_keeps_one_alive(
    tmp_path: Path, reap: list
) -> None:
    unref = ipc.fork(
        python_child(
            tmp_path,
            "from ipc import parent\n"
            "parent.on('message', print)\n"
            "parent.unref()\n"
            "parent.send('unref')\n",
            "unref.py",
        )
    )
    ref = ipc.fork(
        python_child(
            tmp_path,
            "from ipc import parent\n"
            "parent.on('error', print)  # not a listener that keeps it alive...\n"
            "parent.ref()  # ...but this does\n"
            "parent.send('ref')\n",
            "ref.py",
        )
    )
    reap.extend([unref, ref])
    assert unref.wait(timeout=TIMEOUT) == 0
    rec = Recorder(ref)
    assert rec.wait_messages(1) == ["ref"]
    assert ref.exit_code is None, "ref() keeps the child while the channel is open"
    ref.disconnect()
    assert ref.wait(timeout=TIMEOUT) == 0


# ---- 10. closing races nothing; who closed it -----------------------------------------------


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_disconnect_racing_the_readers_close_never_leaks_an_oserror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child's disconnect() while its reader thread sees the parent close the channel,
    many times: only ipc's own errors, no EBADF from a socket the other thread closed, and
    no fd left open."""
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    before = open_fds()
    for _ in range(300):
        ours, theirs = socket.socketpair()
        monkeypatch.setenv(NODE_CHANNEL_FD, str(theirs.detach()))
        child_side = Parent()
        child_side.on("message", lambda msg: None)
        ours.sendall(wire.encode("hello"))
        closer = threading.Thread(target=ours.close)
        closer.start()
        try:
            child_side.disconnect()
        except ipc.IPCError:
            pass  # the parent may have gone first: then disconnect() says so
        closer.join(TIMEOUT)
        child_side._reader.join(TIMEOUT)  # type: ignore[union-attr]
        if child_side._writer is not None:
            child_side._writer.join(TIMEOUT)
        assert not child_side._reader.is_alive()  # type: ignore[union-attr]
        child_side._update_ref()
        assert child_side._keeper is None
    assert escaped == []
    assert open_fds() - before == set()


SEND_AFTER_PEER_CLOSED = """
import json
import threading
import ipc
from ipc import parent

gone = threading.Event()
parent.on("disconnect", gone.set)
parent.send("ready")
gone.wait(20)
for _ in range(2):
    try:
        parent.send("anyone there?")
        said = "no error"
    except ipc.IPCError as exc:
        said = type(exc).__name__
    # one JSON line: under Node's fork() our stdout is the driver's, which reads it as an event
    print(json.dumps({"event": "child-said", "data": said}), flush=True)
"""


def test_child_send_after_the_parent_closed_is_a_broken_channel(tmp_path: Path, reap: list) -> None:
    child = ipc.fork(python_child(tmp_path, SEND_AFTER_PEER_CLOSED), silent=True)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_messages(1)
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0
    rec.wait_for("close")
    said = [line for line in rec.output().decode().splitlines() if "child-said" in line]
    assert said == ['{"event": "child-said", "data": "BrokenChannelError"}'] * 2


@needs_node
def test_child_send_after_a_node_parent_closed_is_a_broken_channel(tmp_path: Path) -> None:
    events = node_parent(
        python_child(tmp_path, SEND_AFTER_PEER_CLOSED), [{"wait": 1}, {"disconnect": True}]
    )
    assert node_messages(events, "child-said") == ["BrokenChannelError"] * 2
    assert node_exit(events) == (0, None)


def test_parent_send_after_the_child_closed_is_a_broken_channel(tmp_path: Path, reap: list) -> None:
    """Only a channel *we* closed is a ChannelClosedError (anyio's distinction)."""
    child = ipc.fork(python_child(tmp_path, "from ipc import parent\nparent.disconnect()\n"))
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("disconnect")
    results: list[BaseException | None] = []
    done = threading.Event()
    child.send("too late", lambda error: (results.append(error), done.set()))
    assert done.wait(TIMEOUT)
    assert isinstance(results[0], ipc.BrokenChannelError), results
    child.send("too late, no callback")
    error = rec.wait_for("error")[0][0]
    assert isinstance(error, ipc.BrokenChannelError), error
    assert child.wait(timeout=TIMEOUT) == 0
