"""`ipc.spawn`: output streams, exit codes, stdin, the extra fd 3 pipe, and start failures."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from ipctest import PYTHON, TIMEOUT, Recorder, process_gone

import ipc


def py(code: str, **options) -> ipc.ChildProcess:
    return ipc.spawn(PYTHON, ["-c", code], **options)


def test_stdout_and_stderr_arrive_complete_and_in_order(reap: list) -> None:
    code = (
        "import sys\n"
        "for i in range(3000):\n"
        "    sys.stdout.write(f'out {i}\\n')\n"
        "    if i % 100 == 0: sys.stderr.write(f'err {i}\\n')\n"
    )
    child = py(code)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("close")
    expected_out = "".join(f"out {i}\n" for i in range(3000)).encode()
    expected_err = "".join(f"err {i}\n" for i in range(0, 3000, 100)).encode()
    assert rec.output("stdout") == expected_out
    assert rec.output("stderr") == expected_err
    assert all(isinstance(a[0], bytes) for a in rec.args("stdout"))
    assert rec.args("exit") == [(0, None)]
    assert child.exit_code == 0
    assert child.returncode == 0
    assert child.transport is None
    assert child.pid is not None


def test_event_order_spawn_output_exit_close(reap: list) -> None:
    child = py("import sys; print('hello'); sys.stderr.write('bye\\n'); sys.exit(3)")
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("close")
    names = rec.names()
    assert names[0] == "spawn"
    assert names[-1] == "close"
    assert names.count("close") == 1
    assert names.count("exit") == 1
    last_output = max(i for i, n in enumerate(names) if n in ("stdout", "stderr"))
    assert last_output < names.index("close")
    assert names.index("exit") < names.index("close")
    assert rec.args("exit") == [(3, None)]
    assert rec.args("close") == [(3, None)]
    assert child.exit_code == 3
    assert child.signal_code is None
    assert child.state == "exited"
    assert not rec.args("error")


@pytest.mark.parametrize("code", [0, 1, 2, 42, 255])
def test_exit_codes(code: int, reap: list) -> None:
    child = py(f"import sys; sys.exit({code})")
    reap.append(child)
    assert child.wait(timeout=TIMEOUT) == code
    assert child.exit_code == code
    assert child.signal_code is None


def test_stdin_write_and_end(reap: list) -> None:
    child = py("import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data[::-1])")
    reap.append(child)
    rec = Recorder(child)
    child.write_stdin(b"abc")
    child.write_stdin("déf")  # str is accepted too (UTF-8)
    child.end_stdin()
    rec.wait_for("close")
    assert rec.output() == "abcdéf".encode()[::-1]
    assert child.exit_code == 0


def test_stdin_streams_line_by_line(reap: list) -> None:
    """A reply arrives before stdin ends: output streams live, nothing waits for EOF."""
    child = py("import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)")
    reap.append(child)
    rec = Recorder(child)
    child.write_stdin(b"one\n")
    rec.wait_output(b"ONE\n")
    child.write_stdin(b"two\n")
    rec.wait_output(b"ONE\nTWO\n")
    child.end_stdin()
    assert child.wait(timeout=TIMEOUT) == 0


#: A child that reads one byte of stdin (so a write to it is under way), leaves a grandchild
#: in its process group that holds stdin open and never reads it, prints "left" and exits.
#: The grandchild's stdout and stderr go to /dev/null: only stdin is held.
LEAVES_STDIN_HELD = (
    "import os, sys, time\n"
    "os.read(0, 1)\n"
    "if os.fork() == 0:\n"
    "    null = os.open(os.devnull, os.O_WRONLY)\n"
    "    os.dup2(null, 1)\n"
    "    os.dup2(null, 2)\n"
    "    time.sleep(120)\n"
    "    os._exit(0)\n"
    "print('left', flush=True)\n"
)


def test_a_blocked_stdin_writer_never_holds_up_the_reactor(reap: list) -> None:
    """A write_stdin() blocked on a pipe a grandchild holds and never reads: the child's exit
    ends the write (BrokenChannelError) and its `exit` event comes; every other child's
    events and every timer go on meanwhile. (The reactor once waited for the writer's lock
    at the exit, and with it every child of the process, until the grandchild ended.)"""
    child = py(LEAVES_STDIN_HELD)
    reap.append(child)
    rec = Recorder(child)
    outcome: list[BaseException | None] = []
    written = threading.Event()

    def writer() -> None:
        try:
            child.write_stdin(b"x" * (4 << 20))  # far more than a pipe holds
            outcome.append(None)
        except ipc.IPCError as exc:
            outcome.append(exc)
        written.set()

    threading.Thread(target=writer, daemon=True).start()
    try:
        rec.wait_output(b"left\n")  # it read our first byte: the write is under way
        assert rec.wait_event("exit") == (0, None)
        assert written.wait(TIMEOUT), "write_stdin() still blocked after the child's exit"
        assert isinstance(outcome[0], ipc.BrokenChannelError), outcome
        other = py("print('other')")
        reap.append(other)
        assert Recorder(other).wait_output(b"other\n") == b"other\n"
        with pytest.raises(ipc.BrokenChannelError):
            child.write_stdin(b"more")
    finally:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the grandchild (it outlived the child)
        except ProcessLookupError:
            pass
    rec.wait_closed()


def test_end_stdin_during_a_blocked_write_does_not_block(reap: list) -> None:
    """end_stdin() while another thread's write waits for room returns at once (here from
    a listener's thread, the reactor), and stdin closes when that write is done, as Node's
    ``end()`` after ``write()``."""
    child = py(
        "import signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
        "sys.stdin.buffer.read(1)\n"
        "print('reading', flush=True)\n"
        "signal.sigwait({signal.SIGUSR1})\n"  # the rest once the test says so
        "data = sys.stdin.buffer.read()\n"  # to end of file
        "print(len(data) + 1, flush=True)\n"
    )
    reap.append(child)
    rec = Recorder(child)
    size = 4 << 20
    done = threading.Event()
    threading.Thread(
        target=lambda: (child.write_stdin(b"y" * size), done.set()), daemon=True
    ).start()
    rec.wait_output(b"reading\n")  # the write is under way; the pipe fills up
    ended = threading.Event()
    ipc.call_soon(lambda: (child.end_stdin(), ended.set()))
    assert ended.wait(TIMEOUT), "end_stdin() blocked the reactor behind a writer"
    with pytest.raises(ipc.ChannelClosedError):
        child.write_stdin(b"after end")
    child.kill("SIGUSR1", group=False)
    assert done.wait(TIMEOUT)
    rec.wait_closed()
    assert rec.output() == f"reading\n{size}\n".encode()
    assert child.exit_code == 0


def test_extra_fd3_pipe_both_ways(reap: list) -> None:
    """Seed 003: stdio[3] = 'pipe' is a duplex socket at fd 3 in the child."""
    code = (
        "import os\n"
        "os.write(3, b'hello master process!')\n"
        "data = os.read(3, 100)\n"
        "print('child got', data.decode(), flush=True)\n"
        "os.write(3, b'|' + data[::-1])\n"
    )
    child = py(code, stdio=["pipe", "pipe", "pipe", "pipe"])
    reap.append(child)
    rec = Recorder(child, events=("spawn", "stdout", "stderr", "fd3", "exit", "close", "error"))
    rec.wait_until(lambda: b"hello master" in rec.output("fd3"), "fd3 data")
    child.write_fd(3, b"ping")
    rec.wait_for("close")
    assert rec.output("fd3") == b"hello master process!|gnip"
    assert rec.output("stdout") == b"child got ping\n"
    assert child.exit_code == 0
    names = rec.names()
    assert max(i for i, n in enumerate(names) if n == "fd3") < names.index("close")


def test_write_fd_to_a_child_that_answers_and_exits_at_once(reap: list) -> None:
    """write_fd() returns once the kernel took the data, even when the child reads it, answers
    and exits (and the reactor closes our end) before the call is back (finding F5: it used
    to switch the shared socket's blocking mode and failed with EBADF switching it back)."""
    code = "import os\nos.write(3, b'ready')\nos.write(3, os.read(3, 100)[::-1])\n"
    for _ in range(100):
        child = py(code, stdio=["ignore", "ignore", "pipe", "pipe"])
        reap.append(child)
        rec = Recorder(child, events=("fd3", "stderr", "close"))
        rec.wait_until(lambda rec=rec: b"ready" in rec.output("fd3"), "ready on fd3")
        child.write_fd(3, b"ping")
        rec.wait_for("close")
        assert rec.output("fd3") == b"readygnip"


def test_write_fd_waits_for_room_in_a_full_pipe(reap: list) -> None:
    """4 MiB to a child that reads slowly: write_fd() waits for room (the socket buffer is far
    smaller) and every byte arrives, while the reactor keeps reading the child's output."""
    code = (
        "import os, sys, time\n"
        "total = 0\n"
        "while total < 4 * 1024 * 1024:\n"
        "    chunk = os.read(3, 65536)\n"
        "    if not chunk:\n"
        "        break\n"
        "    total += len(chunk)\n"
        "    print(total, flush=True)\n"
        "    time.sleep(0.0005)\n"
        "os.write(3, str(total).encode())\n"
    )
    child = py(code, stdio=["ignore", "pipe", "pipe", "pipe"])
    reap.append(child)
    rec = Recorder(child, events=("fd3", "stdout", "stderr", "close"))
    child.write_fd(3, b"x" * (4 * 1024 * 1024))
    rec.wait_for("close")
    assert rec.output("fd3") == str(4 * 1024 * 1024).encode()
    assert rec.output("stdout").split()[-1] == str(4 * 1024 * 1024).encode()


def test_fd3_with_node_like_seed_003(reap: list) -> None:
    """Seed 003's child writes to an extra pipe with no stdout/stderr pipes at all."""
    child = py("import os; os.write(3, b'via fd3')", stdio=["ignore", "ignore", "ignore", "pipe"])
    reap.append(child)
    rec = Recorder(child, events=("fd3", "exit", "close", "error"))
    rec.wait_for("close")
    assert rec.output("fd3") == b"via fd3"


def test_inherit_and_ignore(reap: list, capfd: pytest.CaptureFixture[str]) -> None:
    child = py(
        "import sys; print('to the parent terminal'); sys.stderr.write('ignored\\n')",
        stdio=["ignore", "inherit", "ignore"],
    )
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("close")
    assert rec.output("stdout") == b""
    assert "to the parent terminal" in capfd.readouterr().out


def test_shell_true(reap: list) -> None:
    child = ipc.spawn("echo $((6 * 7)) && exit 5", shell=True)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("close")
    assert rec.output() == b"42\n"
    assert child.exit_code == 5


def test_missing_program_is_an_error_event(reap: list) -> None:
    child = ipc.spawn("definitely-not-a-program-4242", ["x"])
    reap.append(child)
    rec = Recorder(child)
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.SpawnError)
    assert err.code == "ENOENT"
    assert "definitely-not-a-program-4242" in str(err)
    assert "spawn" not in rec.names()
    assert child.pid is None


