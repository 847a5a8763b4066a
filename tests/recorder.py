"""`Recorder`: every event of one `ipc` child, for the tests of tests/ipc and tests/web.

Listeners run on ipc's reactor thread, so they only append under a lock and notify; the test
thread waits on the condition with a deadline (`TIMEOUT`), never a fixed sleep, so a missing
event fails the test instead of hanging it or passing by luck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

#: Seconds any single wait may take before the test fails. Generous for a loaded 2-core box.
TIMEOUT = 20.0

#: Every event the library documents (fd3.. are added where a test needs them).
EVENTS = ("spawn", "message", "stdout", "stderr", "exit", "close", "error", "disconnect")


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

    def wait_output(
        self, needle: bytes, name: str = "stdout", count: int = 1, timeout: float = TIMEOUT
    ) -> bytes:
        """Wait until `needle` appeared `count` times in the stream `name`; return all of it."""
        self.wait_until(
            lambda: b"".join(a[0] for n, a in self.log if n == name).count(needle) >= count,
            f"{count} x {needle!r} on {name}",
            timeout,
        )
        return self.output(name)

    def wait_message(self, predicate: Callable[[Any], bool], what: str) -> Any:
        """The first message for which `predicate` holds."""
        found: list[Any] = []

        def check() -> bool:
            found[:] = [a[0] for n, a in self.log if n == "message" and predicate(a[0])]
            return bool(found)

        self.wait_until(check, what)
        return found[0]

    def wait_event(self, name: str) -> tuple[Any, ...]:
        """The args of the first `name` event."""
        return self.wait_for(name)[0]

    def wait_closed(self) -> tuple[Any, ...]:
        """Wait for `close` (exit, and every stream and the channel at their end)."""
        return self.wait_event("close")

    def _summary(self) -> str:
        parts = []
        for name, args in self.log[-30:]:
            text = repr(args)
            parts.append(f"{name}{text[:120]}")
        return "[" + ", ".join(parts) + "]"
