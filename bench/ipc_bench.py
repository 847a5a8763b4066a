"""Benchmark of the `ipc` message channel against a raw floor, multiprocessing and Node.

Run: ``.venv/bin/python bench/ipc_bench.py`` (about 30-60 s) or ``--quick`` (a few seconds).
Prints a table and writes ``bench/results/ipc_bench.json``.

What each subject does is in ``ipc_workload/`` (shared with the explorer's transport lab,
so the lab and this script measure the same thing): a Python (or Node) parent and an echo
child; round trips of a small JSON message (p50/p99), pipelined small messages (messages/s),
pipelined 1 MiB messages (MB/s), start-up to the first message. This script runs every
subject in interleaved rounds, takes the medians and prints the table.

The issue's targets (printed at the end): our default transport's p50 round trip within 1.5x
of the floor; a faster round trip and more small messages/s than Node's fork IPC.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import ipc  # noqa: E402 - after the path set-up, so the script runs from a bare checkout
from ipc_workload import (  # noqa: E402
    CHILDREN,
    QUICK,
    Config,
    Row,
    bench_floor,
    bench_ipc,
    bench_mp_pipe,
    bench_node,
    node_path,
    startup_ipc,
)

RESULTS = HERE / "results" / "ipc_bench.json"


def merge(rows: list[Row]) -> Row:
    """One row from several rounds of the same subject: the median of each number."""

    def med(name: str) -> float | None:
        values = [getattr(r, name) for r in rows if getattr(r, name) is not None]
        return statistics.median(values) if values else None

    first = rows[0]
    return Row(
        subject=first.subject,
        rtt_p50=med("rtt_p50"),
        rtt_p99=med("rtt_p99"),
        msgs_per_s=med("msgs_per_s"),
        mb_per_s=med("mb_per_s"),
        startup_median=med("startup_median"),
        startup_min=min((r.startup_min for r in rows if r.startup_min is not None), default=None),
        notes=[*first.notes, f"median of {len(rows)} round(s)"],
    )


# --- report ------------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def fmt(value: float | None, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value * scale:,.{digits}f}"


def table(rows: list[Row], floor: Row, node: Row | None) -> str:
    width = max(32, *(len(r.subject) for r in rows))
    head = (
        f"{'subject':<{width}} {'rtt p50 µs':>10} {'rtt p99 µs':>10} {'msgs/s':>10}"
        f" {'MB/s 1MiB':>9} {'p50/floor':>9} {'msg/floor':>9} {'p50/node':>8} {'msg/node':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.subject:<{width}} {fmt(r.rtt_p50, 1e6, 1):>10} {fmt(r.rtt_p99, 1e6, 1):>10}"
            f" {fmt(r.msgs_per_s, 1, 0):>10} {fmt(r.mb_per_s, 1, 1):>9}"
            f" {ratio(r.rtt_p50, floor.rtt_p50):>9} {ratio(r.msgs_per_s, floor.msgs_per_s):>9}"
            f" {ratio(r.rtt_p50, node.rtt_p50 if node else None):>8}"
            f" {ratio(r.msgs_per_s, node.msgs_per_s if node else None):>8}"
        )
    return "\n".join(lines)


def startup_table(rows: list[Row]) -> str:
    head = f"{'start-to-first-message':<36} {'median ms':>9} {'min ms':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.startup_median is not None:
            lines.append(
                f"{r.subject:<36} {fmt(r.startup_median, 1e3, 1):>9}"
                f" {fmt(r.startup_min, 1e3, 1):>8}"
            )
    return "\n".join(lines)


def targets(default: Row, floor: Row, node: Row | None) -> list[dict[str, Any]]:
    assert default.rtt_p50 and floor.rtt_p50 and default.msgs_per_s
    checks = [
        {
            "target": "default transport p50 round trip <= 1.5x the raw floor",
            "value": round(default.rtt_p50 / floor.rtt_p50, 3),
            "met": default.rtt_p50 <= 1.5 * floor.rtt_p50,
        }
    ]
    if node is not None and node.rtt_p50 and node.msgs_per_s:
        checks += [
            {
                "target": "default transport p50 round trip faster than Node's fork",
                "value": round(default.rtt_p50 / node.rtt_p50, 3),
                "met": default.rtt_p50 < node.rtt_p50,
            },
            {
                "target": "default transport more small messages/s than Node's fork",
                "value": round(default.msgs_per_s / node.msgs_per_s, 3),
                "met": default.msgs_per_s > node.msgs_per_s,
            },
        ]
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, rough numbers")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    started = time.perf_counter()

    # Every subject runs in each of `rounds` rounds, in turn, and each number reported is the
    # median over the rounds: a machine shared with other work drifts, and interleaving puts
    # every subject under the same drift instead of giving one of them the quiet minute.
    measure: list[tuple[str, Callable[[], Row | None]]] = [("floor", lambda: bench_floor(cfg))]
    measure += [(t, lambda t=t: bench_ipc(t, cfg)) for t in (*ipc.TRANSPORTS, "auto")]
    measure += [
        # Where does the distance to the floor come from? Swap one side at a time.
        ("ipc+raw", lambda: bench_ipc("socketpair", cfg, CHILDREN / "raw_echo.py", " + raw child")),
        ("raw+ipc", lambda: bench_floor(cfg, ipc_child=True)),
        (
            "sync",
            lambda: bench_ipc("auto", cfg, label=", blocking caller", sync=True),
        ),
        # The reactor polls briefly before it sleeps (ipc/reactor.py DEFAULT_SPIN): the same
        # subject with that turned off shows what the spin buys.
        ("nospin", lambda: bench_ipc("auto", cfg, label=", no reactor spin", spin=0.0)),
        ("mp", lambda: bench_mp_pipe(cfg)),
        ("node", lambda: bench_node(cfg)),
    ]
    samples: dict[str, list[Row]] = {key: [] for key, _ in measure}
    for round_no in range(cfg.rounds):
        for key, fn in measure:
            row = fn()
            if row is not None:
                samples[key].append(row)
        print(f"  round {round_no + 1}/{cfg.rounds} done", file=sys.stderr)
    merged = {key: merge(rows) for key, rows in samples.items() if rows}
    floor = merged["floor"]
    node = merged.get("node")
    mp_row = merged["mp"]
    default = merged["auto"]
    py_start = startup_ipc(CHILDREN / "echo_child.py", cfg)
    default.startup_median, default.startup_min = py_start
    startup_rows = [Row("ipc.fork python child", *([None] * 4), *py_start)]
    if node_path() is not None:
        js_start = startup_ipc(CHILDREN / "echo_child.js", cfg)
        startup_rows.append(Row("ipc.fork node child", *([None] * 4), *js_start))
    startup_rows.append(mp_row)
    if node is not None:
        startup_rows.append(node)
    all_rows = list(merged.values())

    print()
    print(table(all_rows, floor, node))
    print()
    print(startup_table(startup_rows))
    print()
    checks = targets(default, floor, node)
    for check in checks:
        print(f"[{'met' if check['met'] else 'MISSED'}] {check['target']}: {check['value']}x")
    elapsed = time.perf_counter() - started
    print(f"\n{'quick' if args.quick else 'full'} run, {elapsed:.1f} s; JSON: {args.out}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "node": node.subject if node else None,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "config": asdict(cfg),
        "units": {"rtt": "seconds", "mb_per_s": "10^6 bytes of payload echoed per second"},
        "rows": [asdict(r) for r in all_rows],
        "startup": [asdict(r) for r in startup_rows],
        "targets": checks,
        "elapsed_s": elapsed,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    ipc.shutdown(grace=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
