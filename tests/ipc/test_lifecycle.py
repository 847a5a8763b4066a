"""A child's life from start to `close`, exact under every fault: one state machine, an exit
status kept as the integer the kernel gave, no event lost to the order in which the reactor
notices fds, a failed start that is never silent, and one child's fault that touches no other.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ipctest import PYTHON, ROOT, TIMEOUT, TRANSPORTS, Recorder, fixture, python_child

import ipc
from ipc.process import ChildProcess, LaunchSpec

MISSING = "definitely-not-a-program-4242"

IGNORES_TERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@contextlib.contextmanager
def children_ignore_sigterm() -> Iterator[None]:
    """Children started in this block ignore SIGTERM from their first instruction: an ignored
    disposition is inherited through fork and exec. (A child that ignores it itself could be
    killed by a short timeout before it got that far, on a busy machine.) The test runs on
    the main thread, the only one that may change a disposition."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ipc_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ipc" and r.levelno >= logging.WARNING]


# --- exit status: an integer, names only for display ------------------------------------------


def test_a_signal_without_a_python_name_is_reported(
    reap: list, caplog: pytest.LogCaptureFixture
) -> None:
    signum = signal.SIGRTMIN + 1
    child = ipc.spawn(PYTHON, ["-c", f"import os; os.kill(os.getpid(), {signum})"])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_closed()
    assert rec.args("exit") == [(None, "SIGRTMIN+1")]
    assert rec.args("close") == [(None, "SIGRTMIN+1")]
    assert child.returncode == -signum
    assert child.wait(timeout=TIMEOUT) == -signum
    assert child.signal_code == "SIGRTMIN+1" and child.exit_code is None
    assert child.state == ipc.State.SIGNALED
    assert ipc_errors(caplog) == [], "nothing went wrong, so nothing is logged"


def test_signal_names_and_numbers_beyond_python_names(reap: list) -> None:
    assert ipc.signal_name(signal.SIGRTMIN + 1) == "SIGRTMIN+1"
    assert ipc.signal_name(signal.SIGRTMIN) == "SIGRTMIN"
    assert ipc.signal_name(signal.SIGRTMAX - 1) == "SIGRTMAX-1"
    assert ipc.signal_number("SIGRTMIN+2") == signal.SIGRTMIN + 2
    assert ipc.signal_number("rtmin+2") == signal.SIGRTMIN + 2
    assert ipc.signal_number(signal.SIGRTMIN + 3) == signal.SIGRTMIN + 3
    assert ipc.signal_number(f"SIG{int(signal.SIGRTMIN) + 3}") == signal.SIGRTMIN + 3
    for bad in ("SIGRTMIN+99", 0, 999, "SIGNOPE"):
        with pytest.raises(ipc.InvalidArgumentError):
            ipc.signal_number(bad)
    child = ipc.spawn(PYTHON, ["-c", "print('ready', flush=True); import time; time.sleep(60)"])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_output(b"ready\n")
    assert child.kill("SIGRTMIN+2") is True
    assert rec.wait_closed() == (None, "SIGRTMIN+2")


# --- one child's fault touches no other --------------------------------------------------------


class FaultyOutput(ChildProcess):
    """A child whose output handler breaks (a bug in the library, simulated): the reactor must
    neither spin on the still-readable pipe nor let it reach any other child."""

    def _on_output(self, fd: int) -> None:
        raise RuntimeError("boom in the output handler")


