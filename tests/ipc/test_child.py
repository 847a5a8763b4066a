"""The child side (`from ipc import parent`), fork options, child state, and Node children
beyond the seed: big messages, kills, and Node reading an extra fd 3 pipe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ipctest import (
    NODE,
    NODE_TRANSPORTS,
    PYTHON,
    TIMEOUT,
    TRANSPORTS,
    Recorder,
    fixture,
    needs_node,
)

import ipc

ON_STYLE = """
import sys
from ipc import parent

assert parent.connected

def on_message(msg):
    if msg == "bye":
        parent.send({"connected": parent.connected, "argv": sys.argv[1:]})
        parent.disconnect()
    else:
        parent.send({"double": msg * 2})

parent.on("message", on_message)
parent.send("listening")
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_parent_on_keeps_the_child_alive_until_disconnect(
    transport: str, tmp_path: Path, reap: list
) -> None:
    """`parent.on("message")` keeps the child running after its main code ends (as Node)."""
    script = tmp_path / "on_style.py"
    script.write_text(ON_STYLE)
    child = ipc.fork(str(script), args=["x"], transport=transport)
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_messages(1) == ["listening"]
    child.send(21)
    assert rec.wait_messages(2)[1] == {"double": 42}
    assert child.exit_code is None, "the child's main code is done, but it listens"
    child.send("bye")
    assert rec.wait_messages(3)[2] == {"connected": True, "argv": ["x"]}
    assert child.wait(timeout=TIMEOUT) == 0
    rec.wait_for("close")
    assert "disconnect" in rec.names()


def test_child_ends_when_the_parent_disconnects(tmp_path: Path, reap: list) -> None:
    script = tmp_path / "on_style.py"
    script.write_text(ON_STYLE)
    child = ipc.fork(str(script))
    reap.append(child)
    rec = Recorder(child)
    rec.wait_messages(1)
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


def test_a_child_with_listeners_keeps_no_backlog(reap: list) -> None:
    """Messages handled by a listener are not also kept for a messages() loop nobody runs:
    a long-lived child that listens must not grow with every message it gets."""
    child = ipc.fork(fixture("listener_backlog.py"))
    reap.append(child)
    rec = Recorder(child)
    for n in range(2000):
        child.send({"n": n})
    child.send("backlog?")
    assert rec.wait_messages(1)[0] == {"handled": 2000, "queued": 0}
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


