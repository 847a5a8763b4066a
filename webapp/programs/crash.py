"""crash.py — raises an uncaught exception, after an optional delay.

What it demonstrates: how a crashing child looks from the parent: the traceback arrives on
stderr, the exit is ``code 1, signal None`` (Python's exit status for an uncaught exception),
the channel closes (``disconnect``), then ``close``.

Args: ``[DELAY_SECONDS]`` (default 0, at most 3600; a bad value exits 2 with a usage line).
Prints ``crash.py: crashing in N s`` on stdout first. Messages: none read, none sent.
"""

from __future__ import annotations

import os
import sys
import time

MAX_DELAY = 3600.0


def main(argv: list[str]) -> None:
    try:
        delay = float(argv[0]) if argv else 0.0
    except ValueError:
        delay = -1.0
    if not 0 <= delay <= MAX_DELAY or len(argv) > 1:
        # Exit code 2, not 1: a usage error must not look like the crash this program shows.
        print(f"usage: crash.py [DELAY_SECONDS (0..{MAX_DELAY:.0f})]", file=sys.stderr)
        sys.exit(2)
    print(f"crash.py: crashing in {delay:g} s", flush=True)
    time.sleep(delay)
    raise RuntimeError(f"deliberate crash: crash.py (pid {os.getpid()}) raised this on purpose")


if __name__ == "__main__":
    main(sys.argv[1:])
