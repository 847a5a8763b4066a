"""exit_code.py — exits with the code given on the command line.

What it demonstrates: the exit code reaching the parent (``exit`` / ``close`` with that code
and no signal; ``process.exit(n)`` in the seeds), and how a non-zero code looks to exec.

Args: ``CODE [DELAY_SECONDS]``: CODE 0..255 (default 0), DELAY at most 3600 (default 0).
Prints ``exit_code.py: exiting with code N`` on stdout. Messages: none read, none sent.
A bad argument gives a usage line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
import time

USAGE = "usage: exit_code.py CODE(0..255) [DELAY_SECONDS(0..3600)]"


def main(argv: list[str]) -> int:
    try:
        code = int(argv[0]) if argv else 0
        delay = float(argv[1]) if len(argv) > 1 else 0.0
    except ValueError:
        print(USAGE, file=sys.stderr)
        return 2
    if not (0 <= code <= 255 and 0 <= delay <= 3600) or len(argv) > 2:
        print(USAGE, file=sys.stderr)
        return 2
    time.sleep(delay)
    print(f"exit_code.py: exiting with code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
