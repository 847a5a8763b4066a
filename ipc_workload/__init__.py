"""The benchmark workloads: what `make bench` and the explorer's transport lab both measure.

A package of its own, beside `ipc` (which it measures) and under both of its users: the app's
lab (``webapp/lab.py``) and the benchmark script (``bench/ipc_bench.py``) import this one code,
so they cannot drift apart, and the app does not depend on the benchmark scripts. It imports
nothing but `ipc` and the standard library: `bench_mp_pipe`'s spawned child re-imports it,
and a heavier import would count in that subject's start-up time.

Every subject is a parent and an echo child doing the same work:

* round trip: one small JSON message (``{"i": n, "op": "ping", "text": "hello"}``) sent and
  its echo received, one at a time; p50 and p99 of the wall time;
* messages/s: N such messages sent back to back (pipelined), divided by the time until the
  last echo came back;
* MB/s: M messages of a 1 MiB JSON string, pipelined, payload megabytes (10^6) echoed per
  second;
* start-up: from the `fork()` call to the child's first message ("ready").

Subjects: `ipc.fork` over each transport (`bench_ipc`, Python child using `ipc.parent`), each
phase driven from the `message` listener as ``node_fork_bench.js`` drives Node's (plus a
blocking-caller usage, which adds a thread hand-off); the *floor* (`bench_floor`), a raw
``socket.socketpair()`` with the same JSON-lines framing and blocking I/O on both sides (no
reactor, no thread hand-off); ``multiprocessing.Pipe`` (`bench_mp_pipe`); and Node's own
``child_process.fork()`` measuring itself in Node (`bench_node`).

A `Control` lets a caller watch and stop a subject: each number is reported as soon as it is
measured (the lab streams them to the page), and `Control.cancel()`, from any thread, kills the
child being measured so that every wait ends at once with `Cancelled`. Reports are made
between timed operations, never inside one, so watching does not change what is measured.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipc
from ipc.reactor import get_reactor

HERE = Path(__file__).resolve().parent
#: Where `ipc` is imported from: the raw floor's child with an ipc echo needs it on its path.
IPC_HOME = Path(ipc.__file__).resolve().parent.parent

CHILDREN = HERE / "children"
NODE_BENCH = HERE / "node_fork_bench.js"
MIB = 1024 * 1024
SMALL = {"i": 0, "op": "ping", "text": "hello"}
#: Seconds any one phase may take before it counts as hung.
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


class Cancelled(Exception):
    """The run was stopped by `Control.cancel()` before this subject finished."""


Report = Callable[[str, dict[str, Any]], None]


class Control:
    """A caller's handle on a running subject: progress out, cancellation in.

    :param report: called as ``report(phase, numbers)`` from the measuring thread (or the
        reactor thread) each time something is measured: ``("ready", {})``,
        ``("rtt_progress", {"done", "total"})``, ``("rtt", {"rtt_p50", "rtt_p99"})``,
        ``("msgs", {"msgs_per_s"})``, ``("big", {"mb_per_s"})``. It must be quick.
    """

    def __init__(self, report: Report | None = None) -> None:
        self._report = report
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._stop: Callable[[], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the subject now (any thread): its child is killed, its waits end."""
        self._cancelled.set()
        with self._lock:
            stop = self._stop
        if stop is not None:
            stop()

    def check(self) -> None:
        """:raises Cancelled: `cancel()` was called."""
        if self._cancelled.is_set():
            raise Cancelled("cancelled")

    def report(self, phase: str, **numbers: Any) -> None:
        if self._report is not None:
            self._report(phase, numbers)

    @contextmanager
    def stopping_with(self, stop: Callable[[], None]) -> Iterator[None]:
        """While inside, `cancel()` calls `stop` (which kills the subject's child)."""
        with self._lock:
            self._stop = stop
        try:
            if self._cancelled.is_set():
                stop()
            yield
        finally:
            with self._lock:
                self._stop = None


#: For callers that neither watch nor cancel (the bench script).
def _quiet() -> Control:
    return Control()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def small(i: int) -> dict[str, Any]:
    return {**SMALL, "i": i}


