"""What a newcomer meets first: a port that is taken, a port that is no port, what the
server says when it stops, and a README and ``--help`` that agree on every flag."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

from server import ROOT, LiveServer
from webtest import readme_safe_rows, wait_for

from webapp.__main__ import build_parser

UNITS = {"KiB": 1024, "MiB": 1024 * 1024}


def run_server(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "webapp", "--host", "127.0.0.1", "--token=t", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_server("--port", str(port))
    assert done.returncode == 1, done
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    match = re.fullmatch(rf"port {port} is in use; try `make run PORT=(\d+)`", lines[0])
    assert match, lines
    assert int(match.group(1)) != port


def test_a_port_out_of_range_is_a_clean_error() -> None:
    done = run_server("--port", "99999")
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "ipc-explorer: argument --port: 99999 is not a port (use 1 to 65535) "
        "(see ipc-explorer --help)"
    ], lines  # one line, not the whole usage


def test_stop_prints_one_line_per_child_it_stopped() -> None:
    srv = LiveServer(["--grace", "1"])
    with srv:
        jobs = []
        for body in (
            {"kind": "spawn", "command": "sleep", "args": ["60"]},
            {"kind": "fork", "program": "ignore_term.py"},
        ):
            status, job = srv.json("POST", "/api/jobs", body)
            assert status == 201, job
            jobs.append(job)
        ready = f"/api/jobs/{jobs[1]['id']}/events"  # ignore_term.py says so once it ignores
        wait_for(
            lambda: any(e["type"] == "message" for e in srv.json("GET", ready)[1]["events"]),
            what="ignore_term.py to be ready",
        )
        jobs = [srv.json("GET", f"/api/jobs/{j['id']}")[1] for j in jobs]
        assert srv.stop() == 0, srv.log()
    stopped = [line for line in srv.output if line.startswith("stopped ")]
    assert len(stopped) == 2, srv.log()
    sleep, stubborn = jobs
    assert f"stopped #{sleep['number']} sleep 60 (pid {sleep['pid']}): SIGTERM" in srv.log()
    assert f"#{stubborn['number']} ignore_term.py (pid {stubborn['pid']}): SIGKILL" in srv.log()


def test_the_readme_and_help_agree_on_every_flag_and_default() -> None:
    """Every flag of ``ipc-explorer --help`` is in the README; every flag in the "Safe by
    default" tables is a real one, with the default the parser has; every flag's help shows
    its default."""
    done = run_server("--help")
    assert done.returncode == 0, done
    in_help = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", done.stdout)) - {"--help"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert in_help - set(re.findall(r"`(--[a-z][a-z-]*)", readme)) == set()
    rows = readme_safe_rows()
    assert set(rows) - in_help == set(), "the README names flags that do not exist"
    actions = {a.option_strings[0]: a for a in build_parser()._actions if a.option_strings}
    for flag, cell in rows.items():
        default = actions[flag].default
        if default is None or isinstance(default, bool | list):
            continue  # --token (random), --allow-host, switches: the cell says it in words
        if isinstance(default, str):
            assert cell == f"`{default}`", (flag, cell)
            continue
        number = re.match(r"([\d.]+)\s*(KiB|MiB)?", cell)
        assert number, (flag, cell)
        value = float(number.group(1))
        if number.group(2) and not flag.endswith("-mb"):  # --job-memory-mb counts MiB itself
            value *= UNITS[number.group(2)]
        assert value == default, (flag, cell, default)
    for flag, action in actions.items():
        if (
            flag != "-h"
            and action.default not in (None, False, [])
            and "%(default)" not in (action.help or "")
        ):
            raise AssertionError(f"{flag}'s help does not show its default")
