"""The benchmark script still runs: every subject measured, the table and targets printed.

Speed is measured by `bench/ipc_bench.py`, never asserted here: this only checks that a quick
run completes and reports every number the README's table is made of, so a change to the
library cannot silently break the benchmark.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ipctest import NODE, PYTHON, ROOT

import ipc

BENCH = ROOT / "bench" / "ipc_bench.py"


def test_quick_benchmark_reports_every_subject(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [PYTHON, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {row["subject"]: row for row in report["rows"]}
    expected = ["raw socketpair floor", "multiprocessing.Pipe", "ipc auto (= socketpair)"]
    expected += [f"ipc {transport}" for transport in ipc.TRANSPORTS]
    for subject in expected:
        assert subject in rows, f"{subject!r} missing from {sorted(rows)}"
        for number in ("rtt_p50", "rtt_p99", "msgs_per_s", "mb_per_s"):
            value = rows[subject][number]
            assert value is not None and value > 0, (subject, number, value)
    node_rows = [s for s in rows if s.startswith("node fork")]
    assert len(node_rows) == (1 if NODE else 0)
    targets = [t["target"] for t in report["targets"]]
    assert len(targets) == (3 if NODE else 1), targets
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    assert "subject" in proc.stdout and "start-to-first-message" in proc.stdout
    assert report["startup"][0]["subject"] == "ipc.fork python child"
    assert report["startup"][0]["startup_median"] > 0
