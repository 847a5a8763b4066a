"""Benchmark of the `ipc` message channel against a raw floor, multiprocessing and Node.

Run: ``.venv/bin/python bench/ipc_bench.py`` (about 30-60 s) or ``--quick`` (a few seconds).
Prints a table and writes ``bench/results/ipc_bench.json``.

Every subject runs the same workload, a Python (or Node) parent and an echo child:

* round trip: one small JSON message (``{"i": n, "op": "ping", "text": "hello"}``) sent and
  its echo received, one at a time; p50 and p99 of the wall time;
* messages/s: N such messages sent back to back (pipelined), divided by the time until the
  last echo came back;
* MB/s: M messages of a 1 MiB JSON string, pipelined, payload megabytes (10^6) echoed per
  second;
* start-up: from the `fork()` call to the child's first message ("ready").

Subjects: `ipc.fork` over each transport (Python child using `ipc.parent`), each phase driven
from the `message` listener as ``node_fork_bench.js`` drives Node's (plus one row where a
blocking caller waits for each echo, which adds a thread hand-off); the *floor*, a raw
``socket.socketpair()`` with the same JSON-lines framing and blocking I/O on both sides (no
reactor, no thread hand-off); ``multiprocessing.Pipe`` (pickle framing, spawn context); and
Node's own ``child_process.fork()`` measuring itself in Node (``node_fork_bench.js``).

The issue's targets (printed at the end): our default transport's p50 round trip within 1.5x
of the floor; a faster round trip and more small messages/s than Node's fork IPC.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import ipc  # noqa: E402 - after the path set-up, so the script runs from a bare checkout
from ipc.reactor import get_reactor  # noqa: E402

CHILDREN = HERE / "children"
RESULTS = HERE / "results" / "ipc_bench.json"
NODE = shutil.which("node")
MIB = 1024 * 1024
SMALL = {"i": 0, "op": "ping", "text": "hello"}
TIMEOUT = 60.0


@dataclass
class Config:
    rtt: int = 3000
    msgs: int = 20000
    big: int = 40
    startups: int = 10
    warmup: int = 200
    rounds: int = 3


QUICK = Config(rtt=300, msgs=2000, big=5, startups=3, warmup=50, rounds=1)


@dataclass
class Row:
    """One subject's numbers. Times in seconds; None where a subject cannot measure it."""

    subject: str
    rtt_p50: float | None = None
    rtt_p99: float | None = None
    msgs_per_s: float | None = None
    mb_per_s: float | None = None
    startup_median: float | None = None
    startup_min: float | None = None
    notes: list[str] = field(default_factory=list)


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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def small(i: int) -> dict[str, Any]:
    return {**SMALL, "i": i}


# --- ours --------------------------------------------------------------------------------------


class _Driver:
    """Runs each phase from the child's `message` listener, as `node_fork_bench.js` does in Node.

    The listener runs on the reactor thread, which reads the echo and sends the next message
    itself: no thread hand-off per message, the same shape as Node's event-loop callbacks. The
    calling thread only starts a phase and waits for its end. (`bench_ipc(sync=True)` measures
    the other usage, a blocking caller, whose thread hand-off costs tens of µs on its own.)
    """

    def __init__(self) -> None:
        self._handler: Callable[[Any], None] = self._unexpected
        self._done = threading.Event()
        self.result: Any = None

    def on_message(self, msg: Any) -> None:
        self._handler(msg)

    def _unexpected(self, msg: Any) -> None:
        raise AssertionError(f"message outside a phase: {msg!r:.80}")

    def _finish(self, result: Any) -> None:
        self._handler = self._unexpected
        self.result = result
        self._done.set()

    def _wait(self) -> Any:
        if not self._done.wait(TIMEOUT):
            raise TimeoutError("benchmark phase did not finish")
        self._done.clear()
        return self.result

    def ready(self) -> Any:
        self._handler = self._finish
        return self._wait()

    def round_trips(self, child: ipc.ChildProcess, n: int) -> list[float]:
        """`n` sequential round trips; the wall time of each."""
        times: list[float] = []
        t0 = 0.0

        def on_message(msg: Any) -> None:
            nonlocal t0
            times.append(time.perf_counter() - t0)
            if len(times) == n:
                self._finish(times)
                return
            t0 = time.perf_counter()
            child.send(small(len(times)))

        self._handler = on_message
        t0 = time.perf_counter()
        child.send(small(0))
        return self._wait()

    def pipelined(self, child: ipc.ChildProcess, n: int, make: Callable[[int], Any]) -> float:
        """Send `n` messages back to back; seconds until the last echo came back."""
        got = 0

        def on_message(msg: Any) -> None:
            nonlocal got
            got += 1
            if got == n:
                self._finish(time.perf_counter() - t0)

        self._handler = on_message
        t0 = time.perf_counter()
        for i in range(n):
            child.send(make(i))
        return self._wait()


