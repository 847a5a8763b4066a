"""`ipc.fork`: messages both ways over every transport, both framings, and Node on either end.

Every child here is a real process. Python children use `from ipc import parent`; Node children
are the seeds' programs, unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from ipctest import (
    NODE,
    NODE_TRANSPORTS,
    TIMEOUT,
    TRANSPORTS,
    Recorder,
    fixture,
    needs_node,
)

import ipc

MIB = 1024 * 1024

PAYLOADS: list[Any] = [
    "开始计算",
    50005000,
    3.25,
    None,
    True,
    ["a", 1, None],
    {"min": 0, "max": 10000},
    {"deep": {"er": {"est": [1, {"x": "ünïcødé 🙂"}]}}, "nl": "line1\nline2", "q": '"\\'},
]


def echo(transport: str, reap: list, **options: Any) -> tuple[ipc.ChildProcess, Recorder]:
    child = ipc.fork(fixture("echo.py"), args=["hello"], transport=transport, **options)
    reap.append(child)
    return child, Recorder(child)


def finish(child: ipc.ChildProcess, rec: Recorder) -> None:
    """Let the echo child end (disconnect) and check it exited cleanly and closed."""
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0
    rec.wait_for("close")
    assert child.exit_code == 0
    assert child.signal_code is None
    assert not child.connected
    assert not rec.args("error"), rec.args("error")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_round_trip_both_ways(transport: str, reap: list) -> None:
    child, rec = echo(transport, reap)
    # child -> parent first, unprompted
    hello = rec.wait_messages(1)[0]
    assert hello["hello"] == "from python"
    assert hello["pid"] == child.pid
    assert child.connected
    expected = transport if transport != "auto" else child.transport
    assert child.transport == expected
    assert child.transport in ("pipe", "socketpair", "unix", "tcp")
    # parent -> child -> parent, every kind of JSON value
    for payload in PAYLOADS:
        assert child.send(payload) is True
    got = rec.wait_messages(1 + len(PAYLOADS))[1:]
    assert got == PAYLOADS
    finish(child, rec)


def test_auto_picks_socketpair_as_documented(reap: list) -> None:
    child, rec = echo("auto", reap)
    rec.wait_messages(1)
    assert child.transport == "socketpair"
    finish(child, rec)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_mib_message(transport: str, reap: list) -> None:
    child, rec = echo(transport, reap)
    big = {"blob": "x" * MIB, "tail": "end ✓"}
    child.send(big)
    got = rec.wait_messages(2)[1]
    assert got == big
    finish(child, rec)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_many_messages_keep_their_order(transport: str, reap: list) -> None:
    child, rec = echo(transport, reap)
    n = 2000
    for i in range(n):
        child.send({"i": i, "pad": "p" * (i % 50)})
    got = rec.wait_messages(1 + n)[1:]
    assert [m["i"] for m in got] == list(range(n))
    finish(child, rec)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_binary_serialization_carries_bytes(transport: str, reap: list) -> None:
    child, rec = echo(transport, reap, serialization="binary")
    assert rec.wait_messages(1)[0]["hello"] == "from python"
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value, many newlines
    child.send(blob)
    child.send(b"")
    child.send({"json": "still works", "n": [1, 2]})
    got = rec.wait_messages(4)[1:]
    assert isinstance(got[0], bytes)
    assert got[0] == blob
    assert got[1] == b""
    assert got[2] == {"json": "still works", "n": [1, 2]}
    finish(child, rec)


def test_bytes_over_a_json_channel_is_refused(reap: list) -> None:
    child, rec = echo("auto", reap)
    rec.wait_messages(1)
    with pytest.raises(ipc.SerializationError):
        child.send(b"raw bytes need serialization='binary'")
    with pytest.raises(ipc.SerializationError):
        child.send({"a set": {1, 2}})
    assert child.connected, "a refused message must not break the channel"
    child.send("ok")
    assert rec.wait_messages(2)[1] == "ok"
    finish(child, rec)


def test_fork_passes_args_env_cwd(tmp_path, reap: list) -> None:
    script = tmp_path / "show.py"
    script.write_text(
        "import os, sys\n"
        "from ipc import parent\n"
        "parent.send({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'v': os.environ.get('V'),\n"
        "             'unbuffered': os.environ.get('PYTHONUNBUFFERED')})\n"
        "parent.disconnect()\n"
    )
    env = {"V": "value-42", "PATH": "/usr/bin:/bin"}
    child = ipc.fork(str(script), args=["a", "b c"], cwd=str(tmp_path), env=env)
    reap.append(child)
    rec = Recorder(child)
    msg = rec.wait_messages(1)[0]
    assert msg["argv"] == ["a", "b c"]
    assert msg["cwd"] == str(tmp_path)
    assert msg["v"] == "value-42"
    assert msg["unbuffered"] == "1"
    assert child.wait(timeout=TIMEOUT) == 0


def test_unknown_transport_is_an_invalid_argument() -> None:
    with pytest.raises(ipc.InvalidArgumentError):
        ipc.fork(fixture("echo.py"), transport="carrier-pigeon")


# --- Node on the other end -------------------------------------------------------------------


@needs_node
@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_seed_compute_js_unchanged(transport: str, reap: list) -> None:
    """Seed 000's compute.js, byte for byte, answers 50005000 through our channel."""
    child = ipc.fork(fixture("compute.js"), transport=transport, silent=True)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("spawn")
    assert child.send("开始计算")
    assert rec.wait_messages(1) == [50005000]
    out = rec.wait_output("子进程接收到的信息: 开始计算".encode())
    assert f"子进程 ID: {child.pid}".encode() in out
    # compute.js keeps listening (Node keeps a child alive while its channel is open)
    assert child.exit_code is None
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0
    rec.wait_for("close")
    assert not rec.args("error"), rec.args("error")


