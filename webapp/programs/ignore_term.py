"""ignore_term.py — a child that ignores SIGTERM, so only SIGKILL stops it.

What it demonstrates: why a shutdown sends TERM first and KILL after a grace period: a polite
TERM can be caught and ignored, KILL cannot. Each TERM it gets is reported on stdout.

Args: ``[MAX_SECONDS]`` (default 300, at most 3600).

Protocol: prints ``ignore_term.py: ready, ignoring SIGTERM (pid N)`` and, when forked, sends
``{"type": "ready", "pid": N}``; on each SIGTERM prints ``ignore_term.py: got SIGTERM,
ignoring it``. Messages to it are ignored.

Bounded: it ends by itself when the parent's channel closes or after MAX_SECONDS, whichever
comes first (a TERM alone never ends it).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from ipc import ChannelClosedError, parent


def on_term(signum: int, frame: object) -> None:
    # os.write, not print: a handler may run while the main thread is inside print().
    os.write(1, b"ignore_term.py: got SIGTERM, ignoring it\n")


def main(argv: list[str]) -> int:
    try:
        max_seconds = float(argv[0]) if argv else 300.0
    except ValueError:
        max_seconds = 0.0
    if not 0 < max_seconds <= 3600 or len(argv) > 1:
        print("usage: ignore_term.py [MAX_SECONDS (0..3600]]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_term)
    print(f"ignore_term.py: ready, ignoring SIGTERM (pid {os.getpid()})", flush=True)
    deadline = time.monotonic() + max_seconds
    if not parent.connected:
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(remaining)  # a TERM interrupts the sleep; the loop sleeps again
        return 0
    parent.send({"type": "ready", "pid": os.getpid()})
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            parent.recv(timeout=remaining)  # messages are ignored; this waits for the end
        except (TimeoutError, ChannelClosedError):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
