"""Exactly what Node does, in both directions: a Python parent with a real Node child
(fixtures/node_exact_child.js), and Node's own `fork()` of a Python child
(fixtures/node_parent_driver.js). Deep nesting, lone surrogates, Node's internal messages and
handle passing (docs/ipc.md, "Differences from Node" lists what is left).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from ipctest import (
    TIMEOUT,
    Recorder,
    depth_of,
    fixture,
    needs_node,
    nested,
    node_exit,
    node_messages,
    node_parent,
    python_child,
)

import ipc
from ipc import wire

pytestmark = needs_node

EVENTS = ("message", "internalMessage", "error", "exit", "close", "disconnect")


@pytest.fixture
def node_child(reap: list) -> tuple[ipc.ChildProcess, Recorder]:
    child = ipc.fork(fixture("node_exact_child.js"))
    reap.append(child)
    rec = Recorder(child, EVENTS)
    assert rec.wait_messages(1) == ["ready"]
    return child, rec


def finish(child: ipc.ChildProcess, rec: Recorder) -> None:
    child.send({"do": "bye"})
    assert child.wait(timeout=TIMEOUT) == 0
    rec.wait_for("close")


# ---- 2. deep nesting ------------------------------------------------------------------------


def test_python_parent_gets_deep_nesting_from_node_in_one_read(node_child) -> None:
    """Node delivers 'before', a 1500-deep array and 'after' written at once; so must we (the
    C decoder stopped at ~1000 and the rest of the read was lost without an error)."""
    child, rec = node_child
    child.send({"do": "deep", "depth": 1500})
    messages = rec.wait_messages(4)[1:]
    assert messages[0] == "before" and messages[2] == "after"
    assert depth_of(messages[1]) == 1500
    assert not rec.args("error")
    finish(child, rec)


def test_python_parent_and_node_child_echo_deep_nesting(node_child) -> None:
    """Both ways through Node's JSON.parse / JSON.stringify (which stops near 4,000)."""
    child, rec = node_child
    for depth in (1500, 4000):
        child.send({"do": "send", "value": nested(depth)})
    got = rec.wait_messages(3)[1:]
    assert [depth_of(m) for m in got] == [1500, 4000]
    finish(child, rec)


def test_node_parent_and_python_child_echo_deep_nesting(tmp_path: Path) -> None:
    """A Python child under Node decodes what Node sends and encodes it back, and sends
    deeper than V8 would encode (V8 still decodes it)."""
    child = python_child(
        tmp_path,
        "from ipc import parent\n"
        "for msg in parent.messages():\n"
        "    if msg == 'deeper':\n"
        "        value = []\n"
        "        for _ in range(9999):\n"
        "            value = [value]\n"
        "        parent.send(value)\n"
        "        break\n"
        "    parent.send(msg)\n",
    )
    deep = "[" * 1500 + "]" * 1500
    events = node_parent(
        child,
        [{"sendRaw": '"before"\n' + deep + '\n"after"\n'}, {"wait": 3}, {"send": "deeper"}],
    )
    got = node_messages(events)
    assert got[0] == "before" and got[2] == "after"
    assert depth_of(got[1]) == 1500
    assert got[3] == {"depth": 10_000}  # too deep for JSON.stringify in the driver's log
    assert node_exit(events) == (0, None)


def test_python_child_reports_a_frame_past_max_depth_and_goes_on(tmp_path: Path) -> None:
    too_deep = wire.MAX_DEPTH + 1
    child = python_child(
        tmp_path,
        "from ipc import parent\n"
        "parent.on('error', lambda exc: parent.send({'error': type(exc).__name__, "
        "'text': str(exc)}))\n"
        "def on_message(msg):\n"
        "    parent.send({'got': msg})\n"
        "    if msg == 'after':\n"
        "        parent.disconnect()\n"
        "parent.on('message', on_message)\n",
    )
    frame = "[" * too_deep + "]" * too_deep
    events = node_parent(child, [{"sendRaw": f'"before"\n{frame}\n"after"\n'}, {"wait": 3}])
    got = node_messages(events)
    assert got[0] == {"got": "before"} and got[2] == {"got": "after"}
    assert got[1]["error"] == "ProtocolError"
    assert f"more than {wire.MAX_DEPTH} levels" in got[1]["text"]
    assert node_exit(events) == (0, None)


