"""Who a job's child runs as, and with which resource limits: an argv prefix from util-linux.

A server that runs as root must not hand root to its children: an allowlisted command with the
wrong option (``date -s``, ``hostname NAME``) would change the machine. So every child starts
through (each execs the next, so the pid and the fds ipc passes stay the program's)::

    prlimit --as=... --nproc=... --cpu=... --fsize=... --nofile=... --
    setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all \
            --no-new-privs --
    <program> ...

An argv prefix, not ``preexec_fn`` (the server runs threads) nor ``Popen(user=)`` (the cgroup
join before it needs root). The defence a child gets, strongest first:

``user``
    it runs as ``--child-user`` (default ``nobody``) with no capabilities and no_new_privs.
``no-capabilities``
    the child user cannot run what the job needs (here: the Python interpreter lives under a
    mode-700 ``/root``), so the child stays root with an empty capability bounding set and
    no_new_privs: ``date -s`` gets EPERM. Only for the shipped programs (code the server
    chose), never for a command a request names, and never when the request changed a
    variable that decides which code runs (``PYTHONPATH`` ...): those run as the child user or
    not at all.
``unprivileged-server``
    the server is not root: children run as its user, with no_new_privs.
``off``
    ``--keep-privileges``: children run as the server's user with all its privileges.

Whether the child user can run something is asked of the kernel, not guessed from mode bits:
a probe runs ``test -x`` / ``test -r`` as that user (once per set of paths).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .security import DANGEROUS_ENV, DANGEROUS_ENV_PREFIXES

MiB: Final = 1024 * 1024

#: Variables that steer the C library or the loader of the (root) wrapper programs before the
#: privileges are dropped (glibc's list for setuid programs, ``unsecvars.h``). A job's own
#: value for one of them is set only after the drop (see `Plan`).
LOADER_ENV: Final = frozenset(
    {
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TMPDIR",
        "TZDIR",
    }
)
LOADER_ENV_PREFIXES: Final = ("LD_", "MALLOC_")

#: setpriv's options that leave a process no capability, now or after an exec.
NO_CAPABILITIES: Final = ("--inh-caps=-all", "--bounding-set=-all")

#: Sets the job's own loader variables after the drop, then execs the program.
_SET_AFTER_DROP: Final = 'while [ "$1" != -- ]; do export "$1"; shift; done; shift; exec "$@"'

_PROBE: Final = (
    'for a; do case $a in x:*) test -x "${a#x:}" ;; r:*) test -r "${a#r:}" ;; esac || exit 1; done'
)


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits for every child (0 = unlimited)."""

    address_space: int = 2048 * MiB  # RLIMIT_AS: Node reserves ~0.7 GiB before it runs
    processes: int = 1024  # RLIMIT_NPROC: tasks (threads too) of the child's user
    cpu_seconds: int = 3600  # RLIMIT_CPU: SIGXCPU, then SIGKILL 5 s of CPU later
    file_size: int = 1024 * MiB  # RLIMIT_FSIZE: SIGXFSZ / EFBIG past it
    open_files: int = 1024  # RLIMIT_NOFILE

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        return cls(
            address_space=int(config["CHILD_ADDRESS_SPACE_MB"]) * MiB,
            processes=int(config["CHILD_PROCESSES"]),
            cpu_seconds=int(config["CHILD_CPU_SECONDS"]),
            file_size=int(config["CHILD_FILE_SIZE_MB"]) * MiB,
            open_files=int(config["CHILD_OPEN_FILES"]),
        )

    def prlimit_args(self) -> list[str]:
        args = []
        for option, value in (
            ("as", self.address_space),
            ("nproc", self.processes),
            ("fsize", self.file_size),
            ("nofile", self.open_files),
        ):
            if value:
                args.append(f"--{option}={value}:{value}")
        if self.cpu_seconds:  # soft first: the child sees SIGXCPU, a named reason
            args.append(f"--cpu={self.cpu_seconds}:{self.cpu_seconds + 5}")
        return args

    def to_dict(self) -> dict[str, int]:
        return {
            "address_space_bytes": self.address_space,
            "processes": self.processes,
            "cpu_seconds": self.cpu_seconds,
            "file_size_bytes": self.file_size,
            "open_files": self.open_files,
        }


