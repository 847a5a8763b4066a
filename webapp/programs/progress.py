"""progress.py — reports progress at a steady pace, for progress bars and the timeline.

compute.py sends the same progress messages, but its work is often over in a blink; this one
takes its time, so a progress bar visibly fills and the messages spread along the timeline.
Fork it (it needs the channel).

Args: ``[STEPS] [INTERVAL_MS]`` (defaults 20 and 250; STEPS 1..10000, in all at most 3600 s).

Protocol: sends ``{"type": "progress", "done": k, "total": STEPS}`` for k = 1..STEPS, one
every INTERVAL_MS, then ``{"type": "done", "total": STEPS}``, and exits 0. It ends early (0)
when the parent disconnects. Each step is also printed on stdout.
"""

from __future__ import annotations

import sys
import time

from ipc import BrokenChannelError, ChannelClosedError, parent

USAGE = "usage: progress.py [STEPS (1..10000)] [INTERVAL_MS (>= 0)], at most 3600 s in all"


def main(argv: list[str]) -> int:
    try:
        steps = int(argv[0]) if argv else 20
        interval = int(argv[1]) / 1000 if len(argv) > 1 else 0.25
    except ValueError:
        steps, interval = 0, 0.0
    if not (1 <= steps <= 10_000 and interval >= 0 and steps * interval <= 3600) or len(argv) > 2:
        print(USAGE, file=sys.stderr)
        return 2
    if not parent.connected:
        print("progress.py reports over the channel: start it with fork()", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        for k in range(1, steps + 1):
            # Wait on the channel rather than sleep: a disconnect ends the wait at once.
            while (remaining := start + k * interval - time.monotonic()) > 0:
                try:
                    parent.recv(timeout=remaining)  # messages are ignored
                except TimeoutError:
                    break
            print(f"progress {k}/{steps}", flush=True)
            parent.send({"type": "progress", "done": k, "total": steps})
        parent.send({"type": "done", "total": steps})
    except (ChannelClosedError, BrokenChannelError):
        return 0  # the parent went away: nobody is waiting for the rest
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