# ---- 3. lone surrogates ---------------------------------------------------------------------

LONE = ["\ud800", "a\udc00b", "\ude00\ud83d", {"k\udbff": ["x\udfff"]}]


def test_lone_surrogates_round_trip_with_a_node_child(node_child) -> None:
    child, rec = node_child
    for value in LONE:
        child.send({"do": "echo", "value": value})
    child.send({"do": "echo", "value": "\ud83d\ude00"})  # a pair: the character it stands for
    got = rec.wait_messages(1 + len(LONE) + 1)[1:]
    assert got == [{"echo": value} for value in LONE] + [{"echo": "😀"}]
    finish(child, rec)


def test_node_parent_receives_lone_surrogates_from_a_python_child(tmp_path: Path) -> None:
    child = python_child(
        tmp_path,
        "from ipc import parent\n"
        f"for value in {LONE!r}:\n"
        "    parent.send(value)\n"
        "for msg in parent.messages():\n"
        "    parent.send({'echo': msg})\n"
        "    break\n",
    )
    events = node_parent(child, [{"wait": len(LONE)}, {"send": "\ud800 from node"}])
    assert node_messages(events) == [*LONE, {"echo": "\ud800 from node"}]
    assert node_exit(events) == (0, None)


# ---- 4. Node's internal messages -----------------------------------------------------------


def test_python_parent_and_node_child_internal_messages(node_child) -> None:
    """Node's isInternal wants a cmd LONGER than 'NODE_': {cmd: 'NODE_'} is a message."""
    child, rec = node_child
    child.send({"do": "send", "value": {"cmd": "NODE_"}})
    child.send({"do": "send", "value": {"cmd": "NODE_CUSTOM", "n": 1}})
    child.send({"cmd": "NODE_"})  # the Node child echoes messages
    child.send({"cmd": "NODE_CUSTOM", "n": 2})  # ...and reports internal ones
    rec.wait_messages(4)
    rec.wait_for("internalMessage")
    assert rec.messages()[1:] == [
        {"cmd": "NODE_"},
        {"echo": {"cmd": "NODE_"}},
        {"internal": {"cmd": "NODE_CUSTOM", "n": 2}},
    ]
    assert [a[0] for a in rec.args("internalMessage")] == [{"cmd": "NODE_CUSTOM", "n": 1}]
    finish(child, rec)


def test_node_parent_and_python_child_internal_messages(tmp_path: Path) -> None:
    child = python_child(
        tmp_path,
        "from ipc import parent\n"
        "parent.send({'cmd': 'NODE_'})\n"
        "parent.send({'cmd': 'NODE_CUSTOM', 'from': 'python'})\n"
        "parent.on('internalMessage', lambda msg: parent.send({'internal': msg}))\n"
        "def on_message(msg):\n"
        "    parent.send({'message': msg})\n"
        "    if msg == 'bye':\n"
        "        parent.disconnect()\n"
        "parent.on('message', on_message)\n",
    )
    events = node_parent(
        child,
        [
            {"wait": 1},
            {"send": {"cmd": "NODE_"}},
            {"send": {"cmd": "NODE_CUSTOM", "from": "node"}},
            {"wait": 3},
            {"send": "bye"},
        ],
    )
    assert node_messages(events) == [
        {"cmd": "NODE_"},
        {"message": {"cmd": "NODE_"}},
        {"internal": {"cmd": "NODE_CUSTOM", "from": "node"}},
        {"message": "bye"},
    ]
    assert node_messages(events, "internalMessage") == [{"cmd": "NODE_CUSTOM", "from": "python"}]
    assert node_exit(events) == (0, None)


# ---- 5. handles -----------------------------------------------------------------------------

HANDLE_CHILD = """
import socket
import threading
from ipc import parent

def greet(server):
    with server:
        server.settimeout(10)
        connection, _ = server.accept()
        with connection:
            connection.sendall(b'hello from the python child\\n')

def on_message(msg, handle):
    if handle is None:
        parent.send({'plain': msg})
        if msg == 'bye':
            parent.disconnect()
        return
    listening = handle.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    stream = handle.type == socket.SOCK_STREAM
    parent.send({'got': msg, 'listening': bool(listening), 'type': stream})
    if listening:  # accepted on a thread of its own: a listener must not block the reader
        threading.Thread(target=greet, args=(handle,)).start()
        return
    with handle:
        handle.settimeout(10)
        handle.sendall(b'hello from the python child over the passed socket\\n')

parent.on('message', on_message)
parent.on('error', lambda exc: parent.send({'error': type(exc).__name__,
                                            'handle_type': exc.handle_type,
                                            'payload': exc.payload}))
parent.send('ready')
"""


