"""Hundreds of children cost one reactor thread, not three threads each."""

from __future__ import annotations

import threading

from ipctest import TIMEOUT, Recorder, fixture

import ipc

#: The test runner's own threads plus the reactor; far below one thread per child.
MAX_THREADS = 10


def test_200_children_at_once_use_one_thread(reap: list) -> None:
    base = threading.active_count()
    children = []
    for i in range(200):
        # sh reads a line from stdin, so every child is alive with stdin/stdout/stderr open
        child = ipc.spawn("/bin/sh", ["-c", f'read line; echo "{i}:$line"; echo e{i} >&2'])
        reap.append(child)
        children.append((child, Recorder(child)))
    for _child, rec in children:
        rec.wait_for("spawn")
    assert all(c.exit_code is None for c, _ in children), "children must overlap"
    during = threading.active_count()
    assert during < MAX_THREADS, f"{during} threads for 200 children (before: {base})"
    assert during - base <= 2
    for i, (child, _rec) in enumerate(children):
        child.write_stdin(f"hello {i}\n")
        child.end_stdin()
    for i, (child, rec) in enumerate(children):
        rec.wait_for("close")
        assert rec.output("stdout") == f"{i}:hello {i}\n".encode()
        assert rec.output("stderr") == f"e{i}\n".encode()
        assert child.exit_code == 0
    assert threading.active_count() < MAX_THREADS


def test_100_forked_children_with_channels_share_the_reactor(reap: list) -> None:
    children = []
    for _ in range(100):
        child = ipc.fork(fixture("echo.py"), args=["hello"])
        reap.append(child)
        children.append((child, Recorder(child)))
    for _child, rec in children:
        rec.wait_messages(1)
    assert threading.active_count() < MAX_THREADS
    assert sum(1 for c in ipc.children() if c.connected) >= 100
    for i, (child, _rec) in enumerate(children):
        child.send({"n": i})
    for i, (child, rec) in enumerate(children):
        assert rec.wait_messages(2)[1] == {"n": i}
        child.disconnect()
    for child, _rec in children:
        assert child.wait(timeout=TIMEOUT) == 0
    assert threading.active_count() < MAX_THREADS