@dataclass(frozen=True)
class Needs:
    """What a child must be able to run and read, and whether it is the server's own code.

    :param execute: programs it execs (the interpreter or the command).
    :param read: files it must read (the script, the interpreter's library).
    :param shipped: a shipped program with no code-steering variable changed: it may fall back
        to ``no-capabilities`` when the child user cannot run it.
    """

    execute: tuple[str, ...]
    read: tuple[str, ...] = ()
    shipped: bool = False


@dataclass(frozen=True)
class Plan:
    """How one child starts: the argv prefix, its environment, and what it amounts to."""

    wrapper: list[str]
    env: dict[str, str] | None
    user: str
    defence: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "defence": self.defence, "reason": self.reason}


class Confinement:
    """Builds each child's `Plan` from the server's settings.

    :param child_user: the user children run as when the server is root.
    :param keep_privileges: do not drop anything (``--keep-privileges``).
    :param limits: the rlimits every child gets.
    """

    def __init__(self, child_user: str, keep_privileges: bool, limits: Limits) -> None:
        self.limits = limits
        self.keep_privileges = keep_privileges
        self.server_user = _user_name(os.geteuid())
        self.setpriv = shutil.which("setpriv")
        self.prlimit = shutil.which("prlimit")
        self.shell = shutil.which("sh") or "/bin/sh"
        self.child_user, self.uid, self.gid = child_user, -1, -1
        if self.default_defence == "user":
            try:
                entry = pwd.getpwnam(child_user)
            except KeyError:
                raise ValueError(
                    f"no user {child_user!r} on this system; name an existing one with --child-user"
                ) from None
            self.child_user, self.uid, self.gid = entry.pw_name, entry.pw_uid, entry.pw_gid
            if self.uid == 0:
                raise ValueError(
                    f"--child-user {child_user!r} is root; name an unprivileged user (or "
                    "give --keep-privileges to keep root on purpose)"
                )
        self._probes: dict[Needs, bool] = {}
        self._probe_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Confinement:
        return cls(config["CHILD_USER"], config["KEEP_PRIVILEGES"], Limits.from_config(config))

    @property
    def default_defence(self) -> str:
        if self.keep_privileges:
            return "off"
        if os.geteuid() != 0:
            return "unprivileged-server"
        if self.setpriv is None:
            return "none"
        return "user"

    def status(self) -> dict[str, Any]:
        """For /api/status: who children run as and what holds them."""
        defence = self.default_defence
        return {
            "server_user": self.server_user,
            "user": self.child_user if defence == "user" else self.server_user,
            "defence": defence,
            "reason": {
                "off": "--keep-privileges: children keep the server's user and privileges",
                "unprivileged-server": "the server is not root; children run as its user",
                "none": "setpriv (util-linux) is not installed: children run as root with "
                "every capability",
                "user": None,
            }[defence],
            "fallback": "shipped programs the child user cannot run (its interpreter is out "
            "of its reach) run as root with no capabilities (defence 'no-capabilities')"
            if defence == "user"
            else None,
            "limits": self.limits.to_dict() if self.prlimit else None,
            "limits_note": None
            if self.prlimit
            else "prlimit (util-linux) is not installed: no per-process limits",
        }

    def plan(self, needs: Needs, env: Mapping[str, str] | None) -> Plan:
        """The wrapper for a child with `needs`, started with `env` (None: the server's)."""
        wrapper: list[str] = []
        rlimits = self.limits.prlimit_args()
        if self.prlimit is not None and rlimits:
            wrapper += [self.prlimit, *rlimits, "--"]
        defence = self.default_defence
        user, reason = self.server_user, None
        if defence == "user":
            runnable = self.can_run(needs)
            if runnable or not needs.shipped:
                # A command a request names runs as the child user or fails to start.
                user = self.child_user
                drop = self._as_child_user()
                if not runnable:
                    reason = f"{user} cannot run or read one of {_listing(needs)}"
            else:
                defence = "no-capabilities"
                reason = f"{self.child_user} cannot run or read one of {_listing(needs)}"
                drop = list(NO_CAPABILITIES)
            assert self.setpriv is not None
            wrapper += [self.setpriv, *drop, "--no-new-privs", "--"]
        elif defence == "unprivileged-server" and self.setpriv is not None:
            wrapper += [self.setpriv, "--no-new-privs", "--"]
        env, late = split_loader_env(env) if wrapper else (env, {})
        if late:
            wrapper += [self.shell, "-c", _SET_AFTER_DROP, "ipc-explorer-env"]
            wrapper += [f"{k}={v}" for k, v in sorted(late.items())] + ["--"]
        return Plan(wrapper, env, user, defence, reason)

    def _as_child_user(self) -> list[str]:
        """setpriv's options for "the child user, no groups, no capabilities"."""
        return [f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *NO_CAPABILITIES]

    def can_run(self, needs: Needs) -> bool:
        """Whether the child user can execute and read everything in `needs` (cached)."""
        with self._probe_lock:
            known = self._probes.get(needs)
        if known is not None:
            return known
        if self.setpriv is None:
            return False
        argv = [
            self.setpriv,
            *self._as_child_user(),
            "--",
            self.shell,
            "-c",
            _PROBE,
            "probe",
            *(f"x:{p}" for p in needs.execute),
            *(f"r:{p}" for p in needs.read),
        ]
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, cwd="/", timeout=30
        ).returncode
        with self._probe_lock:
            self._probes[needs] = result == 0
        return result == 0


