"""Helpers for the `ipc` tests (fixtures live in conftest.py).

Every test here runs real processes. Nothing is mocked: a child is a real Python or Node
program started through the library, and the tests wait on the events it reports. Waiting is
always bounded (`TIMEOUT`), never a fixed sleep, so a missing event fails the test instead of
hanging it or passing by luck.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
NODE = shutil.which("node")

#: Seconds any single wait may take before the test fails. Generous for a loaded 2-core box.
TIMEOUT = 20.0

#: Transports a Python child can use (all of them).
TRANSPORTS = ["pipe", "socketpair", "unix", "tcp", "auto"]
#: Transports a Node child can use: Node needs a duplex socket, so no `pipe`.
NODE_TRANSPORTS = ["socketpair", "unix", "tcp", "auto"]

needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH")

#: Every event the library documents (fd3.. are added where a test needs them).
EVENTS = ("spawn", "message", "stdout", "stderr", "exit", "close", "error", "disconnect")


def fixture(name: str) -> str:
    """Absolute path of a child program under tests/ipc/fixtures."""
    path = FIXTURES / name
    assert path.exists(), path
    return str(path)


class Recorder:
    """Records every event of one child, in the order the reactor delivered them.

    Listeners run on the reactor thread, so they only append under a lock and notify; the
    test thread waits on the condition with a deadline.
    """

    def __init__(self, child: Any, events: tuple[str, ...] = EVENTS) -> None:
        self.child = child
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self._cond = threading.Condition()
        for name in events:
            child.on(name, self._listener(name))

    def _listener(self, name: str) -> Callable[..., None]:
        def listener(*args: Any) -> None:
            with self._cond:
                self.log.append((name, args))
                self._cond.notify_all()

        return listener

    def names(self) -> list[str]:
        with self._cond:
            return [name for name, _ in self.log]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        with self._cond:
            return [args for n, args in self.log if n == name]

    def messages(self) -> list[Any]:
        return [args[0] for args in self.args("message")]

    def output(self, name: str = "stdout") -> bytes:
        return b"".join(args[0] for args in self.args(name))

    def wait_until(
        self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT
    ) -> None:
        """Block until `predicate()` (called under the lock) is true, or fail the test."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(
                        f"timed out after {timeout}s waiting for {what}; events: {self._summary()}"
                    )
                self._cond.wait(remaining)

    def wait_for(
        self, name: str, count: int = 1, timeout: float = TIMEOUT
    ) -> list[tuple[Any, ...]]:
        """Wait until `count` events called `name` arrived; return the args of all of them."""
        self.wait_until(
            lambda: sum(1 for n, _ in self.log if n == name) >= count,
            f"{count} x {name!r}",
            timeout,
        )
        return self.args(name)

    def wait_messages(self, count: int, timeout: float = TIMEOUT) -> list[Any]:
        self.wait_for("message", count, timeout)
        return self.messages()

    def wait_output(self, needle: bytes, name: str = "stdout", timeout: float = TIMEOUT) -> bytes:
        self.wait_until(
            lambda: needle in b"".join(a[0] for n, a in self.log if n == name),
            f"{needle!r} on {name}",
            timeout,
        )
        return self.output(name)

    def _summary(self) -> str:
        parts = []
        for name, args in self.log[-30:]:
            text = repr(args)
            parts.append(f"{name}{text[:120]}")
        return "[" + ", ".join(parts) + "]"


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs: no such process, or only a zombie awaiting its reaper.

    A grandchild orphaned by a killed child is re-parented to init (or a subreaper), which may
    be slow to reap it in a container; a zombie does not run, so it counts as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")


def wait_gone(pid: int, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.02)
    return process_gone(pid)


def python_child(tmp_path: Path, source: str, name: str = "child.py") -> str:
    """Write a Python child program into `tmp_path` and return its path."""
    path = tmp_path / name
    path.write_text(source)
    return str(path)
