"""The fd inspector (webapp/fdinspect.py, GET /api/jobs/<id>/fds): a running child's fds read
from /proc, the IPC channel named, each matched to the server's fd on its other end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from webtest import NODE, wait_closed, wait_for

from webapp import fdinspect

SS = shutil.which("ss")


def launch(srv: Any, body: dict[str, Any]) -> dict[str, Any]:
    status, job = srv.json("POST", "/api/jobs", body)
    assert status == 201, job
    return job


def fds_when_running(srv: Any, job_id: str) -> dict[str, Any]:
    """The answer once the child runs its program (its first reply has come back)."""

    def ready() -> Any:
        events = srv.json("GET", f"/api/jobs/{job_id}/events")[1]["events"]
        return any(e["type"] == "message" and e["data"]["direction"] == "to_parent" for e in events)

    wait_for(ready, what=f"{job_id}'s first reply")
    status, body = srv.json("GET", f"/api/jobs/{job_id}/fds")
    assert status == 200, body
    return body


def by_fd(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["fd"]: row for row in body["fds"]}


def parent_fd_inode(fd: int) -> int:
    """The inode behind one of this process's fds, as the kernel says (the test's own check)."""
    return os.stat(f"/proc/self/fd/{fd}").st_ino


def ss_peers() -> dict[int, int]:
    """AF_UNIX inode -> peer inode, from `ss -x` (iproute2): an independent witness."""
    out = subprocess.run([SS, "-xan"], capture_output=True, text=True, check=True).stdout
    peers = {}
    for line in out.splitlines()[1:]:
        # Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port
        match = re.search(r"\s(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s*$", line)
        if match:
            peers[int(match.group(2))] = int(match.group(4))
    return peers


@pytest.mark.parametrize("transport", ["pipe", "socketpair", "unix", "tcp"])
def test_the_channel_and_stdio_are_matched_to_the_parents_fds(srv: Any, transport: str) -> None:
    job = launch(
        srv, {"kind": "fork", "program": "echo.py", "transport": transport, "message": "hi"}
    )
    body = fds_when_running(srv, job["id"])
    assert body["pid"] == job["pid"] and body["parent_pid"] == os.getpid()
    assert body["transport"] == transport
    rows = by_fd(body)

    for fd, role, access in ((0, "stdin", "read"), (1, "stdout", "write"), (2, "stderr", "write")):
        row = rows[fd]
        assert row["role"] == role and row["kind"] == "pipe" and row["access"] == access
        (peer,) = row["peer"]["fds"]
        assert row["peer"]["where"] == "parent"
        assert parent_fd_inode(peer["fd"]) == row["inode"]  # the same pipe, seen from here
        assert peer["access"] == ("write" if access == "read" else "read")

    channel = body["channel"]
    env = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{job['pid']}/environ").read_text().split("\0")
        if "=" in item
    )
    if transport == "pipe":
        assert channel["variable"] == "IPC_EXPLORER_CHANNEL"
        assert channel["value"] == env["IPC_EXPLORER_CHANNEL"]
        assert channel["fds"] == [int(n) for n in env["IPC_EXPLORER_CHANNEL"][5:].split(",")]
    elif transport == "socketpair":
        assert channel == {
            "variable": "NODE_CHANNEL_FD",
            "value": env["NODE_CHANNEL_FD"],
            "fds": [int(env["NODE_CHANNEL_FD"])],
            "serialization": "json",
        }
    else:
        assert channel["variable"] == "IPC_EXPLORER_CHANNEL"
        assert channel["value"].startswith(f"{transport}:")
        assert len(channel["fds"]) == 1
    for fd in channel["fds"]:
        row = rows[fd]
        assert row["role"] == "ipc channel"
        assert row["peer"]["where"] == "parent"
        (peer,) = row["peer"]["fds"]
        if transport == "pipe":
            assert parent_fd_inode(peer["fd"]) == row["inode"]
        else:
            theirs = parent_fd_inode(peer["fd"])
            assert theirs != row["inode"]  # a socket's two ends are two inodes
            if transport == "tcp":
                assert row["transport"] == "tcp" and "established" in row["detail"]
            elif SS:
                assert ss_peers()[row["inode"]] == theirs
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, job["id"])


def test_extra_stdio_pipes_are_named(srv: Any) -> None:
    job = launch(
        srv,
        {"kind": "spawn", "command": "sleep", "args": ["30"], "stdio": ["pipe"] * 4},
    )
    wait_for(
        lambda: (
            srv.json("GET", f"/api/jobs/{job['id']}/fds")[0] == 200
            and 3 in by_fd(srv.json("GET", f"/api/jobs/{job['id']}/fds")[1])
        ),
        what="sleep to hold fd 3",
    )
    rows = by_fd(srv.json("GET", f"/api/jobs/{job['id']}/fds")[1])
    assert rows[3]["role"] == "extra stdio (fd3)"
    assert rows[3]["kind"] == "socket" and rows[3]["peer"]["where"] == "parent"
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, job["id"])


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_a_node_childs_channel_is_node_channel_fd(srv: Any) -> None:
    job = launch(srv, {"kind": "fork", "program": "hello.js", "transport": "unix"})
    body = fds_when_running(srv, job["id"])
    assert body["channel"]["variable"] == "NODE_CHANNEL_FD"
    row = by_fd(body)[int(body["channel"]["value"])]
    assert row["role"] == "ipc channel" and row["transport"] == "unix"
    assert row["peer"]["where"] == "parent"
    srv.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_closed(srv, job["id"])


def test_unknown_and_finished_jobs_are_refused_cleanly(srv: Any) -> None:
    status, body = srv.json("GET", "/api/jobs/j99999/fds")
    assert status == 404 and "GET /api/jobs" in body["error"]
    job = launch(srv, {"kind": "spawn", "command": "true"})
    wait_closed(srv, job["id"])
    status, body = srv.json("GET", f"/api/jobs/{job['id']}/fds")
    assert status == 409 and "not running" in body["error"], body


def test_a_process_that_is_gone_is_reported_as_gone(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(fdinspect.ProcessGone):
        fdinspect.inspect(proc.pid, os.getpid())


def test_tcp_addresses_are_decoded_as_the_kernel_prints_them() -> None:
    assert fdinspect._tcp_address("0100007F:1F90", v6=False) == "127.0.0.1:8080"
    assert fdinspect._tcp_address("00000000000000000000000001000000:0050", v6=True) == "[::1]:80"