def bench_ipc(
    transport: str,
    cfg: Config,
    child_path: Path = CHILDREN / "echo_child.py",
    label: str = "",
    *,
    sync: bool = False,
    spin: float | None = None,
) -> Row:
    """Round trips, pipelined small messages and 1 MiB messages through `ipc.fork`.

    Driven from the message listener (see `_Driver`), or with `sync` from this thread, which
    waits on a queue the listener fills: what a blocking caller pays.
    """
    if sync:
        return _bench_ipc_sync(transport, cfg, child_path, label)
    if spin is not None:
        reactor = get_reactor()
        saved, reactor.spin = reactor.spin, spin
        try:
            return bench_ipc(transport, cfg, child_path, label)
        finally:
            reactor.spin = saved
    driver = _Driver()
    child = ipc.fork(str(child_path), transport=transport, listeners={"message": driver.on_message})
    try:
        assert driver.ready() == "ready"
        driver.round_trips(child, cfg.warmup)
        times = driver.round_trips(child, cfg.rtt)
        msgs_elapsed = driver.pipelined(child, cfg.msgs, small)
        big = "x" * MIB
        driver.pipelined(child, 2, lambda i: big)
        big_elapsed = driver.pipelined(child, cfg.big, lambda i: big)
        name = _ipc_name(transport, child, label)
    finally:
        child.disconnect()
        child.wait(timeout=TIMEOUT)
    return _ipc_row(name, cfg, times, msgs_elapsed, big_elapsed)


def _ipc_name(transport: str, child: ipc.ChildProcess, label: str) -> str:
    return f"ipc {transport}" + (f" (= {child.transport})" if transport == "auto" else "") + label


def _ipc_row(
    name: str,
    cfg: Config,
    times: list[float],
    msgs_elapsed: float,
    big_elapsed: float,
    notes: list[str] | None = None,
) -> Row:
    """One ipc subject's numbers from its raw timings (the same arithmetic for every usage)."""
    return Row(
        subject=name,
        rtt_p50=percentile(times, 50),
        rtt_p99=percentile(times, 99),
        msgs_per_s=cfg.msgs / msgs_elapsed,
        mb_per_s=cfg.big * MIB / 1e6 / big_elapsed,
        notes=notes or [],
    )


def _fork(path: Path, transport: str, q: queue.SimpleQueue) -> ipc.ChildProcess:
    return ipc.fork(str(path), transport=transport, listeners={"message": q.put})


def _get(q: queue.SimpleQueue) -> Any:
    return q.get(timeout=TIMEOUT)


def _bench_ipc_sync(transport: str, cfg: Config, child_path: Path, label: str) -> Row:
    """As `bench_ipc`, but this thread sends and blocks on a queue for each echo."""
    q: queue.SimpleQueue = queue.SimpleQueue()
    child = _fork(child_path, transport, q)
    try:
        assert _get(q) == "ready"
        for i in range(cfg.warmup):
            child.send(small(i))
            _get(q)
        times = []
        for i in range(cfg.rtt):
            t0 = time.perf_counter()
            child.send(small(i))
            _get(q)
            times.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        for i in range(cfg.msgs):
            child.send(small(i))
        for _ in range(cfg.msgs):
            _get(q)
        msgs_elapsed = time.perf_counter() - t0

        big = "x" * MIB
        for _ in range(2):
            child.send(big)
            _get(q)
        t0 = time.perf_counter()
        for _ in range(cfg.big):
            child.send(big)
        for _ in range(cfg.big):
            assert len(_get(q)) == MIB
        big_elapsed = time.perf_counter() - t0
        name = _ipc_name(transport, child, label)
    finally:
        child.disconnect()
        child.wait(timeout=TIMEOUT)
    return _ipc_row(
        name,
        cfg,
        times,
        msgs_elapsed,
        big_elapsed,
        ["a blocking caller: one thread hand-off (reactor -> caller) per echo"],
    )


def startup_ipc(path: Path, cfg: Config) -> tuple[float, float]:
    """Median and minimum time from `ipc.fork()` to the child's first message."""
    times = []
    for _ in range(cfg.startups):
        q: queue.SimpleQueue = queue.SimpleQueue()
        t0 = time.perf_counter()
        child = _fork(path, "auto", q)
        assert _get(q) == "ready"
        times.append(time.perf_counter() - t0)
        child.disconnect()
        child.wait(timeout=TIMEOUT)
    return statistics.median(times), min(times)


# --- the floor: raw socketpair, JSON lines, blocking I/O --------------------------------------


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _encode(msg: Any) -> bytes:
    return _encoder.encode(msg).encode() + b"\n"


def throughput(
    pipelined: Callable[[Callable[[int], Any], int], float], cfg: Config
) -> tuple[float, float]:
    """Seconds for `cfg.msgs` small messages and for `cfg.big` 1 MiB ones (after two to warm
    up), with `pipelined(make, n)` the subject's own pipelined echo loop."""
    msgs_elapsed = pipelined(small, cfg.msgs)
    big = "x" * MIB
    pipelined(lambda i: big, 2)
    return msgs_elapsed, pipelined(lambda i: big, cfg.big)


