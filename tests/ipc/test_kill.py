"""Signals, process groups and shutdown: what `kill()` reaches and what is reported."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from ipctest import PYTHON, TIMEOUT, Recorder, fixture, process_gone, wait_gone

import ipc

#: A child that restores default dispositions (Python turns SIGINT into KeyboardInterrupt),
#: says it is ready, and sleeps.
SLEEPER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)

IGNORES_TERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)

#: The child starts a grandchild in the same process group, prints its pid, and sleeps.
WITH_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(g.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def only_ours(mine: tuple[ipc.ChildProcess, ...]) -> None:
    """`ipc.shutdown()` stops every child of this process: skip rather than kill children that
    belong to some other (session-scoped) fixture of the same pytest run."""
    foreign = [c for c in ipc.children() if c not in mine]
    if foreign:
        pytest.skip(f"other live children in this process would be stopped: {foreign}")


def start(code: str, reap: list) -> tuple[ipc.ChildProcess, Recorder]:
    child = ipc.spawn(PYTHON, ["-c", code])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_output(b"ready\n" if "ready" in code else b"\n")
    return child, rec


SIGNALS = [
    ("SIGTERM", "SIGTERM"),
    ("SIGINT", "SIGINT"),
    ("SIGKILL", "SIGKILL"),
    (15, "SIGTERM"),
    (2, "SIGINT"),
    (9, "SIGKILL"),
    (signal.SIGTERM, "SIGTERM"),
]


@pytest.mark.parametrize(("sig", "name"), SIGNALS, ids=[repr(s) for s, _ in SIGNALS])
def test_kill_reports_the_signal(sig: str | int, name: str, reap: list) -> None:
    child, rec = start(SLEEPER, reap)
    assert child.kill(sig) is True
    assert child.killed
    rec.wait_for("close")
    signum = getattr(signal, name)
    assert rec.args("exit") == [(None, name)]
    assert rec.args("close") == [(None, name)]
    assert child.signal_code == name
    assert child.exit_code is None
    assert child.returncode == -signum
    assert child.wait(timeout=TIMEOUT) == -signum
    assert child.state == "signaled"


def test_default_kill_is_sigterm(reap: list) -> None:
    child, rec = start(SLEEPER, reap)
    assert child.kill() is True
    rec.wait_for("exit")
    assert child.signal_code == "SIGTERM"


def test_kill_forked_child(reap: list) -> None:
    child = ipc.fork(fixture("echo.py"), args=["hello"])
    reap.append(child)
    rec = Recorder(child)
    rec.wait_messages(1)
    assert child.kill("SIGKILL")
    rec.wait_for("close")
    assert rec.args("exit") == [(None, "SIGKILL")]
    assert not child.connected
    assert "disconnect" in rec.names()


def test_kill_after_exit_returns_false(reap: list) -> None:
    child = ipc.spawn(PYTHON, ["-c", "pass"])
    reap.append(child)
    assert child.wait(timeout=TIMEOUT) == 0
    Recorder(child).wait_for("close")
    assert child.kill("SIGTERM") is False
    assert child.exit_code == 0


def test_unknown_signal_is_an_invalid_argument(reap: list) -> None:
    child, _rec = start(SLEEPER, reap)
    with pytest.raises(ipc.InvalidArgumentError):
        child.kill("SIGNOPE")
    with pytest.raises(ipc.InvalidArgumentError):
        child.kill(999)
    assert child.exit_code is None and child.signal_code is None


def test_child_ignoring_term_survives_it_and_dies_on_kill(reap: list) -> None:
    child, rec = start(IGNORES_TERM, reap)
    assert child.kill("SIGTERM") is True
    with pytest.raises(ipc.ProcessTimeoutError):
        child.wait(timeout=0.5)
    assert child.exit_code is None and child.signal_code is None
    assert child.kill("SIGKILL") is True
    assert child.wait(timeout=TIMEOUT) == -signal.SIGKILL
    rec.wait_for("close")
    assert rec.args("exit") == [(None, "SIGKILL")]


def test_shutdown_escalates_from_term_to_kill(reap: list) -> None:
    polite, polite_rec = start(SLEEPER, reap)
    stubborn, stubborn_rec = start(IGNORES_TERM, reap)
    only_ours((polite, stubborn))
    started = time.monotonic()
    ipc.shutdown(grace=0.5)
    elapsed = time.monotonic() - started
    assert polite.signal_code == "SIGTERM"
    assert stubborn.signal_code == "SIGKILL"
    assert 0.4 <= elapsed < 10
    assert process_gone(polite.pid) and process_gone(stubborn.pid)
    assert not [c for c in ipc.children() if c in (polite, stubborn)]
    # the library keeps working after a shutdown (the web app may call it and carry on)
    child = ipc.fork(fixture("echo.py"), args=["hello"])
    reap.append(child)
    rec = Recorder(child)
    assert rec.wait_messages(1)[0]["hello"] == "from python"
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0
    assert polite_rec.args("exit") and stubborn_rec.args("exit")


def _grandchild(reap: list) -> tuple[ipc.ChildProcess, int]:
    child = ipc.spawn(PYTHON, ["-c", WITH_GRANDCHILD])
    reap.append(child)
    rec = Recorder(child)
    gpid = int(rec.wait_output(b"\n").split()[0])
    assert not process_gone(gpid)
    assert os.getpgid(gpid) == child.pid, "the child leads its own process group"
    return child, gpid


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_kill_reaches_the_grandchild(sig: str, reap: list) -> None:
    child, gpid = _grandchild(reap)
    assert os.getpgid(child.pid) != os.getpgid(0), "not in the test runner's group"
    assert child.kill(sig)
    child.wait(timeout=TIMEOUT)
    assert wait_gone(gpid), f"grandchild {gpid} survived kill({sig!r}) of the group"


def test_kill_group_false_spares_the_grandchild(reap: list) -> None:
    child, gpid = _grandchild(reap)
    try:
        assert child.kill("SIGKILL", group=False)
        child.wait(timeout=TIMEOUT)
        time.sleep(0.2)  # give a wrongly delivered group signal time to land
        assert not process_gone(gpid), "group=False must signal the pid alone"
    finally:
        os.kill(gpid, signal.SIGKILL)
    assert wait_gone(gpid)


def test_with_block_reaps_after_a_kill_in_it(reap: list) -> None:
    """Leaving the block waits (as `subprocess.Popen`); it does not kill by itself."""
    child, gpid = _grandchild(reap)
    with child:
        assert child.kill("SIGKILL")
    assert child.signal_code == "SIGKILL"
    assert child.returncode == -signal.SIGKILL
    assert wait_gone(gpid)


def test_shutdown_kills_grandchildren_too(reap: list) -> None:
    child, gpid = _grandchild(reap)
    only_ours((child,))
    ipc.shutdown(grace=2.0)
    assert child.signal_code == "SIGTERM"
    assert wait_gone(gpid)


def test_children_are_stopped_at_interpreter_exit(tmp_path, child_env: dict[str, str]) -> None:
    """A program that forgets its children: at exit `ipc` stops them (and their groups)."""
    script = tmp_path / "forgetful.py"
    script.write_text(
        "import sys, threading\n"
        "import ipc\n"
        "ready = threading.Event()\n"
        "child = ipc.spawn(sys.executable, ['-c', " + repr(WITH_GRANDCHILD) + "])\n"
        "child.on('stdout', lambda data: (print('pids', child.pid, data.decode().strip(),"
        " flush=True), ready.set()))\n"
        "assert ready.wait(20)\n"
        "forked = ipc.fork(" + repr(fixture("echo.py")) + ")\n"
        "print('forked', forked.pid, flush=True)\n"
        "# no shutdown(), no kill(): the interpreter just ends\n"
    )
    proc = subprocess.run(
        [PYTHON, str(script)], env=child_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    child_pid, grandchild_pid = (
        int(words[words.index("pids") + 1]),
        int(words[words.index("pids") + 2]),
    )
    forked_pid = int(words[words.index("forked") + 1])
    for pid in (child_pid, grandchild_pid, forked_pid):
        assert wait_gone(pid), f"pid {pid} outlived the parent interpreter"
