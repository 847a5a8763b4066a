"""bench/scale_bench.py still runs: both buses measured, every line delivered, the ratio and
its target printed. Speed is the benchmark's business, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from redis_server import RedisServer
from server import ROOT


def test_quick_scale_benchmark_reports_both_buses(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale_bench.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [row["mode"] for row in report["rows"]] == ["in memory", "Redis"]
    for row in report["rows"]:
        assert row["complete"], row  # every line arrived, no dropped notice
        assert row["median_s"] > 0
    assert report["ratio"] > 0 and "target: at most 2x" in proc.stdout