def test_a_failing_reactor_callback_is_isolated_to_its_child(
    reap: list, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = ipc.fork(fixture("echo.py"))
    reap.append(healthy)
    healthy_rec = Recorder(healthy)
    faulty = FaultyOutput(
        LaunchSpec(
            kind="spawn",
            argv=[
                PYTHON,
                "-c",
                "import time\nwhile True: print('x', flush=True); time.sleep(0.01)",
            ],
        )
    )
    reap.append(faulty)
    rec = Recorder(faulty)
    rec.wait_closed()
    errors = rec.args("error")
    assert len(errors) == 1, errors
    error = errors[0][0]
    assert isinstance(error, ipc.IPCError)
    assert isinstance(error.__cause__, RuntimeError)
    assert "boom" in str(error)
    assert rec.args("close") == [(None, "SIGKILL")], "the child is stopped, reaped and closed"
    assert faulty.wait(timeout=TIMEOUT) == -signal.SIGKILL
    assert faulty not in ipc.children()
    failures = ipc_errors(caplog)
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "\n" not in failures[0].getMessage()
    # The other child never noticed.
    for i in range(20):
        healthy.send(i)
    assert healthy_rec.wait_messages(20) == list(range(20))
    assert healthy_rec.args("error") == []


class FaultyExit(ChildProcess):
    """A child whose exit handling breaks after the reap: its waiters must still be freed."""

    def _exit(self) -> None:
        raise RuntimeError("boom in the exit handler")


def test_a_failing_exit_handler_still_ends_the_child_s_story(
    reap: list, caplog: pytest.LogCaptureFixture
) -> None:
    child = FaultyExit(LaunchSpec(kind="spawn", argv=[PYTHON, "-c", "pass"], stdout="ignore"))
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_closed() == (0, None)
    assert child.wait(timeout=TIMEOUT) == 0
    assert [type(args[0].__cause__) for args in rec.args("error")] == [RuntimeError]
    assert child not in ipc.children()
    assert len(ipc_errors(caplog)) == 1


# --- a failed start is not silent --------------------------------------------------------------


def test_wait_raises_the_spawn_error_when_the_child_never_started() -> None:
    child = ipc.spawn(MISSING)
    with pytest.raises(ipc.SpawnError) as info:
        child.wait(timeout=TIMEOUT)
    assert info.value.code == "ENOENT"
    with pytest.raises(ipc.SpawnError):
        child.wait_closed(timeout=TIMEOUT)
    assert child.state == ipc.State.FAILED
    assert child.returncode is None


def _run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT * 2
    )


def test_an_unhandled_error_goes_to_stderr() -> None:
    proc = _run_script(f"import ipc\nipc.spawn({MISSING!r})\n")
    assert proc.returncode == 0, proc.stderr
    assert "Unhandled 'error' event" in proc.stderr
    assert f"spawn {MISSING} ENOENT" in proc.stderr
    assert proc.stderr.count("Unhandled") == 1


def test_an_unhandled_error_is_reported_while_the_program_runs() -> None:
    """Not only at exit: a long-running parent learns of it soon after."""
    code = f"import ipc, time\nipc.spawn({MISSING!r})\ntime.sleep(60)\n"
    proc = subprocess.Popen([PYTHON, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], TIMEOUT)
        assert ready, "nothing on stderr"
        assert "Unhandled 'error' event" in proc.stderr.readline()
    finally:
        proc.kill()
        proc.communicate()


FLOOD = """
import sys, threading
import ipc
child = ipc.fork(sys.argv[1])
child.wait(20)
child.wait_closed(20)
for i in range(20000):  # each send to a closed channel is one `error`, and nobody listens
    child.send(i)
done = threading.Event()
ipc.call_later(1.5, done.set)  # past the grace: the reactor must still be free
assert done.wait(20), "the reactor is stuck"
print("free", flush=True)
"""