def test_node_parent_passes_handles_to_a_python_child(tmp_path: Path) -> None:
    """net.Server arrives listening, net.Socket connected; each is ACKed, so Node's next send
    is not stuck in its handle queue; a dgram socket is NACKed and reported, never a hang."""
    child = python_child(tmp_path, HANDLE_CHILD)
    events = node_parent(
        child,
        [
            {"wait": 1},
            {"sendServer": "server"},
            {"send": "after the server"},
            {"wait": 3},
            {"connectServer": True},
            {"sendSocket": "socket"},
            {"send": "after the socket"},
            {"wait": 5},
            {"sendDgram": "dgram"},
            {"send": "after the dgram"},
            {"wait": 7},
            {"send": "bye"},
        ],
    )
    assert node_messages(events) == [
        "ready",
        {"got": "server", "listening": True, "type": True},
        {"plain": "after the server"},
        {"got": "socket", "listening": False, "type": True},
        {"plain": "after the socket"},
        {"error": "HandleError", "handle_type": "dgram.Socket", "payload": "dgram"},
        {"plain": "after the dgram"},
        {"plain": "bye"},
    ]
    said = {e["event"]: e["data"] for e in events if e["event"].endswith("-said")}
    assert said == {
        "server-said": "hello from the python child\n",
        "socket-said": "hello from the python child over the passed socket\n",
    }
    answers = [m["cmd"] for m in node_messages(events, "internalMessage")]
    assert answers == ["NODE_HANDLE_ACK", "NODE_HANDLE_ACK", "NODE_HANDLE_NACK"]
    assert node_exit(events) == (0, None)


def test_python_child_passes_handles_to_a_node_parent(tmp_path: Path) -> None:
    child = python_child(
        tmp_path,
        "import socket\n"
        "from ipc import parent\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "parent.send({'port': server.getsockname()[1]}, handle=server)\n"
        "server.close()  # ours; Node's copy listens on\n"
        "ours, theirs = socket.socketpair()\n"
        "parent.send('socket', handle=theirs)\n"
        "assert theirs.fileno() == -1, 'a connected socket is handed over'\n"
        "ours.settimeout(10)\n"
        "parent.send({'node said': ours.recv(100).decode()})\n"
        "parent.disconnect()\n",
    )
    events = node_parent(child, [{"wait": 1}, {"connectServer": True}, {"wait": 3}])
    messages = [e for e in events if e["event"] == "message"]
    assert messages[0]["handle"] == "net.Server"
    assert [e["data"] for e in events if e["event"] == "server-said"] == [
        "hello from the node parent\n"
    ]
    assert messages[1] == {"event": "message", "data": "socket", "handle": "net.Socket"}
    assert messages[2]["data"] == {"node said": "hello from node over the passed socket\n"}
    assert node_exit(events) == (0, None)


def test_python_parent_passes_handles_to_a_node_child(node_child) -> None:
    child, rec = node_child
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    child.send("server", handle=server)
    child.send("after the server")
    assert rec.wait_messages(3)[1:] == [
        {"got": "server", "kind": "net.Server"},
        {"echo": "after the server"},
    ]
    server.close()  # only the Node child accepts now
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        assert client.recv(100) == b"hello from the node child\n"
    ours, theirs = socket.socketpair()
    with ours:
        child.send("socket", handle=theirs)
        assert theirs.fileno() == -1, "a connected socket is handed over (Node's keepOpen=false)"
        assert rec.wait_messages(4)[3] == {"got": "socket", "kind": "net.Socket"}
        ours.settimeout(TIMEOUT)
        assert ours.recv(100) == b"hello from the node child over the passed socket\n"
    assert not rec.args("error")
    finish(child, rec)


