"""Start-up time and memory of a forked child: checks a claim the seeds repeat.

Seed 002 quotes 《深入浅出Node.js》: a forked Node child "needs at least 30 ms start-up and at
least 10 MB memory". This script measures, on this machine:

* a Node child forked by `ipc.fork` (our Python parent),
* a Python child forked by `ipc.fork` (it imports `ipc.parent`),
* a Node child forked by Node's own `child_process.fork` (measured in Node),

each as the time from the `fork()` call to the child's first message ("ready"), and the child's
resident memory once ready: VmRSS (and the peak, VmHWM) from /proc/<pid>/status.

Run: ``.venv/bin/python bench/startup_memory.py [--repeats N]``. Prints a table and writes
``bench/results/startup_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import ipc  # noqa: E402 - after the path set-up, so the script runs from a bare checkout

CHILDREN = HERE / "children"
RESULTS = HERE / "results" / "startup_memory.json"
NODE = shutil.which("node")
TIMEOUT = 60.0


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid` in kB (Linux /proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[{"VmRSS": "rss_kb", "VmHWM": "hwm_kb"}[key]] = int(rest.split()[0])
    return values


def measure_ipc(path: Path, repeats: int) -> list[dict[str, Any]]:
    samples = []
    for _ in range(repeats):
        q: queue.SimpleQueue = queue.SimpleQueue()
        t0 = time.perf_counter()
        child = ipc.fork(str(path), listeners={"message": q.put})
        assert q.get(timeout=TIMEOUT) == "ready"
        startup = time.perf_counter() - t0
        assert child.pid is not None
        samples.append({"startup": startup, **proc_status(child.pid)})
        child.disconnect()
        child.wait(timeout=TIMEOUT)
    return samples


def measure_node_fork(repeats: int) -> tuple[str, list[dict[str, Any]]]:
    assert NODE is not None
    out = subprocess.run(
        [NODE, str(HERE / "node_fork_startup.js"), str(repeats)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["node"], data["samples"]


def summarize(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    startups = [s["startup"] for s in samples]
    rss = [s["rss_kb"] for s in samples]
    return {
        "subject": name,
        "samples": len(samples),
        "startup_median_ms": statistics.median(startups) * 1e3,
        "startup_min_ms": min(startups) * 1e3,
        "rss_median_mb": statistics.median(rss) / 1024,
        "rss_min_mb": min(rss) / 1024,
        "hwm_median_mb": statistics.median(s["hwm_kb"] for s in samples) / 1024,
        "raw": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rows = []
    if NODE is not None:
        rows.append(
            summarize("node child, ipc.fork", measure_ipc(CHILDREN / "idle_child.js", args.repeats))
        )
        version, samples = measure_node_fork(args.repeats)
        rows.append(summarize(f"node child, node fork ({version})", samples))
    rows.append(
        summarize("python child, ipc.fork", measure_ipc(CHILDREN / "idle_child.py", args.repeats))
    )

    head = (
        f"{'forked child':<34} {'start ms p50':>12} {'start ms min':>12} {'RSS MB p50':>10}"
        f" {'RSS MB min':>10} {'peak MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['subject']:<34} {r['startup_median_ms']:>12.1f} {r['startup_min_ms']:>12.1f}"
            f" {r['rss_median_mb']:>10.1f} {r['rss_min_mb']:>10.1f} {r['hwm_median_mb']:>8.1f}"
        )
    print("\nSeed 002's claim: a forked Node child needs >= 30 ms to start and >= 10 MB memory.")
    for r in rows:
        if r["subject"].startswith("node"):
            ok_time = r["startup_min_ms"] >= 30
            ok_mem = r["rss_min_mb"] >= 10
            print(
                f"  {r['subject']}: start-up >= 30 ms {'holds' if ok_time else 'does NOT hold'}"
                f" (min {r['startup_min_ms']:.1f} ms); memory >= 10 MB"
                f" {'holds' if ok_mem else 'does NOT hold'} (min RSS {r['rss_min_mb']:.1f} MB)"
            )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "claim": "forked Node child: at least 30 ms start-up and at least 10 MB memory (seed 002)",
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {args.out}")
    ipc.shutdown(grace=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
