"""Fixtures for the web tests: a real server on 127.0.0.1 and a real WebSocket client.

`srv` is Werkzeug's threaded server in this process (fast, and the test can look inside the
app); tests that need a limit changed make their own `ThreadServer(config)`. The gunicorn
server (`LiveServer`) is used by test_live.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/server.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # webtest.py

from server import ThreadServer
from webtest import Feed

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture(scope="module")
def srv() -> Iterator[ThreadServer]:
    with ThreadServer() as server:
        yield server


@pytest.fixture
def feed(srv: ThreadServer) -> Iterator[Feed]:
    f = Feed(srv)
    yield f
    f.close()


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def descendants(pid: int) -> list[int]:
    """Every live process whose ancestry reaches `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.extend(kids)
        frontier.extend(kids)
    return found
