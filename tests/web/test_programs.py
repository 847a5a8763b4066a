"""The child programs the app ships (`webapp/programs/`) and their catalogue (`webapp.catalog`).

Every program runs for real: Python programs through `ipc.fork` (which starts them with
`sys.executable`), Node programs under `node` (skipped, with the reason, where node is
missing). Each test checks what the program really does: the sums the seeds print, the exit
codes, the signals, the bytes. Waits are bounded by `TIMEOUT` and wait on events, never on a
fixed sleep, so a missing event fails the test instead of hanging it or passing by luck.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from recorder import Recorder

import ipc
from webapp import catalog
from webapp.catalog import PROGRAMS_DIR, Program, get_program, list_programs, program_path

#: Seconds any single wait may take before the test fails (generous for a loaded 2-core box).
TIMEOUT = 20.0
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH: Node programs skipped")
TRANSPORTS = ["pipe", "socketpair", "unix", "tcp"]
NODE_TRANSPORTS = ["socketpair", "unix", "tcp"]
EVENTS = ("spawn", "message", "stdout", "stderr", "fd3", "exit", "close", "error", "disconnect")


# ---- helpers --------------------------------------------------------------------------------


@pytest.fixture
def run() -> Iterator[Callable[..., Recorder]]:
    """Start a shipped program by name; after the test every child is killed (group) and reaped.

    `run(name, *args, message=..., transport=...)` forks it (stdout and stderr as events) and
    returns its `Recorder`; `message` is sent first when given.
    """
    started: list[ipc.ChildProcess] = []

    def start(
        name: str, *args: str, message: Any = None, transport: str = "auto", kind: str = "fork"
    ) -> Recorder:
        path = str(program_path(name))
        if kind == "fork":
            child = ipc.fork(path, list(args), transport=transport, silent=True)
        else:  # spawn a Node script with an extra duplex pipe at fd 3, as seed 003 does
            child = ipc.spawn(NODE or "node", [path, *args], stdio=["pipe"] * 4)
        started.append(child)
        rec = Recorder(child, EVENTS)
        if message is not None:
            child.send(message)
        return rec

    yield start
    for child in started:
        try:
            if child.returncode is None:
                child.kill("SIGKILL")
            child.wait(timeout=TIMEOUT)
        except ipc.IPCError:
            pass


def exited(rec: Recorder) -> tuple[int | None, str | None]:
    """Wait for `close` and return (exit code, signal name)."""
    code, sig = rec.wait_closed()
    assert (code, sig) == (rec.child.exit_code, rec.child.signal_code)
    return code, sig


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs: no such process, or a zombie awaiting its reaper (an
    orphaned grandchild is re-parented to init, which may be slow to reap it in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")


def kill_pids(pids: list[int]) -> None:
    """SIGKILL each pid still running (cleanup for grandchildren a failed test may leave)."""
    for pid in pids:
        if not process_gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_gone(pids: list[int]) -> list[int]:
    """Poll /proc until every pid is gone (nothing to wait on for another's process); return
    the pids still running at the deadline."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if not process_gone(pid)]
        if not alive:
            return []
        time.sleep(0.02)
    return [pid for pid in pids if not process_gone(pid)]


# ---- the catalogue --------------------------------------------------------------------------


def test_catalogue_lists_every_program_once_and_each_file_exists() -> None:
    programs = list_programs()
    names = [p.name for p in programs]
    assert len(names) == len(set(names)), f"duplicate names: {names}"
    for program in programs:
        assert isinstance(program, Program)
        assert program.path.is_file(), f"{program.name}: {program.path} is missing"
        assert program.path.parent == PROGRAMS_DIR
        assert program_path(program.name) == program.path
        assert program.runtime in ("python", "node")
        assert program.kind in ("fork", "spawn")
        assert program.file.endswith(".py" if program.runtime == "python" else ".js")
        assert program.description.strip()
        assert all(isinstance(arg, str) for arg in program.default_args)
        assert program.seed is None or re.fullmatch(r"00[0-4]", program.seed)
    # Nothing in the folder is left out of the catalogue (a new file must be listed to run).
    on_disk = {p.name for p in PROGRAMS_DIR.iterdir() if p.suffix in (".py", ".js")}
    assert on_disk == {p.file for p in programs}


def test_catalogue_has_what_the_issues_ask_for() -> None:
    names = {p.name for p in list_programs()}
    wanted = {
        "compute.py", "echo.py", "ping_pong.py", "counter.py", "crash.py", "exit_code.py",
        "ignore_term.py", "flood.py", "grandchildren.py", "hello.py", "xss.py", "progress.py",
        "compute.js", "child.js", "fork-compute.js", "command.js", "hello.js", "fd3-child.js",
        "argv-child.js",
    }  # fmt: skip
    assert wanted <= names


def test_every_python_program_says_what_it_demonstrates() -> None:
    for program in list_programs():
        text = program.path.read_text(encoding="utf-8")
        if program.runtime == "python":
            doc = ast.get_docstring(ast.parse(text))
            assert doc and "Args" in doc, f"{program.name}: module docstring with its args"
        else:
            assert text.startswith(f"// {program.file}"), f"{program.name}: header comment"


def test_to_dict_is_json_and_a_copy() -> None:
    program = get_program("echo.py")
    data = program.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "name", "file", "runtime", "kind", "description", "default_args", "default_message",
        "seed", "available",
    }  # fmt: skip
    assert data["available"] is True
    data["default_message"]["hello"] = "changed"
    assert get_program("echo.py").default_message != data["default_message"]


