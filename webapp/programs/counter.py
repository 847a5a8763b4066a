"""counter.py — a long-running child that counts: one tick every INTERVAL milliseconds.

What it demonstrates: a child that lives for a while and talks regularly (stdout lines and
messages on the timeline), so it can be watched, sent messages, and killed with a signal.

Args: ``[COUNT] [INTERVAL_MS]`` (defaults 300 and 1000: five minutes).

Protocol: each tick prints ``count N/COUNT`` on stdout and, when forked, sends
``{"type": "count", "n": N, "total": COUNT}``. A ``{"type": "stop"}`` message ends it early.

Bounded: it ends after COUNT ticks (at most ``MAX_SECONDS`` in all), as soon as the parent's
channel closes, or when its stdout is closed. Between ticks it waits on the channel, not in a
sleep, so a disconnect ends it at once.
"""

from __future__ import annotations

import sys
import time

from ipc import BrokenChannelError, ChannelClosedError, parent

MAX_SECONDS = 3600.0


def wait_for_tick(deadline: float) -> bool:
    """Wait until `deadline` (time.monotonic); False when the parent wants us to stop."""
    while (remaining := deadline - time.monotonic()) > 0:
        if not parent.connected:
            time.sleep(remaining)
            return True
        try:
            message = parent.recv(timeout=remaining)
        except TimeoutError:
            return True
        except ChannelClosedError:
            return False
        if isinstance(message, dict) and message.get("type") == "stop":
            return False
    return True


def main(argv: list[str]) -> int:
    try:
        count = int(argv[0]) if argv else 300
        interval = int(argv[1]) / 1000 if len(argv) > 1 else 1.0
    except ValueError:
        count, interval = -1, 0.0
    if count < 0 or interval <= 0 or count * interval > MAX_SECONDS or len(argv) > 2:
        print(
            f"usage: counter.py [COUNT>=0] [INTERVAL_MS>0], at most {MAX_SECONDS:.0f} s in all",
            file=sys.stderr,
        )
        return 2
    start = time.monotonic()
    for n in range(1, count + 1):
        try:
            print(f"count {n}/{count}", flush=True)
        except BrokenPipeError:
            return 0
        if parent.connected:
            try:
                parent.send({"type": "count", "n": n, "total": count})
            except BrokenChannelError:
                return 0  # the parent went away
        if n < count and not wait_for_tick(start + n * interval):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