def test_missing_cwd_is_an_error_event(tmp_path, reap: list) -> None:
    child = ipc.spawn(PYTHON, ["-c", "pass"], cwd=str(tmp_path / "nope"))
    reap.append(child)
    rec = Recorder(child)
    err = rec.wait_for("error")[0][0]
    assert isinstance(err, ipc.SpawnError)
    assert err.code == "ENOENT"


@pytest.mark.parametrize("replace", [True, False], ids=["env-dict", "env-none"])
def test_env_replaces_or_inherits(replace: bool, reap: list, monkeypatch) -> None:
    monkeypatch.setenv("IPC_TEST_MARKER", "inherited")
    env = {"ONLY": "1"} if replace else None
    child = py("import os, json; print(json.dumps(dict(os.environ)))", env=env)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("close")
    seen = json.loads(rec.output())
    if replace:
        assert seen.get("ONLY") == "1"
        assert "IPC_TEST_MARKER" not in seen, "a dict env replaces os.environ, as in Node"
    else:
        assert seen.get("IPC_TEST_MARKER") == "inherited"


def test_wait_timeout_raises_timeout_error(reap: list) -> None:
    child = py("import time; time.sleep(60)")
    reap.append(child)
    with pytest.raises(TimeoutError):
        child.wait(timeout=0.2)
    with pytest.raises(ipc.ProcessTimeoutError):
        child.wait(timeout=0.05)
    assert child.exit_code is None
    child.kill("SIGKILL")
    assert child.wait(timeout=TIMEOUT) == -9


def test_with_block_reaps() -> None:
    """Leaving `with` closes stdin and waits, as Popen: a child that runs until its stdin
    ends is done and reaped. (It kills nothing: a child that slept on made this test wait
    out its whole sleep.)"""
    with py("import sys; sys.stdin.read()") as child:
        pid = child.pid
        assert pid is not None
    assert child.exit_code == 0
    assert process_gone(pid), "leaving `with` reaps the child"


def test_with_block_on_a_finished_child() -> None:
    with py("print('done')", stdio=["ignore", "ignore", "ignore"]) as child:
        assert child.wait(timeout=TIMEOUT) == 0
    assert child.exit_code == 0


def test_forked_python_child_output_streams_live(tmp_path, reap: list) -> None:
    """PYTHONUNBUFFERED=1: a silent child's print() arrives while the child still runs."""
    script = tmp_path / "talker.py"
    script.write_text(
        "from ipc import parent\n"
        "print('ready')\n"
        "for msg in parent.messages():\n"
        "    print('got', msg)\n"
    )
    child = ipc.fork(str(script), silent=True)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_output(b"ready\n")
    child.send("ping")
    rec.wait_output(b"got ping\n")
    assert child.exit_code is None
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0