def test_node_programs_are_listed_without_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    node_programs = [p for p in list_programs() if p.runtime == "node"]
    assert node_programs, "the seeds' Node scripts are listed even when node is missing"
    assert all(p.to_dict()["available"] is False for p in node_programs)
    assert get_program("compute.py").available is True


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("nope.py", "unknown program 'nope.py'"),
        ("compute", "did you mean 'compute.py' or 'compute.js'?"),
        ("../../etc/passwd", "looks like a path"),
        ("/bin/sh", "looks like a path"),
        ("", "unknown program ''"),
        (None, "named by a string"),
    ],
)
def test_get_program_errors_say_how_to_fix_the_request(name: Any, says: str) -> None:
    with pytest.raises(LookupError) as info:
        get_program(name)
    assert isinstance(info.value, catalog.UnknownProgramError)
    text = str(info.value)
    assert says in text
    assert "Valid programs: compute.py, echo.py" in text  # the list of what is valid
    with pytest.raises(LookupError):
        program_path(name)


# ---- compute.py -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_compute_py_answers_the_seed_message(run: Callable[..., Recorder], transport: str) -> None:
    rec = run("compute.py", message="开始计算", transport=transport)
    assert rec.wait_messages(1) == [50005000]  # sum 0..10000 inclusive, as seed 000
    assert exited(rec) == (0, None)
    assert rec.messages() == [50005000], "no progress for a small range"
    out = rec.output().decode()
    assert f"子进程 ID: {rec.child.pid}" in out
    assert "子进程接收到的信息: 开始计算" in out


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"min": 0, "max": 100000}, 4999950000),  # seed 001's /sum
        ({"min": 0, "max": 10}, 45),
        ({"min": 10, "max": 0}, 0),  # an empty range, as the seed's loop
        ({"max": 5}, 10),  # min defaults to 0, as the seed
        ({"min": -5, "max": 3, "method": "loop"}, -12),
        ({"min": 0, "max": 100000, "method": "formula"}, 4999950000),
        ({"min": 0.0, "max": 1e4}, 49995000),  # whole floats, as Python's JSON gives 4e9
    ],
)
def test_compute_py_sums_a_half_open_range(
    run: Callable[..., Recorder], request_: dict[str, Any], expected: int
) -> None:
    rec = run("compute.py", message=request_)
    assert rec.wait_messages(1) == [expected]
    assert exited(rec) == (0, None)


def test_compute_py_seed_4e9_is_exact_and_reports_progress(run: Callable[..., Recorder]) -> None:
    total = 4_000_000_000
    rec = run("compute.py", message={"max": total, "min": 0})
    result = rec.wait_message(lambda m: not isinstance(m, dict), "the result")
    assert result == total * (total - 1) // 2 == 7999999998000000000
    assert exited(rec) == (0, None)
    *progress, last = rec.messages()
    assert last == result, "the result comes after every progress message"
    assert 2 <= len(progress) <= 20
    assert all(m["type"] == "progress" and m["total"] == total for m in progress)
    done = [m["done"] for m in progress]
    assert done == sorted(done) and done[-1] == total


