"""The shared reactor must never miss a wake-up: every process and timer depends on it.

The probe runs in a subprocess with its own `Reactor`, so a reactor that does get stuck cannot
take the shared one (and every later test) down with it, and no thread is left behind.
"""

from __future__ import annotations

import subprocess

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
