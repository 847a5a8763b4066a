"""grandchildren.py — starts N grandchild processes that sleep, and waits for them.

What it demonstrates: why every child runs in its own process group. The grandchildren are
started with ``subprocess.Popen([sys.executable, ...])`` and stay in this child's group, so
killing the group (``child.kill(sig)``, the default) ends them all, while killing only this
child's pid (``group=False``) leaves them running as orphans.

Args: ``[N] [SECONDS]`` (defaults 3 and 120; N 1..32, SECONDS up to 3600): how many
grandchildren, and how long each sleeps.

Protocol: prints ``grandchild pid: P`` for each, and, when forked, sends
``{"type": "grandchildren", "pids": [P, ...]}``. Then it waits for them all and exits 0.

Bounded: the grandchildren end after SECONDS by themselves, and this child with them. On
purpose they do not watch for their parent's death, so a test can tell whether a group kill
reached them.
"""

from __future__ import annotations

import subprocess
import sys

from ipc import parent

SLEEPER = "import sys, time; time.sleep(float(sys.argv[1]))"


def main(argv: list[str]) -> int:
    try:
        n = int(argv[0]) if argv else 3
        seconds = float(argv[1]) if len(argv) > 1 else 120.0
    except ValueError:
        n, seconds = 0, 0.0
    if not (1 <= n <= 32 and 0 <= seconds <= 3600) or len(argv) > 2:
        print("usage: grandchildren.py [N (1..32)] [SECONDS (0..3600)]", file=sys.stderr)
        return 2
    procs = [subprocess.Popen([sys.executable, "-c", SLEEPER, str(seconds)]) for _ in range(n)]
    for proc in procs:
        print(f"grandchild pid: {proc.pid}", flush=True)
    if parent.connected:
        parent.send({"type": "grandchildren", "pids": [proc.pid for proc in procs]})
    for proc in procs:
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
