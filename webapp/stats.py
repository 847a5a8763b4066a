"""Per-process numbers from /proc: resident memory, CPU use, parent pid.

One sampler thread for all jobs (not one per child), publishing a ``stats`` event per live job
every `interval` seconds, so the explorer can chart memory and CPU and draw the process tree.
Linux only; elsewhere the sampler publishes nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_proc(pid: int) -> dict[str, Any] | None:
    """rss (bytes), cpu time (seconds, user + system), ppid, threads, state; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # pid (comm) state ppid ...: comm may hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return {
            "state": fields[0],
            "ppid": int(fields[1]),
            "cpu_time": (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
            "threads": int(fields[17]),
            "rss": int(fields[21]) * PAGE_SIZE,
        }
    except (IndexError, ValueError):
        return None


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (grandchildren of the server, for the process tree); empty
    where the kernel does not offer /proc/<pid>/task/<tid>/children."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    except (OSError, ValueError):
        pass
    return kids


def rss_of(pid: int) -> int | None:
    info = read_proc(pid)
    return None if info is None else info["rss"]


class ProcSampler:
    """A daemon thread that samples `targets()` and hands each result to `publish`."""

    def __init__(
        self,
        interval: float,
        targets: Callable[[], list[tuple[str, int]]],
        publish: Callable[[str, int, dict[str, Any]], None],
    ) -> None:
        self.interval = interval
        self.targets = targets
        self.publish = publish
        self._stop = threading.Event()
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (wall, cpu_time)
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample_once()
            except Exception:  # keep sampling: one odd /proc entry must not end the charts
                pass

    def sample_once(self) -> None:
        seen = set()
        for job_id, pid in self.targets():
            info = read_proc(pid)
            if info is None or info["state"] == "Z":
                continue
            seen.add(pid)
            now = time.monotonic()
            wall0, cpu0 = self._last.get(pid, (None, None))
            self._last[pid] = (now, info["cpu_time"])
            cpu = None
            if wall0 is not None and now > wall0:
                cpu = round(100.0 * (info["cpu_time"] - cpu0) / (now - wall0), 1)
            self.publish(
                job_id,
                pid,
                {
                    "rss": info["rss"],
                    "cpu": cpu,
                    "cpu_time": info["cpu_time"],
                    "ppid": info["ppid"],
                    "threads": info["threads"],
                    "children": children_of(pid),
                },
            )
        for pid in list(self._last):
            if pid not in seen:
                del self._last[pid]
