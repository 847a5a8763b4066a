"""A cgroup per job: a cap on its tasks and its memory, and a kill that reaches all of it.

A process group is not enough to end a job: a grandchild that calls ``setsid`` leaves it, no
group kill reaches it, and it can hold the job's pipes open so the job never closes. A cgroup
holds every process the job starts, whatever it does with sessions (an unprivileged child
cannot move itself out), so `JobCgroup.kill()` ends them all, and ``pids.max`` / the memory cap
bound a fork bomb or a runaway allocation (the kernel's OOM killer acts inside the job only).

Layout: under the server's *own* cgroup in each hierarchy, so that whatever limits the server
was started with still hold for its jobs::

    <server's cgroup>/ipc-explorer-<server pid>-<random>/<job id>

cgroup v1 (one hierarchy per controller: ``pids``, ``memory``) and v2 (one unified hierarchy)
are both found at start from ``/proc/self/mountinfo`` and ``/proc/self/cgroup``; v1 is used
when its ``pids`` or ``memory`` hierarchy is mounted (a hybrid host mounts an empty v2 too).
A child joins its job's cgroup *before* the program runs: `join_argv()` is an argv prefix, a
``/bin/sh`` line that writes its own pid into ``cgroup.procs`` and execs the rest, so every
process of the job is born inside (no fork can race the move) and the pid is the program's.

Nothing here blocks for long: killing reads ``cgroup.procs`` and signals, removal is ``rmdir``
(retried by the caller while dying tasks are still listed).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: The controllers a job cgroup uses.
CONTROLLERS: Final = ("pids", "memory")
PREFIX: Final = "ipc-explorer-"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
#: Rounds of "read the members, SIGKILL the new ones" before giving up on a v1 kill (a round
#: finds new pids only if they forked between our read and our kill: pids.max bounds that).
_KILL_ROUNDS: Final = 1000


class CgroupUnavailable(Exception):
    """No cgroup can be made here; the message says why (it is shown in /api/status)."""


@dataclass(frozen=True)
class Hierarchy:
    """One mounted hierarchy as the server sees it.

    :param version: 1 or 2.
    :param own: the directory of the server's own cgroup in it.
    :param controllers: the controllers of ours it carries (v1: one each; v2: all it has).
    """

    version: int
    own: Path
    controllers: tuple[str, ...]


def find_hierarchies(
    mountinfo: str | None = None, proc_cgroup: str | None = None
) -> list[Hierarchy]:
    """The hierarchies to use: v1 ``pids`` / ``memory`` where mounted, else the v2 one.

    :raises CgroupUnavailable: no usable hierarchy.
    """
    mountinfo = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
    proc_cgroup = Path("/proc/self/cgroup").read_text() if proc_cgroup is None else proc_cgroup
    own_v1: dict[str, str] = {}
    own_v2: str | None = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if controllers == "" and _hid == "0":
            own_v2 = path
        for controller in controllers.split(","):
            own_v1[controller] = path
    v1: list[Hierarchy] = []
    v2_mount: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype == "cgroup":
            for controller in CONTROLLERS:
                if controller in options and controller in own_v1:
                    path = _inside(mountpoint, root, own_v1[controller])
                    if path is not None and not any(h.controllers == (controller,) for h in v1):
                        v1.append(Hierarchy(1, path, (controller,)))
        elif fstype == "cgroup2" and own_v2 is not None and v2_mount is None:
            v2_mount = (mountpoint, root)
    if v1:
        return v1
    if v2_mount is not None and own_v2 is not None:
        path = _inside(v2_mount[0], v2_mount[1], own_v2)
        if path is not None:
            available = _read(path / "cgroup.controllers").split()
            usable = tuple(c for c in CONTROLLERS if c in available)
            if usable:
                return [Hierarchy(2, path, usable)]
            raise CgroupUnavailable(
                f"cgroup v2 at {path} offers no pids or memory controller to this server"
            )
    raise CgroupUnavailable("no cgroup hierarchy with pids or memory is mounted")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _inside(mountpoint: str, root: str, path: str) -> Path | None:
    """Where cgroup `path` appears under a mount of `root` at `mountpoint` (None: outside)."""
    rel = os.path.relpath(path, root)
    if rel.startswith(".."):
        return None
    return Path(mountpoint) / ("" if rel == "." else rel)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class CgroupTree:
    """The server's cgroup subtree: one directory per hierarchy, one job cgroup per job.

    :param hierarchies: from `find_hierarchies()` (or one a test names).
    :raises CgroupUnavailable: the subtree cannot be created (read-only, no permission, v2
        controllers that cannot be delegated).
    """

    def __init__(self, hierarchies: Iterable[Hierarchy]) -> None:
        self.hierarchies = list(hierarchies)
        self.version = self.hierarchies[0].version
        self.name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.bases: list[tuple[Hierarchy, Path]] = []
        self._jobs: dict[str, JobCgroup] = {}
        try:
            for hierarchy in self.hierarchies:
                sweep_stale(hierarchy)
                base = hierarchy.own / self.name
                if hierarchy.version == 2:
                    _delegate_v2(hierarchy, base)
                else:
                    base.mkdir()
                self.bases.append((hierarchy, base))
        except OSError as exc:
            self.close()
            raise CgroupUnavailable(f"cannot create a cgroup under {exc.filename}: {exc}") from None

    def create(self, job_id: str, *, pids_max: int, memory_max: int) -> JobCgroup:
        """A new, empty cgroup for `job_id` with its limits set (0 = no limit).

        :raises OSError: it cannot be created or limited (it is removed again).
        """
        name = _UNSAFE.sub("_", job_id)[:64] or "job"
        while name in self._jobs:  # two ids that read the same once made safe
            name += "_"
        job = JobCgroup(self.version, [base / name for _h, base in self.bases])
        try:
            for (hierarchy, _base), path in zip(self.bases, job.dirs, strict=True):
                path.mkdir()
                if "pids" in hierarchy.controllers and pids_max:
                    _write(path / "pids.max", str(pids_max))
                if "memory" in hierarchy.controllers and memory_max:
                    _limit_memory(hierarchy.version, path, memory_max)
        except OSError:
            job.remove()
            raise
        self._jobs[name] = job
        return job

    def forget(self, job: JobCgroup) -> None:
        self._jobs.pop(job.dirs[0].name, None)

    def close(self, wait: float = 5.0) -> list[str]:
        """Kill what is left in every job cgroup, remove them all and the subtree.

        Returns the directories that could not be removed (empty when all went).
        """
        deadline = time.monotonic() + wait
        for job in list(self._jobs.values()):
            job.kill()
        left: list[str] = []
        for job_id, job in list(self._jobs.items()):
            while not job.remove() and time.monotonic() < deadline:
                job.kill()
                time.sleep(0.01)  # dying tasks leave the cgroup within milliseconds
            if job.removed:
                self._jobs.pop(job_id, None)
            else:
                left += [str(d) for d in job.dirs if d.exists()]
        for _hierarchy, base in reversed(self.bases):
            with contextlib.suppress(FileNotFoundError):
                try:
                    base.rmdir()
                except OSError:
                    left.append(str(base))
        self.bases = [(h, b) for h, b in self.bases if b.exists()]
        return left


def _delegate_v2(hierarchy: Hierarchy, base: Path) -> None:
    """v2: our controllers must be enabled in the parent's and our subtree_control.

    The parent is the server's own cgroup; enabling a controller there fails (EBUSY) when it
    holds processes and is not the root ("no internal processes"), so the server needs a
    delegated cgroup of its own (e.g. ``systemd-run -p Delegate=yes``).
    """
    wanted = " ".join(f"+{c}" for c in hierarchy.controllers)
    enabled = _read(hierarchy.own / "cgroup.subtree_control").split()
    if any(c not in enabled for c in hierarchy.controllers):
        try:
            _write(hierarchy.own / "cgroup.subtree_control", wanted)
        except OSError as exc:
            raise CgroupUnavailable(
                f"cgroup v2: cannot enable {wanted} in {hierarchy.own} ({exc.strerror}); "
                "run the server in a delegated cgroup of its own"
            ) from None
    base.mkdir()
    if hierarchy.controllers:
        _write(base / "cgroup.subtree_control", wanted)


def _limit_memory(version: int, path: Path, limit: int) -> None:
    if version == 1:
        _write(path / "memory.limit_in_bytes", str(limit))
        swap = path / "memory.memsw.limit_in_bytes"  # memory + swap: no way around the cap
    else:
        _write(path / "memory.max", str(limit))
        swap = path / "memory.swap.max"
    if swap.exists():
        with contextlib.suppress(OSError):
            _write(swap, str(limit) if version == 1 else "0")


def sweep_stale(hierarchy: Hierarchy) -> set[int]:
    """Kill what is left in the subtrees of servers that died without cleaning up (their pid
    is gone) and remove them. Returns the pids killed (a process is in one cgroup of each
    hierarchy: the caller takes the union)."""
    try:
        entries = list(hierarchy.own.iterdir())
    except OSError:
        return set()
    killed: set[int] = set()
    for entry in entries:
        match = re.match(rf"^{PREFIX}(\d+)-", entry.name)
        if not match or not entry.is_dir() or _pid_alive(int(match.group(1))):
            continue
        for job_dir in [p for p in entry.iterdir() if p.is_dir()]:
            stale = JobCgroup(hierarchy.version, [job_dir])
            killed |= stale.pids()
            stale.kill()
            stale.remove()
        with contextlib.suppress(OSError):
            entry.rmdir()
    return killed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobCgroup:
    """One job's cgroup (a directory in each hierarchy)."""

    def __init__(self, version: int, dirs: list[Path]) -> None:
        self.version = version
        self.dirs = dirs
        self.removed = False

    def join_argv(self, shell: str = "/bin/sh") -> list[str]:
        """An argv prefix that moves itself into this cgroup and execs the rest of argv.

        If the move fails the program does not run (exit 126, the reason on stderr): a job
        outside its cgroup would escape its limits and its kill.
        """
        moves = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs)
        fail = 'echo "ipc-explorer: cannot join the job\'s cgroup" >&2; exit 126'
        script = f'{moves} || {{ {fail}; }}; exec "$@"'
        return [shell, "-c", script, "ipc-explorer-cgroup"]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            for word in _read(d / "cgroup.procs").split():
                found.add(int(word))
        return found

    def signal(self, signum: int, except_group: int | None = None) -> int:
        """Send `signum` to every process of the job but those of process group
        `except_group` (already signalled through it); returns how many got it."""
        sent = 0
        for pid in self.pids():
            try:
                if except_group is not None and os.getpgid(pid) == except_group:
                    continue
                os.kill(pid, signum)
                sent += 1
            except ProcessLookupError:
                pass
        return sent

    def kill(self) -> None:
        """SIGKILL every process of the job, including any it forks meanwhile."""
        if self.version == 2:
            kill_file = self.dirs[0] / "cgroup.kill"  # Linux 5.14+: atomic
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
                    return
        killed: set[int] = set()
        for _ in range(_KILL_ROUNDS):
            new = self.pids() - killed
            if not new:
                return
            for pid in new:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed |= new

    def oom_kills(self) -> int:
        """How many processes of the job the memory cap's OOM killer ended."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for d in self.dirs:
            for line in _read(d / name).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
        return 0

    def remove(self) -> bool:
        """rmdir the job's directories; False while a (dying) task is still inside."""
        if self.removed:
            return True
        busy = False
        for d in self.dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:  # EBUSY: a task is still inside (the caller tries again)
                busy = True
        self.removed = not busy
        return self.removed
