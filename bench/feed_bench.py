"""Benchmark of the live feed's fan-out: one server, a classroom of WebSocket clients.

Run: ``.venv/bin/python bench/feed_bench.py`` (about a minute) or ``--quick``.
Prints a table and writes ``bench/results/feed_bench.json``.

The server runs as users run it (``python -m webapp``: gunicorn, one gthread worker, default
flags, plus ``--allow-any-command`` for the second workload). N clients (default 100) connect
to ``/ws`` and subscribe to every job; then one job prints L lines (default 100,000) and the
clock runs from the ``POST /api/jobs`` until the last client has the job's ``close`` event.
Every client must have every line exactly, in order (checked, not assumed).

Workloads:

* ``seq L`` (allowlisted): the child writes in 4 KiB blocks, which the server reads in
  64 KiB chunks, so about a dozen events;
* ``os.write`` per line (a Python child): a write per line; still few events (the reads
  catch many lines each);
* ``progress.py 10000 0`` (forked): 10,000 lines each flushed, and 10,001 messages, which are
  never merged: tens of thousands of events per client, the worst case for the fan-out. A
  client that falls more than the subscriber queue (1000 events) behind gets a ``dropped``
  notice instead of the rest, by design, and such a run is not "exact".

"exact" counts the clients that got every line (and every message) in order, with no
``dropped`` notice. The clients live in this process (one thread, one epoll loop, a minimal
frame reader); their CPU time is shown beside the server worker's, because on a small machine
they compete with the server for the same cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import selectors
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "web"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from server import LiveServer  # noqa: E402 - tests/server.py: the real server, as users run it
from webtest import worker_pid  # noqa: E402

from webapp.stats import read_proc, rss_of  # noqa: E402

RESULTS = HERE / "results" / "feed_bench.json"


class Client:
    """A WebSocket client reduced to what the benchmark needs: connect, subscribe, read."""

    def __init__(self, srv: LiveServer) -> None:
        self.sock = socket.create_connection((srv.host, srv.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws?token={srv.token} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {key}\r\nOrigin: {srv.origin}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed during the handshake")
            head += data
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"refused: {head.decode(errors='replace')}")
        self.buffer = bytearray(head.split(b"\r\n\r\n", 1)[1])
        self.text: list[str] = []
        self.messages_seen = 0
        self.events = 0
        self.done_at: float | None = None
        self.job: str | None = None
        self.last_seq = 0
        self.problems: list[str] = []

    def send(self, obj: dict[str, Any]) -> None:
        payload = json.dumps(obj).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def messages(self) -> list[dict[str, Any]]:
        """The complete frames in the buffer, decoded."""
        out = []
        buf = self.buffer
        pos = 0
        while len(buf) - pos >= 2:
            size = buf[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if len(buf) - pos < 4:
                    break
                size = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif size == 127:
                if len(buf) - pos < 10:
                    break
                size = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if len(buf) - pos < head + size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:
                out.append(json.loads(bytes(buf[pos + head : pos + head + size])))
            pos += head + size
        del buf[:pos]
        return out

    def read(self) -> bool:
        """Read what is there; True once the job's close arrived."""
        data = self.sock.recv(1 << 20)
        if not data:
            self.problems.append("connection closed")
            return True
        self.buffer += data
        for msg in self.messages():
            seq = msg.get("seq")
            if seq is not None:
                if seq <= self.last_seq:
                    self.problems.append(f"seq {seq} after {self.last_seq}")
                self.last_seq = seq
            if msg.get("type") == "dropped":
                self.problems.append(f"dropped {msg['data']}")
            if msg.get("job") != self.job:
                continue
            self.events += 1
            if msg["type"] == "stdout":
                self.text.append(msg["data"]["text"])
            elif msg["type"] == "message":
                self.messages_seen += 1
            elif msg["type"] == "close":
                self.done_at = time.monotonic()
                return True
        return False