def test_a_child_that_cannot_reach_its_parent_says_so_every_time() -> None:
    """A channel address nobody listens on: the first send says why, later ones say closed
    (never "open but unusable")."""
    import socket
    import subprocess

    from ipc.transports import ENV_CHANNEL

    with socket.socket() as probe:  # a free port, closed again: nobody listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import ipc\n"
        "from ipc import parent\n"
        "for _ in range(2):\n"
        "    try:\n"
        "        parent.send(1)\n"
        "    except ipc.IPCError as exc:\n"
        "        print(type(exc).__name__, parent.connected)\n"
    )
    env = {**os.environ, ENV_CHANNEL: f"tcp:127.0.0.1:{port}"}
    proc = subprocess.run(
        [PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.stdout.split("\n")[:2] == [
        "BrokenChannelError False",
        "ChannelClosedError False",
    ], proc.stderr


def test_exec_path_and_exec_argv(tmp_path: Path, reap: list) -> None:
    script = tmp_path / "flags.py"
    script.write_text(
        "import sys\nfrom ipc import parent\n"
        "parent.send({'utf8': sys.flags.utf8_mode, 'exe': sys.executable})\n"
        "parent.disconnect()\n"
    )
    child = ipc.fork(str(script), exec_path=PYTHON, exec_argv=["-X", "utf8"])
    reap.append(child)
    rec = Recorder(child)
    msg = rec.wait_messages(1)[0]
    assert msg["utf8"] == 1
    assert child.wait(timeout=TIMEOUT) == 0


def test_state_and_children_registry(reap: list) -> None:
    child = ipc.fork(fixture("echo.py"), args=["hello"])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_messages(1)
    assert child.state == "running"
    assert child in ipc.children()
    child.disconnect()
    rec.wait_for("close")
    assert child.state == "exited"
    assert child not in ipc.children()

    failed = ipc.spawn("definitely-not-a-program-4242")
    Recorder(failed).wait_for("error")
    assert failed.state == "failed"


def test_silent_false_inherits_output(capfd: pytest.CaptureFixture[str], reap: list) -> None:
    child = ipc.fork(fixture("burst.py"), args=["1", "3"])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("close")
    assert rec.output() == b"", "silent=False: no stdout events, the output is inherited"
    assert "line 2" in capfd.readouterr().out


# --- Node children beyond the seed -----------------------------------------------------------


@needs_node
@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_node_child_one_mib_and_unicode(transport: str, reap: list) -> None:
    child = ipc.fork(fixture("node_sender.js"), args=["0"], transport=transport)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("spawn")
    big = {"blob": "ü" * (512 * 1024), "nested": {"list": [1, None, "开始计算"]}}
    child.send(big)
    child.send("after")
    got = rec.wait_messages(2)
    assert got[0] == {"echo": big}
    assert got[1] == {"echo": "after"}
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@needs_node
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL", 2])
def test_kill_a_node_child(sig: str | int, reap: list) -> None:
    child = ipc.fork(fixture("compute.js"), silent=True)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("spawn")
    child.send("开始计算")
    assert rec.wait_messages(1) == [50005000]
    assert child.kill(sig)
    rec.wait_for("close")
    expected = {"SIGTERM": "SIGTERM", "SIGKILL": "SIGKILL", 2: "SIGINT"}[sig]
    assert rec.args("exit") == [(None, expected)]
    assert child.signal_code == expected


@needs_node
def test_node_child_writes_to_an_extra_fd3_pipe(reap: list) -> None:
    """Seed 003: a Node child opens fd 3 as a socket and writes to its parent."""
    assert NODE is not None
    code = (
        "const net = require('net');"
        "const pipe = new net.Socket({ fd: 3 });"
        "pipe.on('data', (d) => { pipe.end('echo:' + d); });"
        "pipe.write('hello master process!');"
    )
    child = ipc.spawn(NODE, ["-e", code], stdio=["ignore", "pipe", "pipe", "pipe"])
    reap.append(child)
    rec = Recorder(child, events=("spawn", "stdout", "stderr", "fd3", "exit", "close", "error"))
    rec.wait_until(lambda: b"hello master process!" in rec.output("fd3"), "fd3 hello")
    child.write_fd(3, b"ping")
    rec.wait_for("close")
    assert rec.output("fd3") == b"hello master process!echo:ping"
    assert child.exit_code == 0, rec.output("stderr")


@needs_node
def test_exec_file_node_version() -> None:
    assert NODE is not None
    r = ipc.exec_file(NODE, ["--version"])
    assert r.stdout.startswith("v")
    assert r.exit_code == 0


def test_wait_closed_and_a_single_disconnect_event(reap: list) -> None:
    child = ipc.fork(fixture("echo.py"), args=["hello"])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_messages(1)
    with pytest.raises(ipc.ProcessTimeoutError):
        child.wait_closed(timeout=0.1)
    child.disconnect()
    # A second call: Node emits an `error` (ERR_IPC_DISCONNECTED); raising ChannelClosedError
    # is the Python-shaped equivalent. Either way no second `disconnect` event.
    try:
        child.disconnect()
    except ipc.ChannelClosedError:
        pass
    child.wait_closed(timeout=TIMEOUT)
    assert rec.names().count("disconnect") == 1
    assert rec.names()[-1] == "close"


def test_kill_of_a_child_that_never_started() -> None:
    child = ipc.spawn("definitely-not-a-program-4242")
    Recorder(child).wait_for("error")
    assert child.kill("SIGTERM") is False


def test_exec_with_another_shell() -> None:
    r = ipc.exec("echo $0", shell="/bin/bash")
    assert r.stdout.strip().endswith("bash")
