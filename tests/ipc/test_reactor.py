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
        print(f"trial {trial}: stuck, _wake_pending={r._wake_pending}, queued={len(r._calls)}")
        sys.exit(1)
print("never stuck")
"""


def test_call_soon_from_threads_never_loses_a_wake_up() -> None:
    proc = subprocess.run(
        [PYTHON, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