def test_compute_py_loops_for_real_with_progress(run: Callable[..., Recorder]) -> None:
    lo, hi = 7, 3_000_007
    rec = run("compute.py", message={"min": lo, "max": hi, "method": "loop"})
    assert exited(rec) == (0, None)
    *progress, result = rec.messages()
    assert result == sum(range(lo, hi))
    assert [m["done"] for m in progress][-1] == hi - lo
    assert len(progress) == 20


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        ({"min": "a", "max": 3}, "'min' must be an integer"),
        ({"max": True}, "'max' must be an integer"),
        ({"max": 10, "method": "magic"}, "'method' must be one of auto, loop, formula"),
        ({"max": 10**12, "method": "loop"}, "would take too long"),
    ],
)
def test_compute_py_refuses_a_bad_request(
    run: Callable[..., Recorder], request_: dict[str, Any], says: str
) -> None:
    rec = run("compute.py", message=request_)
    (reply,) = rec.wait_messages(1)
    assert reply["type"] == "error"
    assert says in reply["message"]
    assert exited(rec) == (2, None)


def test_compute_py_serve_answers_until_the_parent_disconnects(
    run: Callable[..., Recorder],
) -> None:
    rec = run("compute.py", "--serve", message="开始计算")
    rec.child.send({"min": 0, "max": 100000})
    assert rec.wait_messages(2) == [50005000, 4999950000]
    assert rec.child.connected
    rec.child.disconnect()
    assert exited(rec) == (0, None)


# ---- echo.py, ping_pong.py, hello.py, progress.py ---------------------------------------------

PAYLOADS: list[Any] = [
    "开始计算",
    50005000,
    3.25,
    None,
    True,
    ["a", 1, None],
    {"deep": {"er": [1, {"x": "ünïcødé 🙂"}]}, "nl": "a\nb", "q": '"\\'},
]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo_py_sends_every_message_back(run: Callable[..., Recorder], transport: str) -> None:
    rec = run("echo.py", transport=transport)
    for payload in PAYLOADS:
        rec.child.send(payload)
    assert rec.wait_messages(len(PAYLOADS)) == PAYLOADS
    rec.child.disconnect()
    assert exited(rec) == (0, None)


def test_ping_pong_py_answers_each_ping_with_its_fields(run: Callable[..., Recorder]) -> None:
    rec = run("ping_pong.py")
    pings = [{"type": "ping", "n": n, "t": time.time(), "pad": "x" * n} for n in range(50)]
    for ping in pings:
        rec.child.send(ping)
    pongs = rec.wait_messages(len(pings))
    assert pongs == [{**ping, "type": "pong"} for ping in pings]
    rec.child.send({"type": "what"})
    error = rec.wait_message(lambda m: m.get("type") == "error", "an error reply")
    assert "expected" in error["message"] and "'what'" in error["message"]
    rec.child.send({"type": "stop"})
    assert exited(rec) == (0, None)


def test_hello_py_says_hello_both_ways(run: Callable[..., Recorder]) -> None:
    rec = run("hello.py")
    assert rec.wait_messages(1) == ["hello master process!"]
    rec.child.send("hello child process!")
    rec.wait_output("子进程收到主进程的消息： hello child process!\n".encode())
    assert rec.child.exit_code is None, "it stays while the channel is open"
    rec.child.disconnect()
    assert exited(rec) == (0, None)


def test_progress_py_reports_each_step_then_done(run: Callable[..., Recorder]) -> None:
    rec = run("progress.py", "5", "10")
    assert exited(rec) == (0, None)
    assert rec.messages() == [
        *({"type": "progress", "done": k, "total": 5} for k in range(1, 6)),
        {"type": "done", "total": 5},
    ]
    assert rec.output().decode().splitlines() == [f"progress {k}/5" for k in range(1, 6)]


# ---- counter.py -----------------------------------------------------------------------------


def test_counter_py_counts_and_ends(run: Callable[..., Recorder]) -> None:
    rec = run("counter.py", "3", "20")
    assert exited(rec) == (0, None)
    assert rec.messages() == [{"type": "count", "n": n, "total": 3} for n in (1, 2, 3)]
    assert rec.output() == b"count 1/3\ncount 2/3\ncount 3/3\n"


def test_counter_py_stops_when_the_parent_disconnects(run: Callable[..., Recorder]) -> None:
    rec = run("counter.py", "3000", "1000")  # would run for 50 minutes
    rec.wait_messages(1)
    rec.child.disconnect()
    assert exited(rec) == (0, None)
    assert len(rec.messages()) < 5


