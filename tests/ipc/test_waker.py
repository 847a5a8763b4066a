"""`ipc.waker.Waker`: a wake-up is never lost, and a burst of them costs one byte.

The lost wake-up of finding F4 needs another thread's `wake()` to land between the two steps
of `drain()` (emptying the pipe, clearing the pending flag). Rather than hoping a scheduler
puts it there, `test_a_wake_between_any_two_lines_of_drain_is_not_lost` puts one there: a
line tracer calls `wake()` before every line `drain()` runs, which is every place another
thread could have run it, whatever order the two steps are written in.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from ipctest import PYTHON, ROOT

from ipc.waker import Waker


@pytest.fixture
def waker() -> Iterator[Waker]:
    w = Waker()
    yield w
    w.close()


def readable(w: Waker) -> bool:
    return bool(select.select([w.fileno()], [], [], 0)[0])


def test_wake_then_drain(waker: Waker) -> None:
    assert not readable(waker)
    waker.wake()
    assert readable(waker) and waker.pending
    waker.drain()
    assert not readable(waker) and not waker.pending
    waker.wake()
    assert readable(waker), "a wake() after drain() writes again"


def test_a_burst_of_wakes_writes_one_byte(waker: Waker) -> None:
    for _ in range(1000):
        waker.wake()
    assert os.read(waker.fileno(), 4096) == b"\0"


def test_a_wake_between_any_two_lines_of_drain_is_not_lost(waker: Waker) -> None:
    """Another thread's wake() may run between any two lines of drain(): after drain()
    returns, either the pipe still holds a byte (the waiter's next poll returns at once) or
    the flag is clear (the next wake() writes one). Never both empty and stuck."""
    drain_code = Waker.drain.__code__
    injected = [0]

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            injected[0] += 1
            waker.wake()  # as if another thread ran it just before this line
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is drain_code else None

    waker.wake()  # the byte the waiter was woken by
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        waker.drain()
    finally:
        sys.settrace(previous)
    assert injected[0] >= 2, "the tracer saw drain() run"
    waker.wake()  # the next piece of work's wake-up
    assert readable(waker), "a wake-up was lost: the flag is set but the pipe is empty"


def test_wake_after_close_does_nothing() -> None:
    w = Waker()
    fd = w.fileno()
    w.close()
    assert w.closed and w.fileno() == -1
    w.wake()  # no write to a closed fd (its number may be someone else's now)
    with pytest.raises(OSError):
        os.fstat(fd)


def test_close_racing_wakes_from_other_threads() -> None:
    """close() while threads wake: no OSError from a closed fd in any of them."""
    errors: list[BaseException] = []
    for _ in range(50):
        w = Waker()
        stop = threading.Event()

        def hammer(w: Waker = w, stop: threading.Event = stop) -> None:
            try:
                while not stop.is_set():
                    w.wake()
                    w.pending = False  # force a write on every call
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        w.close()
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


WAITER_PROBE = """
import select, sys, threading, time
from collections import deque
from ipc.waker import Waker

sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
for trial in range(5):
    w = Waker()
    work = deque()
    done = threading.Event()
    quit = threading.Event()

    def waiter():
        poller = select.poll()
        poller.register(w.fileno(), select.POLLIN)
        while not quit.is_set():
            poller.poll()
            w.drain()
            while work:
                item = work.popleft()
                if item == "last":
                    done.set()

    def waker():
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            work.append(None)
            w.wake()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    wakers = [threading.Thread(target=waker) for _ in range(3)]
    for x in wakers:
        x.start()
    for x in wakers:
        x.join()
    work.append("last")  # at a quiet moment: it must be seen
    w.wake()
    if not done.wait(3):
        print(f"trial {trial}: stuck, pending={w.pending}, queued={len(work)}")
        sys.exit(1)
    quit.set()
    w.wake()
    t.join(3)
    w.close()
print("never stuck")
"""


def test_a_waiter_and_busy_wakers_never_lose_a_wake_up() -> None:
    """The same property with real threads, in a process of its own (a stuck waiter there
    cannot hang this one)."""
    proc = subprocess.run(
        [PYTHON, "-c", WAITER_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