def run(
    srv: LiveServer, clients: int, spec: dict[str, Any], expected: str, messages: int
) -> dict[str, Any]:
    feeds = [Client(srv) for _ in range(clients)]
    try:
        for feed in feeds:
            feed.send({"type": "subscribe", "job": None, "after": None})
        for feed in feeds:  # wait for every `subscribed`
            feed.sock.settimeout(30)
            while not any(m.get("type") == "subscribed" for m in feed.messages()):
                feed.buffer += feed.sock.recv(65536)
        worker = worker_pid(srv)
        rss_before = rss_of(worker) if worker else None
        cpu_before = _cpu(worker)
        own_before = time.process_time()
        sel = selectors.DefaultSelector()
        for feed in feeds:
            feed.sock.setblocking(False)
            sel.register(feed.sock, selectors.EVENT_READ, feed)
        began = time.monotonic()
        status, job = srv.json("POST", "/api/jobs", spec, timeout=60)
        if status != 201:
            raise RuntimeError(f"POST /api/jobs: {status} {job}")
        post_s = time.monotonic() - began
        for feed in feeds:
            feed.job = job["id"]
            if feed.messages():  # anything already buffered (nothing of this job yet)
                pass
        open_feeds = len(feeds)
        peak = rss_before or 0
        deadline = began + 300
        while open_feeds and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                feed = key.data
                try:
                    finished = feed.read()
                except BlockingIOError:
                    continue
                if finished:
                    sel.unregister(feed.sock)
                    open_feeds -= 1
            if worker:
                peak = max(peak, rss_of(worker) or 0)
        sel.close()
        server_cpu = _cpu(worker) - cpu_before
        client_cpu = time.process_time() - own_before
        exact = sum(
            1
            for f in feeds
            if "".join(f.text) == expected and f.messages_seen == messages and not f.problems
        )
        done = [f.done_at - began for f in feeds if f.done_at]
        return {
            "clients": clients,
            "exact": exact,
            "post_s": round(post_s, 3),
            "first_s": round(min(done), 2) if done else None,
            "last_s": round(max(done), 2) if len(done) == clients else None,
            "events_per_client": round(sum(f.events for f in feeds) / clients),
            "server_cpu_s": round(server_cpu, 2),
            "client_cpu_s": round(client_cpu, 2),
            "rss_before_mib": round((rss_before or 0) / 2**20, 1),
            "rss_peak_mib": round(peak / 2**20, 1),
            "problems": sorted({p for f in feeds for p in f.problems})[:5],
        }
    finally:
        for feed in feeds:
            feed.sock.close()


def _cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the server's worker has used so far."""
    info = read_proc(pid) if pid else None
    return info["cpu_time"] if info else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20 clients, 20,000 lines")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.clients, args.lines = 20, 20_000
    lines = args.lines
    numbers = "".join(f"{n}\n" for n in range(1, lines + 1))
    per_line = f"import os\nfor n in range(1, {lines} + 1): os.write(1, b'%d\\n' % n)"
    steps = min(10_000, lines // 10)
    workloads = {
        f"seq {lines}": ({"kind": "spawn", "command": "seq", "args": [str(lines)]}, numbers, 0),
        "os.write per line": (
            {"kind": "spawn", "command": sys.executable, "args": ["-c", per_line]},
            numbers,
            0,
        ),
        f"progress.py {steps} 0": (
            {"kind": "fork", "program": "progress.py", "args": [str(steps), "0"]},
            "".join(f"progress {k}/{steps}\n" for k in range(1, steps + 1)),
            steps + 1,
        ),
    }
    rows = []
    with LiveServer(["--allow-any-command", "--max-children", "8"]) as srv:
        for name, (spec, expected, messages) in workloads.items():
            for clients in (1, args.clients):
                row = {"workload": name, **run(srv, clients, spec, expected, messages)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    header = (
        f"{'workload':<24}{'clients':>8}{'exact':>7}{'POST s':>8}{'first s':>9}{'last s':>8}"
        f"{'events':>8}{'srv CPU':>9}{'cli CPU':>9}{'RSS MiB':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        rss = f"{r['rss_before_mib']:.0f}->{r['rss_peak_mib']:.0f}"
        print(
            f"{r['workload']:<24}{r['clients']:>8}{r['exact']:>7}{r['post_s']:>8.2f}"
            f"{r['first_s'] or float('nan'):>9.2f}{r['last_s'] or float('nan'):>8.2f}"
            f"{r['events_per_client']:>8}{r['server_cpu_s']:>9.2f}{r['client_cpu_s']:>9.2f}{rss:>10}"
        )
    report = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "lines": lines,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0 if all(r["exact"] == r["clients"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
