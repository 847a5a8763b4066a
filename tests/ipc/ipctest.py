"""Helpers for the `ipc` tests (fixtures live in conftest.py).

Every test here runs real processes. Nothing is mocked: a child is a real Python or Node
program started through the library, and the tests wait on the events it reports. Waiting is
always bounded (`TIMEOUT`), never a fixed sleep, so a missing event fails the test instead of
hanging it or passing by luck.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
from recorder import EVENTS as EVENTS  # re-exported: the ipc tests import them from here
from recorder import TIMEOUT
from recorder import Recorder as Recorder

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
NODE = shutil.which("node")


#: Transports a Python child can use (all of them).
TRANSPORTS = ["pipe", "socketpair", "unix", "tcp", "auto"]
#: Transports a Node child can use: Node needs a duplex socket, so no `pipe`.
NODE_TRANSPORTS = ["socketpair", "unix", "tcp", "auto"]

needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH")


def fixture(name: str) -> str:
    """Absolute path of a child program under tests/ipc/fixtures."""
    path = FIXTURES / name
    assert path.exists(), path
    return str(path)


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs: no such process, or only a zombie awaiting its reaper.

    A grandchild orphaned by a killed child is re-parented to init (or a subreaper), which may
    be slow to reap it in a container; a zombie does not run, so it counts as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")


def wait_gone(pid: int, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.02)
    return process_gone(pid)


def python_child(tmp_path: Path, source: str, name: str = "child.py") -> str:
    """Write a Python child program into `tmp_path` and return its path."""
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def nested(depth: int) -> list[object]:
    """An empty list inside lists, `depth` levels in all (built without recursion)."""
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value: object) -> int:
    """How deep `value` nests lists along its first items (counted without recursion)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def node_parent(child: str, steps: list[object], timeout: float = TIMEOUT) -> list[dict]:
    """Run fixtures/node_parent_driver.js: Node's own fork() of the Python program `child`,
    driven by `steps`; return the events it printed (see that file)."""
    import json
    import os
    import subprocess
    import tempfile

    from ipc import wire

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as steps_file:
        json.dump(steps, steps_file)
        steps_file.flush()
        proc = subprocess.run(
            [str(NODE), fixture("node_parent_driver.js"), PYTHON, child, steps_file.name],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            env=env,
        )
    # wire.loads: a message may be nested deeper than json.loads goes
    events = [wire.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "done", (events, proc.stderr)
    return events


def node_messages(events: list[dict], name: str = "message") -> list[object]:
    return [e["data"] for e in events if e["event"] == name]


def node_exit(events: list[dict]) -> tuple[object, object]:
    (exit_event,) = [e for e in events if e["event"] == "exit"]
    return exit_event["code"], exit_event["signal"]