def test_counter_py_stops_on_a_stop_message(run: Callable[..., Recorder]) -> None:
    rec = run("counter.py", "3000", "1000")
    rec.wait_messages(1)
    rec.child.send({"type": "stop"})
    assert exited(rec) == (0, None)


# ---- crash.py, exit_code.py -----------------------------------------------------------------


def test_crash_py_exits_1_with_a_traceback(run: Callable[..., Recorder]) -> None:
    rec = run("crash.py", "0.2")
    assert exited(rec) == (1, None)
    assert rec.output() == b"crash.py: crashing in 0.2 s\n"
    stderr = rec.output("stderr").decode()
    assert stderr.startswith("Traceback (most recent call last):")
    assert f"RuntimeError: deliberate crash: crash.py (pid {rec.child.pid})" in stderr
    names = rec.names()
    assert names.index("exit") < names.index("close")


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_code_py_exits_with_the_code_given(run: Callable[..., Recorder], code: int) -> None:
    rec = run("exit_code.py", str(code))
    assert exited(rec) == (code, None)
    assert rec.output() == f"exit_code.py: exiting with code {code}\n".encode()


@pytest.mark.parametrize("args", [("256",), ("x",), ("-1",), ("1", "2", "3")])
def test_exit_code_py_refuses_a_bad_code(run: Callable[..., Recorder], args: tuple[str]) -> None:
    rec = run("exit_code.py", *args)
    assert exited(rec) == (2, None)
    assert b"usage: exit_code.py" in rec.output("stderr")


# ---- ignore_term.py -------------------------------------------------------------------------


def test_ignore_term_py_survives_sigterm_and_dies_on_sigkill(run: Callable[..., Recorder]) -> None:
    rec = run("ignore_term.py", "60")
    assert rec.wait_messages(1) == [{"type": "ready", "pid": rec.child.pid}]
    assert rec.child.kill("SIGTERM")
    rec.wait_output(b"ignore_term.py: got SIGTERM, ignoring it\n")
    # A second TERM is handled too: the first one did not end it.
    assert rec.child.kill("SIGTERM")
    rec.wait_output(b"got SIGTERM, ignoring it\n", count=2)
    assert rec.child.returncode is None
    assert rec.child.kill("SIGKILL")
    assert exited(rec) == (None, "SIGKILL")


def test_ignore_term_py_ends_when_the_parent_disconnects(run: Callable[..., Recorder]) -> None:
    rec = run("ignore_term.py", "600")
    rec.wait_messages(1)
    rec.child.disconnect()
    assert exited(rec) == (0, None)


# ---- grandchildren.py -----------------------------------------------------------------------


def test_grandchildren_py_group_kill_reaches_the_grandchildren(
    run: Callable[..., Recorder],
) -> None:
    rec = run("grandchildren.py", "3", "60")
    (message,) = rec.wait_messages(1)
    pids = message["pids"]
    try:
        assert message["type"] == "grandchildren" and len(pids) == 3
        for pid in pids:
            rec.wait_output(f"grandchild pid: {pid}\n".encode())
            assert not process_gone(pid)
            assert os.getpgid(pid) == rec.child.pid, "the grandchild is in the child's group"
        assert rec.child.kill("SIGKILL")  # the group, by default
        assert exited(rec) == (None, "SIGKILL")
        assert wait_gone(pids) == []
    finally:
        kill_pids(pids)  # when the test failed, do not leave them running for a minute


def test_grandchildren_py_outlive_a_kill_of_the_child_alone(run: Callable[..., Recorder]) -> None:
    """The other side of the test above: without the group, the grandchildren stay. This shows
    that the test above would notice a kill that does not reach them."""
    rec = run("grandchildren.py", "2", "60")
    (message,) = rec.wait_messages(1)
    pids = message["pids"]
    try:
        assert rec.child.kill("SIGKILL", group=False)
        # `exit`, not `close`: the grandchildren hold the child's stdout and stderr open.
        assert rec.wait_event("exit") == (None, "SIGKILL")
        assert [pid for pid in pids if process_gone(pid)] == []
        assert "close" not in rec.names()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rec.child.pid, signal.SIGKILL)  # the group outlives its leader
        kill_pids(pids)
    assert wait_gone(pids) == []
    assert exited(rec) == (None, "SIGKILL")  # now the pipes reach their end


# ---- flood.py, xss.py -----------------------------------------------------------------------


