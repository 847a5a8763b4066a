"""Real npm workers, unchanged, against `ipc`: workerpool's and jest-worker's child processes
driven by a Python parent, and workerpool's own `Pool` (in Node) driving Python workers.

The packages are installed once with npm into test-artifacts/npm (pinned versions, kept
between runs); without node/npm, or without the registry, these tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from ipctest import NODE, PYTHON, ROOT, TIMEOUT, Recorder, fixture

import ipc

PACKAGES = {"workerpool": "10.0.3", "jest-worker": "30.5.1"}
NPM = shutil.which("npm")
NPM_DIR = ROOT / "test-artifacts" / "npm"

# workerpool's protocol (src/worker.js) and jest-worker's (src/types.ts)
WORKERPOOL_TERMINATE = "__workerpool-terminate__"
CHILD_MESSAGE_INITIALIZE, CHILD_MESSAGE_CALL, CHILD_MESSAGE_END = 0, 1, 2
PARENT_MESSAGE_OK, PARENT_MESSAGE_CLIENT_ERROR = 0, 1


def _installed() -> bool:
    for name, version in PACKAGES.items():
        manifest = NPM_DIR / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
            return False
    return True


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """test-artifacts/npm/node_modules with the pinned packages (npm install on first use)."""
    if NODE is None or NPM is None:
        pytest.skip("node and npm are needed for the npm interop tests (not on PATH)")
    if not _installed():
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        (NPM_DIR / "package.json").write_text(
            json.dumps({"private": True, "dependencies": PACKAGES}, indent=2) + "\n"
        )
        try:
            proc = subprocess.run(
                [NPM, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NPM_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm install took over 300 s (is the npm registry reachable?)")
        if proc.returncode != 0 or not _installed():
            pytest.skip(
                f"npm install failed (is the npm registry reachable?): {proc.stderr[-500:]}"
            )
    return NPM_DIR / "node_modules"


class Calls:
    """Request/response over one child: send, then wait for the reply that `match`es."""

    def __init__(self, child: ipc.ChildProcess) -> None:
        self.child = child
        self.rec = Recorder(child)

    def reply(self, match: Any) -> Any:
        return self.rec.wait_message(match, f"a reply matching {match}")


# ---- a Python parent, npm's own workers -----------------------------------------------------


def test_python_parent_drives_a_workerpool_worker(
    node_modules: Path, tmp_path: Path, reap: list
) -> None:
    """workerpool's worker.js, unchanged: "ready", {id, method, params} → {id, result}, its
    errors as objects, and "__workerpool-terminate__" → exit 0."""
    worker = tmp_path / "worker.js"
    worker.write_text(
        "const workerpool = require('workerpool');\n"
        "workerpool.worker({\n"
        "  add: (a, b) => a + b,\n"
        "  fail: () => { throw new TypeError('nope'); },\n"
        "  later: (x) => new Promise((resolve) => setTimeout(() => resolve(x * 2), 10)),\n"
        "});\n"
    )
    child = ipc.fork(str(worker), env={**os.environ, "NODE_PATH": str(node_modules)})
    reap.append(child)
    calls = Calls(child)
    assert calls.reply(lambda m: m == "ready") == "ready"
    child.send({"id": 1, "method": "add", "params": [2, 3]})
    child.send({"id": 2, "method": "later", "params": [21]})
    child.send({"id": 3, "method": "fail", "params": []})
    child.send({"id": 4, "method": "nosuch", "params": []})
    by_id = {
        i: calls.reply(lambda m, i=i: isinstance(m, dict) and m.get("id") == i)
        for i in (1, 2, 3, 4)
    }
    assert by_id[1] == {"id": 1, "result": 5, "error": None}
    assert by_id[2] == {"id": 2, "result": 42, "error": None}
    assert by_id[3]["error"]["message"] == "nope"  # worker.js's convertError: no "name"
    assert by_id[3]["error"]["stack"].startswith("TypeError: nope")
    assert by_id[4]["error"]["message"] == 'Unknown method "nosuch"'
    child.send(WORKERPOOL_TERMINATE)
    assert child.wait(timeout=TIMEOUT) == 0
    assert not calls.rec.args("error")


def test_python_parent_drives_jest_workers_process_child(
    node_modules: Path, tmp_path: Path, reap: list
) -> None:
    """jest-worker's build/processChild.js, unchanged. On CHILD_MESSAGE_END it only removes
    its message listener and relies on Node ending the process: it must end on its own, with
    our end of the channel still open."""
    module = tmp_path / "module.js"
    module.write_text(
        "exports.add = (a, b) => a + b;\n"
        "exports.later = (x) => new Promise((resolve) => setTimeout(() => resolve([x]), 10));\n"
        "exports.fail = () => { throw new RangeError('out of range'); };\n"
    )
    process_child = node_modules / "jest-worker" / "build" / "processChild.js"
    child = ipc.fork(str(process_child))
    reap.append(child)
    calls = Calls(child)
    child.send([CHILD_MESSAGE_INITIALIZE, False, str(module), []])
    child.send([CHILD_MESSAGE_CALL, False, "add", [2, 40]])
    assert calls.reply(lambda m: True) == [PARENT_MESSAGE_OK, 42]
    child.send([CHILD_MESSAGE_CALL, False, "later", ["开始计算"]])
    assert calls.rec.wait_messages(2)[1] == [PARENT_MESSAGE_OK, ["开始计算"]]
    child.send([CHILD_MESSAGE_CALL, False, "fail", []])
    error = calls.rec.wait_messages(3)[2]
    assert error[:3] == [PARENT_MESSAGE_CLIENT_ERROR, "RangeError", "out of range"]
    child.send([CHILD_MESSAGE_END, False])
    assert child.wait(timeout=TIMEOUT) == 0
    assert child.connected or "disconnect" in calls.rec.names()  # it ended; we did not close
    calls.rec.wait_for("close")


# ---- workerpool's own Pool (Node) drives Python workers -------------------------------------


def run_node(node_modules: Path, script: str, *args: str) -> dict[str, Any]:
    """Run a Node parent from fixtures/ with the npm packages and this `ipc` on hand; return
    the JSON document it prints last."""
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [str(NODE), fixture(script), PYTHON, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 10,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_workerpool_pool_drives_python_workers(node_modules: Path) -> None:
    result = run_node(node_modules, "workerpool_pool.js", fixture("workerpool_worker.py"))
    assert result["sums"] == [i + 1000 for i in range(20)]
    assert result["upper"] == "开始计算 OK"
    assert result["failed"] == "nope"
    assert result["unknown"] == 'Unknown method "nosuch"'
    assert 1 <= result["workers"] <= 2
    assert result["stats"]["pendingTasks"] == 0 and result["stats"]["activeTasks"] == 0


def test_workerpool_worker_under_a_python_parent_too(reap: list) -> None:
    """The same Python worker under ipc.fork: our parent speaks workerpool's protocol."""
    child = ipc.fork(fixture("workerpool_worker.py"))
    reap.append(child)
    calls = Calls(child)
    assert calls.reply(lambda m: m == "ready") == "ready"
    child.send({"id": 7, "method": "add", "params": [1, 2]})
    assert calls.reply(lambda m: isinstance(m, dict)) == {"id": 7, "result": 3, "error": None}
    done = threading.Event()
    child.on("exit", lambda code, signal: done.set())
    child.send(WORKERPOOL_TERMINATE)
    assert done.wait(TIMEOUT)
    assert child.exit_code == 0


def test_jest_worker_ends_a_python_worker_without_forcing_it(
    node_modules: Path, tmp_path: Path
) -> None:
    """jest-worker's own Worker: its END only makes the child remove its message listener, and
    waits for the child to end by itself before it would SIGTERM it (forceExited)."""
    module = tmp_path / "module.py"
    module.write_text(
        "def add(a, b):\n    return a + b\n\ndef fail(text):\n    raise KeyError(text)\n"
    )
    result = run_node(
        node_modules, "jest_worker_parent.js", fixture("jest_worker_child.py"), str(module)
    )
    assert result["sums"] == [5, 42]
    assert result["failed"] == {"type": "KeyError", "message": "'nope'"}
    assert result["forceExited"] is False, "the worker did not end when its listener went"
