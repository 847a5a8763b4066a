"""`wrapper=` (an argv prefix the child starts through) and `abandon_streams()`.

The web app confines its children by starting them through ``setpriv`` / ``prlimit`` / a
cgroup-joining shell; these tests pin what that needs from `ipc`: the wrapper execs the
program, so the pid, the fds (extra pipes, the channel) and a missing program's ENOENT are the
program's own. `abandon_streams()` lets a child close although a `setsid` grandchild holds
its pipes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from ipctest import PYTHON, Recorder, needs_node, wait_gone

import ipc

#: A wrapper that says it ran (on stderr) and execs the rest of its argv.
SAYS_HI = ["/bin/sh", "-c", 'echo "wrapper pid $$" >&2; exec "$@"', "wrapper"]


def wrapper_pid(rec: Recorder) -> int:
    line = rec.output("stderr").decode().splitlines()[0]
    assert line.startswith("wrapper pid "), line
    return int(line.split()[-1])


def test_spawn_through_a_wrapper_keeps_the_programs_pid(reap: list) -> None:
    child = ipc.spawn(PYTHON, ["-c", "import os; print(os.getpid())"], wrapper=SAYS_HI)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_closed()
    assert int(rec.output("stdout")) == child.pid == wrapper_pid(rec)
    assert rec.args("exit") == [(0, None)]


def test_extra_pipes_reach_the_program_through_a_wrapper(reap: list) -> None:
    code = "import os; os.write(3, str(os.getpid()).encode()); os.close(3)"
    child = ipc.spawn(PYTHON, ["-c", code], stdio=["pipe"] * 4, wrapper=SAYS_HI)
    reap.append(child)
    rec = Recorder(child, events=("stderr", "fd3", "exit", "close", "error"))
    rec.wait_closed()
    assert int(rec.output("fd3")) == child.pid == wrapper_pid(rec)


#: Children that answer the first message with their pid and that message, then finish.
ECHO_PID = {
    "child.py": "import os\nfrom ipc import parent\n"
    "parent.send({'pid': os.getpid(), 'echo': parent.recv(timeout=30)})\n",
    "child.js": "process.on('message', (m) => { process.send({pid: process.pid, echo: m}); "
    "process.disconnect(); });\n",
}


@pytest.mark.parametrize(
    ("name", "transport"),
    [
        ("child.py", "pipe"),
        ("child.py", "socketpair"),
        pytest.param("child.js", "socketpair", marks=needs_node),
        pytest.param("child.js", "unix", marks=needs_node),
        pytest.param("child.js", "tcp", marks=needs_node),
    ],
)
def test_fork_through_a_wrapper_keeps_the_channel(
    reap: list, tmp_path: Path, name: str, transport: str
) -> None:
    script = tmp_path / name
    script.write_text(ECHO_PID[name])
    child = ipc.fork(script, transport=transport, silent=True, wrapper=SAYS_HI)
    reap.append(child)
    rec = Recorder(child)
    child.send("hi")
    assert rec.wait_messages(1) == [{"pid": child.pid, "echo": "hi"}]
    rec.wait_closed()
    assert wrapper_pid(rec) == child.pid


def test_a_missing_program_behind_a_wrapper_is_enoent(reap: list) -> None:
    """Not the wrapper's "exit 127": the same error as without a wrapper."""
    child = ipc.spawn("no-such-program-xyz", wrapper=SAYS_HI)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_closed()
    (error,) = rec.args("error")
    assert isinstance(error[0], ipc.SpawnError) and error[0].code == "ENOENT"
    assert child.state == "failed" and child.pid is None


def test_wrapper_must_be_a_list_of_strings() -> None:
    with pytest.raises(ipc.InvalidArgumentError, match="wrapper"):
        ipc.spawn("true", wrapper="setpriv --")  # type: ignore[arg-type]


def test_abandon_streams_closes_a_child_whose_grandchild_holds_its_pipes(reap: list) -> None:
    # The grandchild leaves the process group (setsid), so no group kill reaches it, and it
    # keeps the child's stdout and stderr open: without abandon_streams, no `close`.
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(['setsid', 'sleep', '60'])\n"
        "print(p.pid, flush=True)\n"
    )
    child = ipc.spawn(PYTHON, ["-c", code])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_output(b"\n")
    grandchild = int(rec.output("stdout"))
    try:
        assert rec.wait_event("exit") == (0, None)
        assert not child.closed
        child.abandon_streams()
        assert rec.wait_closed() == (0, None)
        assert rec.names().count("close") == 1
    finally:
        os.kill(grandchild, signal.SIGKILL)
        assert wait_gone(grandchild)


def test_abandon_streams_closes_the_channel_a_grandchild_holds(reap: list, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(  # the grandchild inherits the channel's fd (NODE_CHANNEL_FD)
        "import os, subprocess\nfrom ipc import parent\n"
        "fd = int(os.environ['NODE_CHANNEL_FD'])\n"
        "p = subprocess.Popen(['setsid', 'sleep', '60'], pass_fds=[fd])\n"
        "parent.send(p.pid)\n"
    )
    child = ipc.fork(script, transport="socketpair", silent=True)
    reap.append(child)
    rec = Recorder(child)
    (grandchild,) = rec.wait_messages(1)
    try:
        assert rec.wait_event("exit") == (0, None)
        assert not child.closed
        child.abandon_streams()
        rec.wait_closed()
        assert "disconnect" in rec.names() and not child.connected
    finally:
        os.kill(grandchild, signal.SIGKILL)
        assert wait_gone(grandchild)