def test_node_child_passes_handles_to_a_python_parent(node_child) -> None:
    child, rec = node_child
    got: list[tuple[Any, Any]] = []
    child.on("message", lambda msg, handle: got.append((msg, handle)))
    child.send({"do": "serve"})
    message = rec.wait_message(lambda m: isinstance(m, dict) and "port" in m, "the port")
    (server,) = [h for m, h in got if m == message]
    assert isinstance(server, socket.socket)
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    with server, socket.create_connection(("127.0.0.1", message["port"]), timeout=TIMEOUT) as c:
        server.settimeout(TIMEOUT)
        connection, _ = server.accept()
        with connection:
            connection.sendall(b"python accepted on node's server")
        assert c.recv(100) == b"python accepted on node's server"
    child.send({"do": "dgram"})
    rec.wait_message(lambda m: m == "after dgram", "the message after the refused dgram")
    (error,) = [a[0] for a in rec.args("error")]
    assert isinstance(error, ipc.HandleError)
    assert error.handle_type == "dgram.Socket"
    assert error.payload == "dgram"
    assert "dgram" not in rec.messages(), "the message of a refused handle is in the error"
    assert all(h is None for m, h in got if m != message)
    finish(child, rec)


@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_handles_between_python_parent_and_python_child(
    serialization: str, tmp_path: Path, reap: list
) -> None:
    """Both ways, with a two-argument listener on each end, and messages(handles=True); in
    either framing (the handle answers are framed as the channel is, not always as JSON)."""
    script = python_child(
        tmp_path,
        "import socket\n"
        "from ipc import parent\n"
        "for msg, handle in parent.messages(handles=True):\n"
        "    if handle is None:\n"
        "        parent.send({'plain': msg})\n"
        "        break\n"
        "    handle.settimeout(10)\n"
        "    handle.sendall(b'child got ' + msg.encode())\n"
        "    handle.close()\n"
        "ours, theirs = socket.socketpair()\n"
        "parent.send('yours', handle=theirs)\n"
        "ours.settimeout(10)\n"
        "parent.send({'parent said': ours.recv(100).decode()})\n"
        "parent.disconnect()\n",
    )
    child = ipc.fork(script, serialization=serialization)
    reap.append(child)
    rec = Recorder(child, EVENTS)
    handles: list[Any] = []
    child.on("message", lambda msg, handle: handles.append(handle))
    ours, theirs = socket.socketpair()
    with ours:
        child.send("a socket", handle=theirs)
        ours.settimeout(TIMEOUT)
        assert ours.recv(100) == b"child got a socket"
    child.send("plain")
    assert rec.wait_messages(2)[:2] == [{"plain": "plain"}, "yours"]
    with handles[1] as passed:
        passed.sendall(b"hello child")
    assert rec.wait_messages(3)[2] == {"parent said": "hello child"}
    assert handles[0] is None and handles[2] is None
    assert all(len(args) == 1 for args in rec.args("message")), "one-argument listener"
    assert child.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("transport", ["pipe", "tcp"])
def test_a_handle_needs_an_af_unix_channel(transport: str, reap: list) -> None:
    child = ipc.fork(fixture("echo.py"), args=["hello"], transport=transport)
    reap.append(child)
    Recorder(child).wait_messages(1)  # connected (tcp: the child connects to us)
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        pytest.raises(ipc.InvalidArgumentError, match="AF_UNIX"),
    ):
        child.send("server", handle=server)
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


def test_only_stream_sockets_can_be_sent(reap: list) -> None:
    child = ipc.fork(fixture("echo.py"))
    reap.append(child)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(ipc.InvalidArgumentError, match="stream"),
    ):
        child.send("dgram", handle=udp)
    with pytest.raises(ipc.InvalidArgumentError, match="socket"):
        child.send("not a socket", handle=3)  # type: ignore[arg-type]
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


def test_a_handle_no_listener_takes_is_closed(tmp_path: Path, reap: list) -> None:
    """With only one-parameter listeners the socket is closed at once, not left listening
    until the garbage collector finds it."""
    script = python_child(
        tmp_path,
        "import socket\n"
        "from ipc import parent\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "parent.send({'port': server.getsockname()[1]}, handle=server)\n"
        "server.close()\n"
        "parent.flush()  # returns once the parent's ACK came: our own copy is closed too\n"
        "parent.send('closed mine')\n",
    )
    child = ipc.fork(script)
    reap.append(child)
    rec = Recorder(child, EVENTS)  # one-parameter listeners only
    port = rec.wait_messages(2)[0]["port"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    assert child.wait(timeout=TIMEOUT) == 0