@needs_node
def test_node_child_refuses_the_pipe_transport() -> None:
    """Node needs one duplex fd; two pipes would hang it. A clear error instead."""
    with pytest.raises(ipc.SpawnError) as info:
        ipc.fork(fixture("compute.js"), transport="pipe")
    assert "pipe" in str(info.value)


@needs_node
@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_node_child_messages_before_listeners_and_echo(transport: str, reap: list) -> None:
    child = ipc.fork(fixture("node_sender.js"), args=["5"], transport=transport)
    reap.append(child)
    rec = Recorder(child)
    first = rec.wait_messages(5)
    assert first == [{"seq": i, "from": "node"} for i in range(5)]
    child.send({"ü": "ñ", "n": [1, 2.5, None]})
    assert rec.wait_messages(6)[5] == {"echo": {"ü": "ñ", "n": [1, 2.5, None]}}
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@needs_node
def test_node_parent_with_python_child(child_env: dict[str, str]) -> None:
    """Node's own `child_process.fork(child.py, {execPath: python})` talks to `ipc.parent`."""
    assert NODE is not None
    proc = subprocess.run(
        [NODE, fixture("node_parent.js"), fixture("py_child_for_node.py"), sys.executable],
        env=child_env,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    messages = [line["message"] for line in lines if "message" in line]
    assert len(messages) == 1, lines
    reply = messages[0]
    assert reply["reply"] == {"hello": "from node", "n": 41}
    assert reply["n"] == 42
    assert reply["text"] == "你好"
    assert {"exit": {"code": 0, "signal": None}} in lines, lines


@needs_node
def test_node_parent_via_exec_file(child_env: dict[str, str]) -> None:
    """The same check through our own `exec_file`, as the issue suggests."""
    assert NODE is not None
    result = ipc.exec_file(
        NODE,
        [fixture("node_parent.js"), fixture("py_child_for_node.py"), sys.executable],
        env=child_env,
        timeout=TIMEOUT,
    )
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines[0]["message"]["n"] == 42
    assert lines[-1] == {"exit": {"code": 0, "signal": None}}
