"""Several threads on one channel, and sends from inside callbacks (the reactor thread).

`send()` writes from the caller's thread when the channel is idle (no hand-off), so two
callers racing for the same fd must never interleave the bytes of their frames.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from ipctest import TIMEOUT, TRANSPORTS, Recorder, fixture

import ipc


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("serialization", ["json", "binary"])
def test_parallel_senders_never_interleave_frames(
    transport: str, serialization: str, reap: list
) -> None:
    child = ipc.fork(
        fixture("echo.py"), args=["hello"], transport=transport, serialization=serialization
    )
    reap.append(child)
    rec = Recorder(child)
    rec.wait_messages(1)
    threads, per_thread = 4, 120
    sizes = [10, 5000, 70_000, 200_000]  # big ones cannot go out in one write()
    start = threading.Barrier(threads)

    def sender(t: int) -> None:
        start.wait()
        for n in range(per_thread):
            child.send({"t": t, "n": n, "pad": "x" * sizes[(n + t) % len(sizes)]})

    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(TIMEOUT)
    got = rec.wait_messages(1 + threads * per_thread, timeout=60)[1:]
    assert not rec.args("error"), rec.args("error")[:1]
    for t in range(threads):
        mine = [m for m in got if m["t"] == t]
        assert [m["n"] for m in mine] == list(range(per_thread)), "per-thread order kept"
        assert all(len(m["pad"]) == sizes[(m["n"] + t) % len(sizes)] for m in mine)
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_parallel_senders_in_the_child(transport: str, tmp_path: Path, reap: list) -> None:
    script = tmp_path / "threads.py"
    script.write_text(
        "import threading\n"
        "from ipc import parent\n"
        "sizes = [10, 5000, 70_000, 200_000]\n"
        "def sender(t):\n"
        "    for n in range(100):\n"
        "        parent.send({'t': t, 'n': n, 'pad': 'y' * sizes[(n + t) % 4]})\n"
        "workers = [threading.Thread(target=sender, args=(t,)) for t in range(4)]\n"
        "for w in workers: w.start()\n"
        "for w in workers: w.join()\n"
        "parent.disconnect()\n"
    )
    child = ipc.fork(str(script), transport=transport)
    reap.append(child)
    rec = Recorder(child)
    rec.wait_for("close", timeout=60)
    assert not rec.args("error"), rec.args("error")[:1]
    got = rec.messages()
    assert len(got) == 400
    for t in range(4):
        assert [m["n"] for m in got if m["t"] == t] == list(range(100))
    assert child.exit_code == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ping_pong_driven_from_the_reactor_thread(transport: str, reap: list) -> None:
    """Replying from inside a `message` callback (the natural Node style) must not deadlock."""
    child = ipc.fork(fixture("echo.py"), transport=transport)
    reap.append(child)
    done = threading.Event()
    count = [0]

    def on_message(msg: Any) -> None:
        count[0] += 1
        if msg["n"] >= 500:
            done.set()
        else:
            child.send({"n": msg["n"] + 1, "pad": "p" * (msg["n"] % 3 * 50_000)})

    child.on("message", on_message)
    child.send({"n": 0})
    assert done.wait(60), f"stalled after {count[0]} round trips"
    assert count[0] == 501
    child.disconnect()
    assert child.wait(timeout=TIMEOUT) == 0
