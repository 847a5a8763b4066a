"""`ipc.exec` / `ipc.exec_file`: captured output, and every way a command can fail."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest
from ipctest import PYTHON, TIMEOUT

import ipc


def test_exec_captures_stdout_and_stderr() -> None:
    r = ipc.exec("echo out; echo err >&2; printf 'ü'")
    assert r.stdout == "out\nü"
    assert r.stderr == "err\n"
    assert r.exit_code == 0
    assert r.signal is None
    assert "echo out" in r.command


def test_exec_result_always_has_the_pid() -> None:
    for _ in range(100):
        r = ipc.exec("echo out")
        assert r.pid is not None
        assert r.pid > 0


def test_exec_file_has_no_shell() -> None:
    r = ipc.exec_file(PYTHON, ["-c", "import sys; print(sys.argv[1:])", "$HOME", "a b", ";ls"])
    assert r.stdout == "['$HOME', 'a b', ';ls']\n"


def test_encoding_none_keeps_bytes() -> None:
    r = ipc.exec_file(
        PYTHON, ["-c", "import sys; sys.stdout.buffer.write(bytes([0, 255, 10]))"], encoding=None
    )
    assert r.stdout == b"\x00\xff\n"
    assert r.stderr == b""


def test_invalid_utf8_is_replaced_not_raised() -> None:
    r = ipc.exec_file(PYTHON, ["-c", "import sys; sys.stdout.buffer.write(b'a\\xffb')"])
    assert r.stdout == "a\ufffdb"


def test_cwd_and_env() -> None:
    r = ipc.exec("pwd; echo $MY_VAR", cwd="/tmp", env={"MY_VAR": "x y", "PATH": "/usr/bin:/bin"})
    assert r.stdout.split("\n")[:2] == ["/tmp", "x y"]


def test_non_zero_exit_raises_with_the_output() -> None:
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec("echo partial; echo oops >&2; exit 3")
    err = info.value
    assert err.exit_code == 3
    assert err.code == 3
    assert err.signal is None
    assert err.stdout == "partial\n"
    assert err.stderr == "oops\n"
    assert not err.killed
    assert not err.timed_out
    assert not err.max_buffer_exceeded
    d = err.to_dict()
    assert d["exit_code"] == 3
    assert d["stdout"] == "partial\n"


def test_timeout_kills_with_kill_signal() -> None:
    started = time.monotonic()
    with pytest.raises(ipc.ExecError) as info:
        # sh, not Python: it prints within the timeout even on a busy machine
        ipc.exec_file("sh", ["-c", "echo started; exec sleep 30"], timeout=0.5)
    elapsed = time.monotonic() - started
    err = info.value
    assert err.timed_out
    assert err.killed
    assert err.signal == "SIGTERM"
    assert err.exit_code is None
    assert not err.max_buffer_exceeded
    assert err.stdout == "started\n"
    assert 0.4 < elapsed < 10


def test_timeout_through_the_shell_kills_the_whole_group() -> None:
    """`sh -c "sleep 30; ..."` forks sleep; killing only sh would leave exec waiting on the pipe."""
    started = time.monotonic()
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec("sleep 30; echo never", timeout=0.5, kill_signal="SIGKILL")
    assert info.value.timed_out
    assert info.value.signal == "SIGKILL"
    assert time.monotonic() - started < 10


def test_timeout_kill_signal_as_number() -> None:
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec_file(PYTHON, ["-c", "import time; time.sleep(30)"], timeout=0.3, kill_signal=9)
    assert info.value.signal == "SIGKILL"


def test_max_buffer_kills_and_truncates() -> None:
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec_file(
            PYTHON,
            ["-c", "import sys\nwhile True: sys.stdout.write('x' * 4096)"],
            max_buffer=10_000,
        )
    err = info.value
    assert err.max_buffer_exceeded
    assert not err.timed_out
    assert err.killed
    assert err.signal == "SIGTERM"
    assert err.stdout == "x" * 10_000


def test_max_buffer_counts_stderr_too() -> None:
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec_file(
            PYTHON,
            ["-c", "import sys\nwhile True: sys.stderr.write('e' * 4096)"],
            max_buffer=5000,
            encoding=None,
        )
    assert info.value.max_buffer_exceeded
    assert info.value.stderr == b"e" * 5000


def test_output_at_exactly_max_buffer_is_fine() -> None:
    r = ipc.exec_file(PYTHON, ["-c", "print('y' * 999)"], max_buffer=1000)
    assert r.stdout == "y" * 999 + "\n"


def test_default_max_buffer_is_one_mib() -> None:
    r = ipc.exec_file(PYTHON, ["-c", "import sys; sys.stdout.write('z' * (1024 * 1024))"])
    assert len(r.stdout) == 1024 * 1024
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec_file(PYTHON, ["-c", "import sys; sys.stdout.write('z' * (1024 * 1024 + 1))"])
    assert info.value.max_buffer_exceeded


def test_missing_program_exec_file() -> None:
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec_file("definitely-not-a-program-4242", ["--version"])
    err = info.value
    assert err.code == "ENOENT"
    assert err.exit_code is None
    assert not err.timed_out
    assert err.to_dict()["code"] == "ENOENT"


def test_missing_program_through_the_shell_is_exit_127() -> None:
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec("definitely-not-a-program-4242")
    assert info.value.exit_code == 127
    assert "not found" in info.value.stderr


def test_killed_by_a_signal_it_sent_itself() -> None:
    with pytest.raises(ipc.ExecError) as info:
        ipc.exec_file(PYTHON, ["-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert info.value.signal == "SIGKILL"
    assert info.value.exit_code is None
    assert not info.value.timed_out


def _callback_queue() -> tuple[queue.Queue, Any]:
    q: queue.Queue = queue.Queue()
    return q, lambda err, stdout, stderr: q.put((err, stdout, stderr))


def test_callback_form_success() -> None:
    q, cb = _callback_queue()
    child = ipc.exec("echo hi; echo there >&2", callback=cb)
    assert isinstance(child, ipc.ChildProcess)
    err, stdout, stderr = q.get(timeout=TIMEOUT)
    assert err is None
    assert (stdout, stderr) == ("hi\n", "there\n")
    child.wait(timeout=TIMEOUT)
    assert q.empty(), "the callback runs exactly once"


def test_callback_form_failure() -> None:
    q, cb = _callback_queue()
    child = ipc.exec("echo so far; exit 4", callback=cb)
    err, stdout, _stderr = q.get(timeout=TIMEOUT)
    assert isinstance(err, ipc.ExecError)
    assert err.exit_code == 4
    assert stdout == "so far\n"
    assert child.wait(timeout=TIMEOUT) == 4


def test_callback_form_exec_file_missing_program() -> None:
    q, cb = _callback_queue()
    ipc.exec_file("definitely-not-a-program-4242", [], callback=cb)
    err, _stdout, _stderr = q.get(timeout=TIMEOUT)
    assert isinstance(err, ipc.ExecError)
    assert err.code == "ENOENT"


def test_callback_form_timeout() -> None:
    q, cb = _callback_queue()
    ipc.exec_file(PYTHON, ["-c", "import time; time.sleep(30)"], timeout=0.3, callback=cb)
    err, _stdout, _stderr = q.get(timeout=TIMEOUT)
    assert isinstance(err, ipc.ExecError)
    assert err.timed_out


def test_max_buffer_overflow_never_hangs() -> None:
    """`yes` overflows max_buffer with its first write; every exec must still end."""
    done: list[bool] = []
    stop = threading.Event()

    def run() -> None:
        for _ in range(100):
            if stop.is_set():
                return
            try:
                ipc.exec_file("yes", max_buffer=10)
            except ipc.ExecError as exc:
                done.append(exc.max_buffer_exceeded)
            else:
                done.append(False)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)  # 100 runs take well under a second idle, a few seconds under load
    hung = worker.is_alive()
    stop.set()
    deadline = time.monotonic() + TIMEOUT
    while worker.is_alive() and time.monotonic() < deadline:
        for child in ipc.children():  # free the stuck exec so the session can go on
            if child.returncode is None:
                child.kill("SIGKILL")
        worker.join(0.5)
    for child in ipc.children():
        child.wait_closed(timeout=TIMEOUT)
    assert not hung, f"exec hung after {len(done)} runs"
    assert done == [True] * 100