def test_a_flood_of_unhandled_errors_is_reported_in_a_few_lines(tmp_path: Path) -> None:
    """The lab's cancelled benchmark sends on to a killed child: 20,000 `error` events with no
    listener. stderr gets a few lines and a count, and the reactor stays free."""
    script = python_child(tmp_path, "pass\n", "gone.py")
    proc = subprocess.run(
        [PYTHON, "-c", FLOOD, script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout == "free\n", proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 5, lines[:10]
    assert "Unhandled 'error' event" in lines[0]
    assert "19997 more" in proc.stderr or "19,997 more" in proc.stderr, lines


HANDLED = "def handled(e):\n    print('handled', e.code, flush=True)\n    done.set()\n"


@pytest.mark.parametrize(
    "handling",
    [
        "c.on('error', handled)",
        "c.once('error', handled)",
        "try:\n    c.wait()\nexcept ipc.SpawnError as e:\n    handled(e)",
    ],
    ids=["on", "once", "wait"],
)
def test_a_handled_error_stays_off_stderr(handling: str) -> None:
    code = f"import ipc, threading\ndone = threading.Event()\n{HANDLED}c = ipc.spawn({MISSING!r})\n"
    proc = _run_script(f"{code}{handling}\nassert done.wait(10)\n")
    assert proc.returncode == 0 and "handled ENOENT" in proc.stdout, proc.stdout + proc.stderr
    assert "Unhandled" not in proc.stderr


def test_fork_of_a_missing_module_raises_at_once(tmp_path: Path) -> None:
    before = set(ipc.children())
    missing = tmp_path / "no_such_worker.py"
    with pytest.raises(FileNotFoundError) as info:
        ipc.fork(missing)
    assert isinstance(info.value, ipc.SpawnError)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
    assert info.value.code == "ENOENT"
    assert "no_such_worker.py" in str(info.value)
    with pytest.raises(FileNotFoundError):
        ipc.fork("no_such_worker.js", cwd=tmp_path)
    assert set(ipc.children()) == before, "nothing was started"


def test_fork_resolves_a_relative_module_against_cwd(tmp_path: Path, reap: list) -> None:
    python_child(tmp_path, "from ipc import parent\nparent.send('here')\n", "worker.py")
    child = ipc.fork("worker.py", cwd=tmp_path)
    reap.append(child)
    assert Recorder(child).wait_messages(1) == ["here"]


# --- one state machine -------------------------------------------------------------------------


def test_every_state_change_comes_with_its_event(reap: list) -> None:
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def on(event: str) -> Any:
        def listener(*_: Any) -> None:
            seen.append((event, child_box[0].state))
            if event == "close":
                done.set()

        return listener

    child_box: list[ipc.ChildProcess] = []
    child = ipc.fork(
        fixture("echo.py"),
        args=["hello"],
        on_created=child_box.append,
        listeners={e: on(e) for e in ("spawn", "message", "exit", "close")},
    )
    reap.append(child)
    assert child_box == [child]
    assert child.state in (ipc.State.STARTING, ipc.State.RUNNING)
    _wait_until(lambda: any(event == "message" for event, _ in seen), "the hello message")
    child.disconnect()
    assert done.wait(TIMEOUT)
    assert seen == [
        ("spawn", "running"),
        ("message", "running"),
        ("exit", "exited"),
        ("close", "exited"),
    ]
    assert isinstance(child.state, ipc.State)
    assert json.dumps({"state": child.state}) == '{"state": "exited"}'
    assert [s.value for s in ipc.State] == ["starting", "running", "exited", "signaled", "failed"]

    failed: list[str] = []
    box3: list[ipc.ChildProcess] = []
    f = ipc.spawn(
        MISSING,
        on_created=box3.append,
        listeners={"error": lambda e: failed.append(box3[0].state)},
    )
    with pytest.raises(ipc.SpawnError):
        f.wait_closed(TIMEOUT)
    assert failed == ["failed"]


def test_on_created_runs_before_any_event(reap: list) -> None:
    order: list[str] = []
    child = ipc.spawn(
        PYTHON,
        ["-c", "print('x')"],
        on_created=lambda c: order.append(f"created {c.pid is None}"),
        listeners={"spawn": lambda: order.append("spawn")},
    )
    reap.append(child)
    child.wait_closed(TIMEOUT)
    assert order == ["created True", "spawn"]


# --- nothing written before death arrives after `exit` ----------------------------------------

SAYS_AND_DIES = (
    "import os, sys\n"
    "from ipc import parent\n"
    "parent.send('answer')\n"
    "sys.stdout.write('out\\n'); sys.stdout.flush()\n"
    "parent.flush()\n"
    "os._exit(0)\n"
)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_messages_and_output_come_before_exit(transport: str, tmp_path: Path, reap: list) -> None:
    """The reactor is held busy until the child has sent, printed and died, so it then finds
    the channel (or the listener), stdout and the exit all ready at once: `exit` still comes
    after everything the child wrote before it died."""
    script = python_child(tmp_path, SAYS_AND_DIES)
    for _ in range(3):
        child = ipc.fork(script, transport=transport, silent=True)
        reap.append(child)
        # Runs on the reactor after the child's own start-up callback: blocks it until the
        # child has exited (without reaping it).
        ipc.call_soon(os.waitid, os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        rec = Recorder(child)
        rec.wait_closed()
        names = rec.names()
        assert rec.messages() == ["answer"], names
        assert rec.output() == b"out\n", names
        exit_at = names.index("exit")
        assert names.index("message") < exit_at, names
        assert max(i for i, n in enumerate(names) if n == "stdout") < exit_at, names


# --- leaving a `with` block ---------------------------------------------------------------------


def test_with_block_closes_stdin_and_waits(reap: list) -> None:
    code = "import sys\ndata = sys.stdin.read()\nprint(len(data), flush=True)\nsys.exit(5)\n"
    with ipc.spawn(PYTHON, ["-c", code]) as child:
        reap.append(child)
        rec = Recorder(child)
        child.write_stdin("abc")
    assert child.returncode == 5, "the child read to the end of stdin and exited by itself"
    rec.wait_closed()
    assert rec.output() == b"3\n"


def test_with_block_disconnects_a_forked_child_and_waits(reap: list) -> None:
    with ipc.fork(fixture("echo.py")) as child:
        reap.append(child)
        rec = Recorder(child)
        child.send("ping")
        rec.wait_messages(1)
    assert child.returncode == 0, "the child's message loop ended with the channel"


# --- timeouts -----------------------------------------------------------------------------------


def test_spawn_timeout_kills_with_kill_signal(reap: list) -> None:
    child = ipc.spawn(
        PYTHON,
        ["-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(60)"],
        timeout=0.3,
        kill_signal="SIGINT",
    )
    reap.append(child)
    assert Recorder(child).wait_closed() == (None, "SIGINT")
    assert child.timed_out and child.killed


def test_fork_timeout(reap: list) -> None:
    child = ipc.fork(fixture("echo.py"), timeout=0.3)
    reap.append(child)
    assert Recorder(child).wait_closed() == (None, "SIGTERM")
    assert child.timed_out


def test_no_timeout_when_the_child_ends_first(reap: list) -> None:
    child = ipc.spawn(PYTHON, ["-c", "pass"], timeout=30)
    reap.append(child)
    assert child.wait(TIMEOUT) == 0
    assert not child.timed_out and not child.killed


def _wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_timeout_is_node_like_by_default_a_child_may_ignore_it(reap: list) -> None:
    with children_ignore_sigterm():
        child = ipc.spawn(PYTHON, ["-c", IGNORES_TERM], timeout=0.2)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_output(b"ready\n")
    _wait_until(lambda: child.timed_out, "the timeout")
    assert child.returncode is None, "SIGTERM was ignored and nothing else was sent"
    child.kill("SIGKILL")
    assert rec.wait_closed() == (None, "SIGKILL")


def test_kill_after_escalates_to_sigkill(reap: list) -> None:
    with children_ignore_sigterm():
        child = ipc.spawn(PYTHON, ["-c", IGNORES_TERM], timeout=0.2, kill_after=0.2)
    reap.append(child)
    assert Recorder(child).wait_closed() == (None, "SIGKILL")
    assert child.timed_out


def test_kill_with_kill_after(reap: list) -> None:
    child = ipc.spawn(PYTHON, ["-c", IGNORES_TERM])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_output(b"ready\n")
    assert child.kill("SIGTERM", kill_after=0.2) is True
    assert rec.wait_closed() == (None, "SIGKILL")


def test_exec_kill_after_escalates() -> None:
    with children_ignore_sigterm():
        child = ipc.exec_file(PYTHON, ["-c", IGNORES_TERM], timeout=0.2, kill_after=0.2, wait=False)
    with pytest.raises(ipc.ExecError) as info:
        child.result.result(timeout=TIMEOUT)
    assert info.value.timed_out and info.value.signal == "SIGKILL"


@pytest.mark.parametrize(
    "options",
    [{"timeout": -1}, {"timeout": "1"}, {"kill_after": -1}, {"kill_signal": "SIGNOPE"}],
    ids=["negative timeout", "str timeout", "negative kill_after", "bad signal"],
)
def test_timeout_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ipc.InvalidArgumentError):
        ipc.spawn(PYTHON, ["-c", "pass"], **options)
    with pytest.raises(ipc.InvalidArgumentError):
        ipc.fork(fixture("echo.py"), **options)
    with pytest.raises(ipc.InvalidArgumentError):
        ipc.exec("true", **options)


# --- exec, streaming ----------------------------------------------------------------------------


def test_exec_streams_output_and_resolves_a_result(tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "print('first', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "print('second', flush=True)\n"
    )
    chunks: list[bytes] = []
    first = threading.Event()

    def on_stdout(data: bytes) -> None:
        chunks.append(data)
        first.set()

    child = ipc.exec_file(PYTHON, ["-c", code], wait=False, listeners={"stdout": on_stdout})
    assert isinstance(child, ipc.ChildProcess)
    assert first.wait(TIMEOUT), "stdout arrives while the command runs"
    assert not child.result.done()
    go.write_text("")
    result = child.result.result(timeout=TIMEOUT)
    assert isinstance(result, ipc.ExecResult)
    assert result.stdout == "first\nsecond\n" == b"".join(chunks).decode()
    assert result.pid == child.pid and result.exit_code == 0


def test_exec_streaming_failure_is_the_future_s_exception() -> None:
    child = ipc.exec("echo so far; exit 4", wait=False)
    with pytest.raises(ipc.ExecError) as info:
        child.result.result(timeout=TIMEOUT)
    assert info.value.exit_code == 4 and info.value.stdout == "so far\n"
    assert child.wait(TIMEOUT) == 4


def test_exec_streaming_missing_program() -> None:
    child = ipc.exec_file(MISSING, wait=False)
    error = child.result.exception(timeout=TIMEOUT)
    assert isinstance(error, ipc.ExecError) and error.code == "ENOENT"


def test_exec_callback_form_also_has_the_result() -> None:
    got: list[Any] = []
    done = threading.Event()
    child = ipc.exec("echo hi", lambda err, out, _e: (got.append((err, out)), done.set()))
    assert child.result.result(timeout=TIMEOUT).stdout == "hi\n"
    assert done.wait(TIMEOUT) and got == [(None, "hi\n")]


def test_blocking_exec_from_the_reactor_thread_is_refused() -> None:
    box: list[BaseException] = []
    done = threading.Event()

    def on_reactor() -> None:
        try:
            ipc.exec("true")
        except ipc.IPCError as exc:
            box.append(exc)
        done.set()

    ipc.call_soon(on_reactor)
    assert done.wait(TIMEOUT)
    assert box and "reactor" in str(box[0])


# --- the reactor: public timers, and a fork of a process that uses it --------------------------


def test_call_later_runs_on_the_reactor_and_can_be_cancelled() -> None:
    ran: list[Any] = []
    done = threading.Event()
    cancelled = ipc.call_later(0.05, lambda: ran.append("cancelled"))
    cancelled.cancel()
    ipc.call_later(0.1, lambda x: (ran.append((x, threading.current_thread().name)), done.set()), 7)
    assert done.wait(TIMEOUT)
    assert ran == [(7, "ipc-reactor")]


FORKER = """
import os, sys, warnings
warnings.simplefilter("ignore")  # fork() of a threaded process: that is the case under test
import ipc
assert ipc.exec("echo before").stdout == "before\\n"
sleeper = ipc.spawn(sys.executable, ["-c", "import time; time.sleep(60)"])
pid = os.fork()
if pid == 0:
    assert ipc.children() == [], ipc.children()
    assert ipc.exec("echo after", timeout=10).stdout == "after\\n"
    sys.exit(7)  # a normal exit: atexit's ipc.shutdown() runs here, and must not touch sleeper
_, status = os.waitpid(pid, 0)
print("forked child", os.waitstatus_to_exitcode(status))
print("sleeper alive", sleeper.returncode is None and sleeper.state == "running")
sleeper.kill("SIGKILL")
sleeper.wait()
"""


def test_the_reactor_is_reset_in_a_forked_process() -> None:
    try:
        proc = _run_script(FORKER)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the forked process hung: {exc.stdout!r} {exc.stderr!r}")
    assert proc.stdout.splitlines() == ["forked child 7", "sleeper alive True"], proc.stderr