def _progress_step(n: int) -> int:
    """Round trips between two progress reports: about ten per phase."""
    return max(1, n // 10)


# --- ours --------------------------------------------------------------------------------------


class _Driver:
    """Runs each phase from the child's `message` listener, as `node_fork_bench.js` does in Node.

    The listener runs on the reactor thread, which reads the echo and sends the next message
    itself: no thread hand-off per message, the same shape as Node's event-loop callbacks. The
    calling thread only starts a phase and waits for its end. (`bench_ipc(sync=True)` measures
    the other usage, a blocking caller, whose thread hand-off costs tens of µs on its own.)
    """

    def __init__(self, control: Control) -> None:
        # The first phase, the child's "ready", is armed from the start: the child may send it
        # before `fork()` has returned to us (the listener is attached before it starts).
        self._handler: Callable[[Any], None] = self._finish
        self._done = threading.Event()
        self._control = control
        self.result: Any = None

    def on_message(self, msg: Any) -> None:
        self._handler(msg)

    def _unexpected(self, msg: Any) -> None:
        if not self._control.cancelled:
            raise AssertionError(f"message outside a phase: {msg!r:.80}")

    def _finish(self, result: Any) -> None:
        self._handler = self._unexpected
        self.result = result
        self._done.set()

    def _wait(self) -> Any:
        deadline = time.monotonic() + TIMEOUT
        while not self._done.wait(0.1):
            self._control.check()
            if time.monotonic() > deadline:
                raise TimeoutError("benchmark phase did not finish")
        self._control.check()
        self._done.clear()
        return self.result

    def ready(self) -> Any:
        return self._wait()

    def round_trips(self, child: ipc.ChildProcess, n: int, *, report: bool = False) -> list[float]:
        """`n` sequential round trips; the wall time of each (progress reported between two
        of them, outside the timed span, when `report`)."""
        times: list[float] = []
        step = _progress_step(n) if report else 0
        t0 = 0.0

        def on_message(msg: Any) -> None:
            nonlocal t0
            times.append(time.perf_counter() - t0)
            done = len(times)
            if done == n:
                self._finish(times)
                return
            if step and done % step == 0:
                self._control.report("rtt_progress", done=done, total=n)
            t0 = time.perf_counter()
            child.send(small(done))

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
    control: Control | None = None,
) -> Row:
    """Round trips, pipelined small messages and 1 MiB messages through `ipc.fork`.

    Driven from the message listener (see `_Driver`), or with `sync` from this thread, which
    waits on a queue the listener fills: what a blocking caller pays.

    :raises Cancelled: `control` was cancelled.
    """
    if sync:
        return _bench_ipc_sync(transport, cfg, child_path, label)
    if spin is not None:
        reactor = get_reactor()
        saved, reactor.spin = reactor.spin, spin
        try:
            return bench_ipc(transport, cfg, child_path, label, control=control)
        finally:
            reactor.spin = saved
    control = control or _quiet()
    control.check()
    driver = _Driver(control)
    child = ipc.fork(str(child_path), transport=transport, listeners={"message": driver.on_message})
    try:
        with control.stopping_with(lambda: child.kill("SIGKILL")):
            assert driver.ready() == "ready"
            control.report("ready")
            driver.round_trips(child, cfg.warmup)
            times = driver.round_trips(child, cfg.rtt, report=True)
            control.report("rtt", rtt_p50=percentile(times, 50), rtt_p99=percentile(times, 99))
            msgs_elapsed = driver.pipelined(child, cfg.msgs, small)
            control.report("msgs", msgs_per_s=cfg.msgs / msgs_elapsed)
            big = "x" * MIB
            driver.pipelined(child, 2, lambda i: big)
            big_elapsed = driver.pipelined(child, cfg.big, lambda i: big)
            control.report("big", mb_per_s=cfg.big * MIB / 1e6 / big_elapsed)
            name = _ipc_name(transport, child, label)
    finally:
        _end_child(child)
    return _ipc_row(name, cfg, times, msgs_elapsed, big_elapsed)


def _end_child(child: ipc.ChildProcess) -> None:
    """Disconnect (the echo child then exits) and reap; a child killed by a cancel is reaped."""
    if child.connected:
        try:
            child.disconnect()
        except ipc.ChannelClosedError:
            pass
    try:
        child.wait(timeout=TIMEOUT)
    except ipc.ProcessTimeoutError:
        child.kill("SIGKILL")
        child.wait(timeout=TIMEOUT)


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
    pipelined: Callable[[Callable[[int], Any], int], float],
    cfg: Config,
    control: Control | None = None,
) -> tuple[float, float]:
    """Seconds for `cfg.msgs` small messages and for `cfg.big` 1 MiB ones (after two to warm
    up), with `pipelined(make, n)` the subject's own pipelined echo loop."""
    control = control or _quiet()
    msgs_elapsed = pipelined(small, cfg.msgs)
    control.report("msgs", msgs_per_s=cfg.msgs / msgs_elapsed)
    control.check()
    big = "x" * MIB
    pipelined(lambda i: big, 2)
    big_elapsed = pipelined(lambda i: big, cfg.big)
    control.report("big", mb_per_s=cfg.big * MIB / 1e6 / big_elapsed)
    return msgs_elapsed, big_elapsed


