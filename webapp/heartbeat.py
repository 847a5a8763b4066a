"""How late the server is: a ticker that wants to run every `interval` and records how late
it actually ran.

This is the lesson of the seeds: CPU work done inline in the server (``?mode=inline``) holds
the interpreter, so every other thread, this one included, runs late; the same work in a
forked child leaves the server on time. ``GET /api/heartbeat`` reads it.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class Heartbeat:
    def __init__(self, interval: float = 0.1, window: float = 2.0) -> None:
        self.interval = interval
        self.window = window
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, float]] = deque()  # (when, late seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        due = time.monotonic() + self.interval
        while True:
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            now = time.monotonic()
            late = max(0.0, now - due)
            with self._lock:
                self._samples.append((now, late))
                while self._samples and self._samples[0][0] < now - self.window:
                    self._samples.popleft()
            due = max(due + self.interval, now)

    def snapshot(self) -> dict[str, float]:
        """Lateness in ms: of the last tick, the worst in the window, and of now (a tick that
        is overdue right now counts too: while the server is blocked nothing ticks)."""
        self.start()
        now = time.monotonic()
        with self._lock:
            last = self._samples[-1] if self._samples else (now, 0.0)
            worst = max((late for _, late in self._samples), default=0.0)
        overdue = max(0.0, now - last[0] - self.interval)
        return {
            "late_ms": round(1000 * max(last[1], overdue), 1),
            "max_late_ms": round(1000 * max(worst, overdue), 1),
            "interval_ms": round(1000 * self.interval, 1),
            "window_s": self.window,
            "t": time.time(),
        }
