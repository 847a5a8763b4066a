"""What confining a child costs: a job's time from ``POST /api/jobs`` to its ``close``.

Each row runs the same job many times on a real server (Werkzeug's, in this process) with the
confinement switched on piece by piece: nothing (``--keep-privileges --no-cgroups`` and every
rlimit 0), a cgroup per job only, user + capabilities + rlimits only (``--no-cgroups``), and
all of it (the default). Run as root to see the whole cost (a non-root server drops nothing).

Run: ``.venv/bin/python bench/confine_overhead.py [--repeats N]``. Prints a table and writes
``bench/results/confine_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from server import ThreadServer  # noqa: E402 - after the path set-up

RESULTS = HERE / "results" / "confine_overhead.json"
NO_RLIMITS = {
    "CHILD_ADDRESS_SPACE_MB": 0,
    "CHILD_PROCESSES": 0,
    "CHILD_CPU_SECONDS": 0,
    "CHILD_FILE_SIZE_MB": 0,
    "CHILD_OPEN_FILES": 0,
}
SETTINGS = {
    "nothing": {"KEEP_PRIVILEGES": True, "CGROUPS": False, **NO_RLIMITS},
    "cgroup only": {"KEEP_PRIVILEGES": True, **NO_RLIMITS},
    "user+caps+rlimits": {"CGROUPS": False},
    "all (default)": {},
}
JOBS = {
    "exec_file true": {"kind": "exec_file", "command": "true"},
    "fork compute.py": {"kind": "fork", "program": "compute.py", "message": {"min": 0, "max": 9}},
}


def time_jobs(config: dict[str, Any], body: dict[str, Any], repeats: int) -> list[float]:
    """Milliseconds from the request to `close`, for each of `repeats` jobs (after a warm-up)."""
    with ThreadServer(config) as srv:
        jobs = srv.services.jobs
        times = []
        for i in range(repeats + 3):
            began = time.perf_counter()
            status, job = srv.json("POST", "/api/jobs", body)
            assert status == 201, job
            assert jobs.get(job["id"]).closed.wait(60), job
            if i >= 3:
                times.append((time.perf_counter() - began) * 1000)
        return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rows = []
    print(f"{'job':18} {'confinement':20} {'median ms':>10} {'min ms':>8}")
    for job, body in JOBS.items():
        for setting, config in SETTINGS.items():
            times = time_jobs(config, body, args.repeats)
            row = {
                "job": job,
                "confinement": setting,
                "median_ms": round(statistics.median(times), 2),
                "min_ms": round(min(times), 2),
            }
            rows.append(row)
            print(f"{job:18} {setting:20} {row['median_ms']:10.1f} {row['min_ms']:8.1f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"root": os.geteuid() == 0, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