def bench_floor(cfg: Config, ipc_child: bool = False) -> Row:
    """The raw floor; with `ipc_child` the child is the `ipc.parent` echo child instead, which
    isolates the child side's cost (same parent, same framing)."""
    ours, theirs = socket.socketpair()
    fd = theirs.fileno()
    if ipc_child:
        env = {
            **os.environ,
            "NODE_CHANNEL_FD": str(fd),
            "NODE_CHANNEL_SERIALIZATION_MODE": "json",
            "PYTHONPATH": str(ROOT),
        }
        argv = [sys.executable, str(CHILDREN / "echo_child.py")]
    else:
        env, argv = None, [sys.executable, str(CHILDREN / "raw_echo.py"), str(fd)]
    proc = subprocess.Popen(argv, pass_fds=[fd], env=env)
    theirs.close()
    reader = ours.makefile("rb")
    try:
        assert json.loads(reader.readline()) == "ready"
        for i in range(cfg.warmup):
            ours.sendall(_encode(small(i)))
            json.loads(reader.readline())
        times = []
        for i in range(cfg.rtt):
            t0 = time.perf_counter()
            ours.sendall(_encode(small(i)))
            json.loads(reader.readline())
            times.append(time.perf_counter() - t0)

        def pipelined(make: Callable[[int], Any], n: int) -> float:
            # A writer thread: with both sides blocking, writing everything before reading
            # would deadlock once both socket buffers are full.
            writer = threading.Thread(
                target=lambda: [ours.sendall(_encode(make(i))) for i in range(n)]
            )
            t0 = time.perf_counter()
            writer.start()
            for _ in range(n):
                json.loads(reader.readline())
            elapsed = time.perf_counter() - t0
            writer.join()
            return elapsed

        msgs_elapsed, big_elapsed = throughput(pipelined, cfg)
    finally:
        reader.close()
        ours.close()
        proc.wait(timeout=TIMEOUT)
    return Row(
        subject="raw parent + ipc child" if ipc_child else "raw socketpair floor",
        rtt_p50=percentile(times, 50),
        rtt_p99=percentile(times, 99),
        msgs_per_s=cfg.msgs / msgs_elapsed,
        mb_per_s=cfg.big * MIB / 1e6 / big_elapsed,
        notes=[
            "JSON lines, blocking I/O, no reactor"
            + ("; child uses ipc.parent" if ipc_child else "")
        ],
    )


# --- multiprocessing.Pipe ----------------------------------------------------------------------


def _mp_echo(conn: Any) -> None:
    conn.send("ready")
    try:
        while True:
            conn.send(conn.recv())
    except EOFError:
        pass
    finally:
        conn.close()


def bench_mp_pipe(cfg: Config) -> Row:
    ctx = multiprocessing.get_context("spawn")  # fork() in a threaded process is unsafe
    ours, theirs = ctx.Pipe()
    t0 = time.perf_counter()
    proc = ctx.Process(target=_mp_echo, args=(theirs,))
    proc.start()
    theirs.close()
    try:
        assert ours.recv() == "ready"
        startup = time.perf_counter() - t0
        for i in range(cfg.warmup):
            ours.send(small(i))
            ours.recv()
        times = []
        for i in range(cfg.rtt):
            t0 = time.perf_counter()
            ours.send(small(i))
            ours.recv()
            times.append(time.perf_counter() - t0)

        def pipelined(make: Callable[[int], Any], n: int) -> float:
            writer = threading.Thread(target=lambda: [ours.send(make(i)) for i in range(n)])
            t0 = time.perf_counter()
            writer.start()
            for _ in range(n):
                ours.recv()
            elapsed = time.perf_counter() - t0
            writer.join()
            return elapsed

        msgs_elapsed, big_elapsed = throughput(pipelined, cfg)
    finally:
        ours.close()
        proc.join(TIMEOUT)
    return Row(
        subject="multiprocessing.Pipe",
        rtt_p50=percentile(times, 50),
        rtt_p99=percentile(times, 99),
        msgs_per_s=cfg.msgs / msgs_elapsed,
        mb_per_s=cfg.big * MIB / 1e6 / big_elapsed,
        startup_median=startup,
        startup_min=startup,
        notes=["pickle framing, spawn context; start-up is one sample (spawn re-imports)"],
    )


# --- Node's own fork ---------------------------------------------------------------------------


def bench_node(cfg: Config) -> Row | None:
    if NODE is None:
        return None
    out = subprocess.run(
        [
            NODE,
            str(HERE / "node_fork_bench.js"),
            str(cfg.rtt),
            str(cfg.msgs),
            str(cfg.big),
            str(cfg.startups),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Row(
        subject=f"node fork ({data['node']})",
        rtt_p50=data["rtt_p50"],
        rtt_p99=data["rtt_p99"],
        msgs_per_s=data["msgs_per_s"],
        mb_per_s=data["mb_per_s"],
        startup_median=data["startup_median"],
        startup_min=data["startup_min"],
        notes=["Node parent and child, measured in Node"],
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
    if NODE is not None:
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
