"""webapp.cgroups: finding the hierarchies (v1, v2, hybrid, a namespaced mount), and a job
cgroup's join / kill / removal on the real cgroup filesystems of this machine (v1 and, where
mounted, v2), with real processes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from webtest import TIMEOUT, pid_alive, wait_for

import ipc
from webapp.cgroups import (
    PREFIX,
    CgroupTree,
    CgroupUnavailable,
    Hierarchy,
    find_hierarchies,
)

V1_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/pids rw,relatime shared:10 - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
37 30 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_CGROUP = """\
8:pids:/
4:memory:/session/abc
2:cpu,cpuacct:/
0::/
"""


def test_v1_hierarchies_are_found_under_the_servers_own_cgroup() -> None:
    found = find_hierarchies(V1_MOUNTINFO, V1_CGROUP)
    assert found == [
        Hierarchy(1, Path("/sys/fs/cgroup/memory/session/abc"), ("memory",)),
        Hierarchy(1, Path("/sys/fs/cgroup/pids"), ("pids",)),
    ]


def test_a_namespaced_mount_root_is_taken_into_account() -> None:
    mountinfo = "40 30 0:31 /docker/x /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    assert find_hierarchies(mountinfo, "8:pids:/docker/x/job\n") == [
        Hierarchy(1, Path("/sys/fs/cgroup/pids/job"), ("pids",))
    ]
    with pytest.raises(CgroupUnavailable):  # our cgroup is outside what is mounted
        find_hierarchies(mountinfo, "8:pids:/elsewhere\n")


def test_v2_offers_the_controllers_its_cgroup_lists(tmp_path: Path) -> None:
    own = tmp_path / "user.slice" / "me"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    mountinfo = rf"50 1 0:40 / {tmp_path} rw - cgroup2 cgroup2 rw" + "\n"
    assert find_hierarchies(mountinfo, "0::/user.slice/me\n") == [
        Hierarchy(2, own, ("pids", "memory"))
    ]
    (own / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(CgroupUnavailable, match="no pids or memory"):
        find_hierarchies(mountinfo, "0::/user.slice/me\n")


def test_no_cgroup_mount_says_so() -> None:
    with pytest.raises(CgroupUnavailable, match="no cgroup hierarchy"):
        find_hierarchies("30 25 0:26 / / rw - ext4 /dev/vda rw\n", "0::/\n")


def mounted(fstype: str) -> list[Path]:
    with open("/proc/self/mountinfo") as f:
        lines = [line.split() for line in f]
    return [Path(f[4]) for f in lines if "-" in f and f[f.index("-") + 1] == fstype]


def real_hierarchies() -> list[tuple[str, Hierarchy]]:
    """A real v1 (this server's own pids cgroup) and v2 (the unified mount) to try, if any."""
    found = []
    try:
        found += [("v1", h) for h in find_hierarchies() if h.version == 1][:1]
    except (CgroupUnavailable, OSError):
        pass
    for mount in mounted("cgroup2")[:1]:
        found.append(("v2", Hierarchy(2, mount, ())))  # no controllers needed to join and kill
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups are made here only as root")
@pytest.mark.parametrize("hierarchy", [h for _, h in real_hierarchies()], ids=lambda h: h.version)
def test_a_job_cgroup_holds_and_kills_a_setsid_grandchild(hierarchy: Hierarchy) -> None:
    try:
        tree = CgroupTree([hierarchy])
    except CgroupUnavailable as exc:
        pytest.skip(str(exc))
    try:
        job = tree.create("j1", pids_max=0, memory_max=0)
        code = "import subprocess; print(subprocess.Popen(['setsid', 'sleep', '60']).pid)"
        child = ipc.spawn(
            "python3", ["-c", code], stdio=["ignore", "pipe", "ignore"], wrapper=job.join_argv()
        )
        lines: list[bytes] = []
        child.on("stdout", lines.append)
        grandchild = int(wait_for(lambda: b"".join(lines).strip(), TIMEOUT, "the grandchild"))
        child.wait(TIMEOUT)
        assert job.pids() == {grandchild}  # it left the process group, not the cgroup
        assert not job.remove()  # busy
        job.kill()
        wait_for(lambda: not pid_alive(grandchild), TIMEOUT, "the grandchild to die")
        child.wait_closed(TIMEOUT)
        wait_for(job.remove, TIMEOUT, "the job cgroup to go")
        assert not any(d.exists() for d in job.dirs)
    finally:
        assert tree.close() == []
    assert not any(base.exists() for _, base in tree.bases)


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups are made here only as root")
@pytest.mark.parametrize("hierarchy", [h for _, h in real_hierarchies()], ids=lambda h: h.version)
def test_the_subtree_of_a_dead_server_is_swept(hierarchy: Hierarchy) -> None:
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    stale = hierarchy.own / f"{PREFIX}{dead_pid.pid}-abcdef"
    try:
        (stale / "j9").mkdir(parents=True)
    except OSError as exc:
        pytest.skip(f"cannot write {hierarchy.own}: {exc}")
    tree = CgroupTree([hierarchy])
    try:
        assert not stale.exists()
    finally:
        tree.close()