def _writer(send: Callable[[Any], None], make: Callable[[int], Any], n: int) -> threading.Thread:
    """A thread that sends `n` messages (a pipelined loop with blocking I/O on both sides
    would deadlock once both buffers are full if one thread wrote everything before reading).
    A peer that went away (a cancelled run) ends it quietly: the reader reports that."""

    def run() -> None:
        try:
            for i in range(n):
                send(make(i))
        except OSError:
            pass

    return threading.Thread(target=run, daemon=True)


def bench_floor(cfg: Config, ipc_child: bool = False, control: Control | None = None) -> Row:
    """The raw floor; with `ipc_child` the child is the `ipc.parent` echo child instead, which
    isolates the child side's cost (same parent, same framing).

    :raises Cancelled: `control` was cancelled.
    """
    control = control or _quiet()
    control.check()
    ours, theirs = socket.socketpair()
    fd = theirs.fileno()
    if ipc_child:
        env = {
            **os.environ,
            "NODE_CHANNEL_FD": str(fd),
            "NODE_CHANNEL_SERIALIZATION_MODE": "json",
            "PYTHONPATH": str(IPC_HOME),
        }
        argv = [sys.executable, str(CHILDREN / "echo_child.py")]
    else:
        env, argv = None, [sys.executable, str(CHILDREN / "raw_echo.py"), str(fd)]
    proc = subprocess.Popen(argv, pass_fds=[fd], env=env, process_group=0)
    theirs.close()
    reader = ours.makefile("rb")

    def echo() -> Any:
        line = reader.readline()
        if not line:
            control.check()
            raise EOFError("the floor's child closed the socket")
        return json.loads(line)

    try:
        with control.stopping_with(proc.kill):
            assert echo() == "ready"
            control.report("ready")
            for i in range(cfg.warmup):
                ours.sendall(_encode(small(i)))
                echo()
            times = []
            step = _progress_step(cfg.rtt)
            for i in range(cfg.rtt):
                t0 = time.perf_counter()
                ours.sendall(_encode(small(i)))
                echo()
                times.append(time.perf_counter() - t0)
                if (i + 1) % step == 0 and i + 1 < cfg.rtt:
                    control.report("rtt_progress", done=i + 1, total=cfg.rtt)
            control.report("rtt", rtt_p50=percentile(times, 50), rtt_p99=percentile(times, 99))

            def pipelined(make: Callable[[int], Any], n: int) -> float:
                writer = _writer(lambda m: ours.sendall(_encode(m)), make, n)
                t0 = time.perf_counter()
                writer.start()
                for _ in range(n):
                    echo()
                elapsed = time.perf_counter() - t0
                writer.join()
                return elapsed

            msgs_elapsed, big_elapsed = throughput(pipelined, cfg, control)
    except (OSError, ValueError):
        control.check()  # a cancel killed the child under a read or write: say so
        raise
    finally:
        reader.close()
        ours.close()
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
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
            writer = _writer(ours.send, make, n)
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


def node_path() -> str | None:
    """`node` on PATH, looked up each time (installing it later is noticed)."""
    return shutil.which("node")


def bench_node(cfg: Config, control: Control | None = None) -> Row | None:
    """Node's fork() IPC measured by Node itself; None without `node`.

    ``node_fork_bench.js`` prints one JSON line per phase as it is measured and the summary
    last; the phases are reported as they arrive.

    :raises Cancelled: `control` was cancelled.
    """
    node = node_path()
    if node is None:
        return None
    control = control or _quiet()
    control.check()
    argv = [node, str(NODE_BENCH), str(cfg.rtt), str(cfg.msgs), str(cfg.big), str(cfg.startups)]
    argv.append(str(cfg.warmup))
    # Its own process group: a cancel kills Node and the child Node forked, together.
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )

    def stop() -> None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass

    data: dict[str, Any] | None = None
    try:
        with control.stopping_with(stop):
            assert proc.stdout is not None
            for line in proc.stdout:
                data = json.loads(line)
                phase = data.pop("phase", None)
                if phase is not None:
                    control.report(phase, **data)
            assert proc.stderr is not None
            errors = proc.stderr.read()
            code = proc.wait(timeout=TIMEOUT)
        control.check()
        if code != 0 or data is None:
            raise RuntimeError(f"node_fork_bench.js failed (exit {code}): {errors[-2000:]}")
    finally:
        if proc.returncode is None:
            stop()
            proc.wait(timeout=TIMEOUT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return Row(
        subject=f"node fork ({data['node']})",
        rtt_p50=data["rtt_p50"],
        rtt_p99=data["rtt_p99"],
        msgs_per_s=data["msgs_per_s"],
        mb_per_s=data["mb_per_s"],
        startup_median=data.get("startup_median"),
        startup_min=data.get("startup_min"),
        notes=["Node parent and child, measured in Node"],
    )
