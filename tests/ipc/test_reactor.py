"""The shared reactor must never miss a wake-up: every process and timer depends on it.

The probe runs in a subprocess with its own `Reactor`, so a reactor that does get stuck cannot
take the shared one (and every later test) down with it, and no thread is left behind.
"""

from __future__ import annotations

import subprocess

import pytest
from ipctest import PYTHON, ROOT

PROBE = """
import sys, threading, time
from ipc.reactor import Reactor

for trial in range(5):
    r = Reactor("probe")
    stop = time.monotonic() + 0.2

    def hammer():
        while time.monotonic() < stop:
            r.call_soon(lambda: None)
            time.sleep(0)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = threading.Event()
    r.call_soon(done.set)  # queued at a quiet moment: it must run
    if not done.wait(3.0):
        print(f"trial {trial}: stuck, pending={r._waker.pending}, queued={len(r._calls)}")
        sys.exit(1)
print("never stuck")
"""


def test_call_soon_from_threads_never_loses_a_wake_up() -> None:
    proc = subprocess.run(
        [PYTHON, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


FAULTS = """
import logging, os, sys, threading
from ipc.reactor import Reactor

logging.basicConfig(level=logging.ERROR, format="LOG %(message)s", stream=sys.stdout)
r = Reactor("probe")
calls = {"reader": 0, "told": 0}
told = threading.Event()

class Owner:
    def reactor_callback_failed(self, exc):
        calls["told"] += 1
        print("told", type(exc).__name__, exc)
        told.set()

owner = Owner()
read_end, write_end = os.pipe()
os.write(write_end, b"never read")  # stays readable: a reader that raises must not spin

def reader():
    calls["reader"] += 1
    raise RuntimeError("reader bug")

def register():
    r.add_reader(read_end, reader)
    r.add_reader(other_r, lambda: (os.read(other_r, 100), other.set()))

other_r, other_w = os.pipe()
other = threading.Event()
r.call_soon(register, owner=owner)
assert told.wait(5), "the owner was not told"
r.call_soon(lambda: 1 / 0)  # no owner: logged once
os.write(other_w, b"x")  # another fd is still served
assert other.wait(5), "the loop stopped serving other fds"
done = threading.Event()
r.call_later(0.3, done.set)  # time for a spinning loop to call the reader again
assert done.wait(5)
print("reader", calls["reader"], "told", calls["told"])
"""


def test_a_raising_callback_runs_once_and_only_its_owner_is_told() -> None:
    proc = subprocess.run(
        [PYTHON, "-c", FAULTS], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "told RuntimeError reader bug" in lines
    assert lines[-1] == "reader 1 told 1"
    assert [line for line in lines if line.startswith("LOG")] == ["LOG ipc callback failed"]


#: A parent whose listener ends the program with sys.exit(3), as a Node listener would call
#: process.exit(3). Its main thread meanwhile waits for another child, which needs the reactor.
SYS_EXIT_IN_A_LISTENER = """
import atexit, sys, threading
import ipc

atexit.register(lambda: print("atexit ran", flush=True))
{arm}
a = ipc.spawn(sys.executable, ["-c", "print('hi')"])
a.on("stdout", lambda data: sys.exit(3))
b = ipc.spawn(sys.executable, ["-c", "import time; time.sleep(2)"])
try:
    print("b.wait ->", b.wait(timeout=30), flush=True)
except ipc.IPCError as exc:
    print("b.wait failed:", type(exc).__name__, flush=True)
print("main thread ended", flush=True)
"""


@pytest.mark.parametrize(
    "arm",
    [
        pytest.param("", id="listener"),
        # the same from a call_later timer and from a queued call (no owner)
        pytest.param("ipc.call_later(0.01, sys.exit, 3)", id="timer"),
        pytest.param("ipc.call_soon(sys.exit, 3)", id="call_soon"),
    ],
)
def test_sys_exit_on_the_reactor_thread_ends_the_process_with_its_status(arm: str) -> None:
    """The status is the program's and atexit handlers run once (ipc.shutdown() among them:
    the sleeping child is ended too, so the main thread's wait() returns meanwhile, and its
    own end does not decide the status). The reactor's thread once died of it in silence:
    b.wait() timed out and the program exited 0."""
    proc = subprocess.run(
        [PYTHON, "-c", SYS_EXIT_IN_A_LISTENER.format(arm=arm)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.count("atexit ran") == 1, proc.stdout
    assert "b.wait failed" not in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr


OTHER_BASE_EXCEPTION = """
import sys
import ipc

a = ipc.spawn(sys.executable, ["-c", "print('hi')"])
a.on("stdout", lambda data: (_ for _ in ()).throw(KeyboardInterrupt("from a listener")))
a.wait(timeout=30)
import time; time.sleep(30)
print("main thread ended", flush=True)
"""


def test_a_keyboard_interrupt_in_a_listener_ends_the_process_as_an_uncaught_one() -> None:
    """As the child side: the traceback on stderr and status 1."""
    proc = subprocess.run(
        [PYTHON, "-c", OTHER_BASE_EXCEPTION], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "KeyboardInterrupt: from a listener" in proc.stderr
    assert "main thread ended" not in proc.stdout


DEAD_LOOP = """
import threading
from ipc.reactor import Reactor

r = Reactor("probe")
first = threading.Event()
r.call_soon(first.set)
assert first.wait(5)
thread = r._thread
r._timers.append("not a timer")  # a bug inside the loop itself: its thread dies
r.call_soon(lambda: None)
thread.join(5)
assert not thread.is_alive()
r._timers.clear()
again = threading.Event()
r.call_soon(again.set)
print("ran again" if again.wait(5) else "never ran", flush=True)
"""


def test_a_loop_thread_that_died_is_started_again() -> None:
    proc = subprocess.run(
        [PYTHON, "-c", DEAD_LOOP], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "ran again", proc.stdout + proc.stderr