def split_loader_env(env: Mapping[str, str] | None) -> tuple[dict[str, str] | None, dict[str, str]]:
    """(`env` without the loader variables it changes, those variables): a job's own
    ``LD_PRELOAD`` must reach its program, not the root-run wrapper before the drop."""
    if env is None:
        return None, {}
    late = {
        k: v
        for k, v in env.items()
        if (k in LOADER_ENV or k.startswith(LOADER_ENV_PREFIXES)) and os.environ.get(k) != v
    }
    return {k: v for k, v in env.items() if k not in late}, late


def steers_code(env: Mapping[str, str] | None) -> bool:
    """Whether `env` changes a variable that decides which code a program runs (the command
    policy's list) from the server's own value."""
    if env is None:
        return False
    return any(
        (k in DANGEROUS_ENV or k.startswith(DANGEROUS_ENV_PREFIXES) or k in LOADER_ENV)
        and os.environ.get(k) != v
        for k, v in env.items()
    )


def _listing(needs: Needs) -> str:
    return ", ".join(needs.execute + needs.read)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def resolve_program(program: str, env: Mapping[str, str] | None) -> str:
    """`program` as exec would find it with `env`'s PATH (unchanged when not found)."""
    if os.sep in program:
        return program
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    return shutil.which(program, path=path) or program


def interpreter_needs(interpreter: str, script: str | None, shipped: bool) -> Needs:
    """What running `script` with `interpreter` (this Python, or node) needs."""
    import sys

    read: list[str] = []
    if os.path.realpath(interpreter) == os.path.realpath(sys.executable):
        read += [os.__file__, _ipc_package_file()]  # the stdlib and `ipc` for ipc.child
    if script is not None:
        read.append(script)
    return Needs(execute=(interpreter,), read=tuple(read), shipped=shipped)


def _ipc_package_file() -> str:
    import ipc

    return ipc.__file__ or ""


__all__ = [
    "Confinement",
    "Limits",
    "Needs",
    "Plan",
    "interpreter_needs",
    "resolve_program",
    "split_loader_env",
    "steers_code",
]