@pytest.mark.parametrize(("total", "size"), [(1_000_003, 100), (2_000_000, 4096), (0, 10)])
def test_flood_py_writes_exactly_the_bytes_asked_for(
    run: Callable[..., Recorder], total: int, size: int
) -> None:
    rec = run("flood.py", str(total), str(size))
    assert exited(rec) == (0, None)
    out = rec.output()
    lines = -(-total // size)
    assert len(out) == total
    assert rec.messages() == [{"type": "done", "bytes": total, "lines": lines}]
    if total:
        rows = out.split(b"\n")
        assert rows[0].startswith(b"1 xxx") and len(rows[0]) == size - 1
        assert all(len(row) == size - 1 for row in rows[: total // size])
        assert rows[total // size - 1].startswith(b"%d " % (total // size))


def test_xss_py_prints_markup_and_invalid_utf8(run: Callable[..., Recorder]) -> None:
    rec = run("xss.py")
    assert exited(rec) == (0, None)
    out = rec.output()
    assert out.startswith(b"<script>alert(1)</script>\n")
    assert b"\xff\xfe" in out
    try:
        out.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        pytest.fail("xss.py's stdout should not be valid UTF-8")
    assert b"<img src=x onerror=alert(2)>" in rec.output("stderr")
    assert rec.messages() == [{"type": "html", "text": "<script>alert(3)</script>"}]


# ---- the seeds' Node programs ---------------------------------------------------------------


@needs_node
@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_compute_js_answers_50005000(run: Callable[..., Recorder], transport: str) -> None:
    rec = run("compute.js", message="开始计算", transport=transport)
    assert rec.wait_messages(1) == [50005000]
    rec.wait_output("子进程接收到的信息: 开始计算\n".encode())
    assert f"子进程 ID: {rec.child.pid}\n".encode() in rec.output()
    assert rec.child.exit_code is None, "as in the seed, it keeps listening"
    rec.child.disconnect()
    assert exited(rec) == (0, None)


@needs_node
def test_child_js_answers_4999950000(run: Callable[..., Recorder]) -> None:
    rec = run("child.js", message="开始计算")
    assert rec.wait_messages(1) == [4999950000]
    rec.child.disconnect()
    assert exited(rec) == (0, None)


@needs_node
def test_fork_compute_js_sums_min_to_max(run: Callable[..., Recorder]) -> None:
    rec = run("fork-compute.js", message={"max": 10000000, "min": 0})
    assert rec.wait_messages(1) == [sum(range(10000000))]
    rec.wait_output(f">>> fork-compute: {os.getpid()}\n".encode())  # the seed logs its ppid
    rec.child.kill()  # as the seed's master does after the answer
    assert exited(rec) == (None, "SIGTERM")


@needs_node
def test_hello_js_says_hello_both_ways(run: Callable[..., Recorder]) -> None:
    rec = run("hello.js")
    assert rec.wait_messages(1) == ["hello master process!"]
    rec.child.send("hello child process!")
    rec.wait_output("子进程收到主进程的消息： hello child process!\n".encode())
    rec.child.disconnect()
    assert exited(rec) == (0, None)


@needs_node
def test_command_js_prints_its_pid_and_index(run: Callable[..., Recorder]) -> None:
    rec = run("command.js", "1", kind="spawn")
    assert exited(rec) == (0, None)
    pid = rec.child.pid
    assert rec.output() == f"pid: {pid}，进程1的stdout\n".encode()
    assert rec.output("stderr") == f"pid: {pid}，进程1的stderr\n".encode()


@needs_node
def test_command_js_under_fork_just_ends(run: Callable[..., Recorder]) -> None:
    rec = run("command.js", "2")
    assert exited(rec) == (0, None)
    assert rec.output() == f"pid: {rec.child.pid}，进程2的stdout\n".encode()


@needs_node
@pytest.mark.parametrize("item", ["4", "5", "6"])
def test_argv_child_js_prints_its_argument(run: Callable[..., Recorder], item: str) -> None:
    rec = run("argv-child.js", item, kind="spawn")
    assert exited(rec) == (0, None)
    assert rec.output() == f"子进程 {rec.child.pid} 收到参数: {item}\n".encode()


@needs_node
def test_fd3_child_js_writes_to_the_extra_pipe(run: Callable[..., Recorder]) -> None:
    rec = run("fd3-child.js", kind="spawn")
    assert exited(rec) == (0, None)
    assert rec.output("fd3") == b"hello master process!"
    assert rec.output() == b"", "the message travels over fd 3, not stdout"
